"""The position split of token accuracy on hand-made cases."""
import pytest
import numpy as np

from synthetic_pretraining import position_split

pytestmark = pytest.mark.unit


def test_categories_on_a_hand_made_case():
  # Context "5 6 7 8 9"; answer "6 7 3 9" + EOS: 6 is the first token, 7 follows 6 in the
  # context (copyable), 3 never follows 7 (other), 9 does not follow 3 (other), then EOS.
  inputs = [5, 6, 7, 8, 9, 1, 0, 0]
  targets = [6, 7, 3, 9, 1, 0]
  assert position_split.classify(inputs, targets) == [
      "first_token", "copyable", "other", "other", "eos"]
  # A copy that follows another occurrence of the previous token also counts.
  assert position_split.classify([4, 2, 4, 8], [4, 8, 1]) == ["first_token", "copyable", "eos"]


def test_tally_and_summary():
  inputs = np.array([[5, 6, 7, 8, 9, 1], [2, 3, 4, 1, 0, 0]])
  targets = np.array([[6, 7, 3, 1], [3, 4, 1, 0]])
  predictions = np.array([[0, 7, 3, 8], [3, 9, 1, 5]])  # padding predictions are ignored
  counts = position_split.tally(inputs, targets, predictions)
  assert counts == {"first_token": [1, 2], "copyable": [1, 2], "other": [1, 1], "eos": [1, 2]}
  summary = position_split.summarize(counts)
  assert summary["all"] == {"share": 100.0, "tokens": 7, "accuracy": 100 * 4 / 7}
  assert summary["copyable"]["share"] == 100 * 2 / 7 and summary["eos"]["accuracy"] == 50.0
