"""The paper's downstream metrics against hand-computed cases."""
import pytest

from synthetic_pretraining.data import metrics


def test_exact_match_and_f1_without_normalisation():
  # EM: 1 of 3. F1: 1; "a b c" vs "a b d": p = r = 2/3 -> 2/3; "The cat" vs "the cat": case
  # counts, so only "cat" overlaps: p = r = 1/2 -> 1/2.
  got = metrics.exact_match_f1(["x y", "a b c", "The cat"], ["x y", "a b d", "the cat"])
  assert got["em"] == pytest.approx(100 / 3)
  assert got["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 / 2) / 3)


def test_token_f1_counts_repeated_tokens_once_each():
  # target a a b, prediction a b b: overlap min counts = a:1, b:1 = 2; p = r = 2/3.
  assert metrics.exact_match_f1(["a a b"], ["a b b"])["f1"] == pytest.approx(100 * 2 / 3)


def test_empty_strings_get_no_f1_credit_as_in_t5():
  # t5's _f1_score returns 0 whenever nothing overlaps, both sides empty included; EM still
  # counts the equal empty strings.
  got = metrics.exact_match_f1([""], [""])
  assert (got["em"], got["f1"]) == (100.0, 0.0)
  # "The" normalises to "" on both sides: EM 1, F1 0 (the SQuAD script's behaviour).
  assert metrics.squad([["The"]], ["a"]) == {"em": 100.0, "f1": 0.0}


def test_squad_normalisation():
  assert metrics.normalize_squad("The  Eiffel-Tower, an icon!") == "eiffeltower icon"
  assert metrics.normalize_squad("A theatre") == "theatre"


def test_squad_takes_the_best_of_all_answers():
  targets = [["Denver Broncos", "The Denver Broncos"], ["Santa Clara, California", "Levi's Stadium"],
             "1990"]
  predictions = ["the denver broncos!", "Levi's Stadium in Santa Clara", "1991"]
  got = metrics.squad(targets, predictions)
  assert got["em"] == pytest.approx(100 / 3)
  # Second: "levis stadium in santa clara" vs "levis stadium": p = 2/5, r = 1 -> 4/7;
  # vs "santa clara california": overlap 2, p = 2/5, r = 2/3 -> 1/2. Best 4/7.
  assert got["f1"] == pytest.approx(100 * (1 + 4 / 7 + 0) / 3)


def test_rouge_on_a_small_case():
  # Unigrams: target "the cat sat", prediction "the cat ran": P = R = 2/3.
  # Bigrams: {the cat, cat sat} vs {the cat, cat ran}: P = R = 1/2.
  got = metrics.rouge(["the cat sat"], ["the cat ran"])
  assert got["rouge1"] == pytest.approx(100 * 2 / 3)
  assert got["rouge2"] == pytest.approx(50.0)
  # Lsum splits sentences at " . ": the same two sentences in another order score 100.
  got = metrics.rouge(["a b . c d"], ["c d . a b"])
  assert got["rougeLsum"] == pytest.approx(100.0) and got["rouge2"] < 100


def test_rouge_does_not_stem_unless_asked():
  # "cats running" vs "cat runs": no unigram matches without stemming; with the Porter stemmer
  # both sides become "cat run": 100.
  assert metrics.rouge(["cat runs"], ["cats running"])["rouge1"] == 0.0
  assert metrics.rouge(["cat runs"], ["cats running"], use_stemmer=True)["rouge1"] == 100.0


def test_rouge_averages_examples():
  # Example 1 scores 100, example 2 ("x y" vs "z w") 0: mean 50.
  assert metrics.rouge(["a b", "x y"], ["a b", "z w"])["rouge1"] == pytest.approx(50.0)


def test_mismatched_lengths_are_an_error():
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    metrics.exact_match_f1(["a", "b"], ["a"])
