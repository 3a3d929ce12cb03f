"""Shipped data and vocabulary: squad_offline, natural_text and cpu_sp load with no network."""
import pytest
import json
import os

import gin
import numpy as np
import seqio

import synthetic_pretraining.tasks  # noqa: F401
from synthetic_pretraining.data import vocabularies
from synthetic_pretraining.synthetic import registry
from synthetic_pretraining.tasks import offline

pytestmark = pytest.mark.unit


def _paragraphs(split):
  with open(os.path.join(offline.DATA, "squad_offline", f"{split}.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_the_shipped_vocabulary_has_t5s_layout():
  gin.bind_parameter("named_vocabulary.name", "cpu_sp")
  vocab = registry.sync_vocabulary()
  assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
  assert vocab.vocab_size == 4000 + 100 and vocab.extra_ids == 100
  text = "Which NFL team represented the AFC at Super Bowl 50?"
  assert vocab.decode(vocab.encode(text)) == text
  assert os.path.getsize(vocabularies.CPU_SENTENCEPIECE_MODEL) < 1_000_000


def test_squad_offline_splits_are_disjoint_by_passage_and_sized():
  splits = {s: _paragraphs(s) for s in ("train", "validation", "test")}
  contexts = {s: {p["context"] for p in ps} for s, ps in splits.items()}
  assert not contexts["train"] & contexts["validation"]
  assert not contexts["train"] & contexts["test"] and not contexts["validation"] & contexts["test"]
  questions = {s: sum(len(p["qas"]) for p in ps) for s, ps in splits.items()}
  assert questions["train"] > 10_000 and questions["validation"] >= 1_000 <= questions["test"]
  size = sum(os.path.getsize(os.path.join(offline.DATA, d, f))
             for d in ("squad_offline", "natural_text")
             for f in os.listdir(os.path.join(offline.DATA, d)))
  assert size < 10_000_000


def test_squad_offline_examples_are_t5_formatted():
  gin.bind_parameter("named_vocabulary.name", "cpu_sp")
  vocab = registry.sync_vocabulary()
  ds = seqio.get_mixture_or_task("squad_offline").get_dataset(
      {"inputs": 512, "targets": 64}, split="validation", shuffle=False)
  first = _paragraphs("validation")[0]
  for ex, qa in zip(ds.take(3).as_numpy_iterator(), first["qas"]):
    assert vocab.decode(ex["inputs"].tolist()).startswith(f"question: {qa['question']} context:")
    assert ex["inputs"][-1] == vocab.eos_id == ex["targets"][-1]
    assert vocab.decode(ex["targets"][:-1].tolist()) == qa["answers"][0]
    assert [a.decode() for a in ex["answers"]] == qa["answers"]


def test_natural_text_is_span_corrupted_and_shares_no_passage_with_squad():
  gin.bind_parameter("named_vocabulary.name", "cpu_sp")
  vocab = registry.sync_vocabulary()
  ds = seqio.get_mixture_or_task("natural_text").get_dataset(
      {"inputs": 128, "targets": 64}, split="train", shuffle=False)
  ex = next(ds.as_numpy_iterator())
  assert vocabularies.sentinel_id(vocab, 0) in ex["inputs"] and ex["targets"][0] == \
      vocabularies.sentinel_id(vocab, 0)
  passages = set()
  for name in ("nyt.txt", "reddit.txt", "amazon.txt"):
    with open(os.path.join(offline.DATA, "natural_text", name)) as f:
      passages |= {" ".join(line.split()) for line in f}
  squad = {" ".join(p["context"].split()) for s in ("train", "validation", "test")
           for p in _paragraphs(s)}
  assert len(passages) > 6_000 and not passages & squad
  assert np.all(ex["inputs"] < vocab.vocab_size)


def test_squad_offline_records_are_well_formed():
  ids = set()
  for split in ("train", "validation", "test"):
    for paragraph in _paragraphs(split):
      assert paragraph["title"] and paragraph["context"] and paragraph["qas"]
      for qa in paragraph["qas"]:
        assert qa["id"] not in ids and qa["question"]
        ids.add(qa["id"])
        # Extractive QA: every gold answer is a span of its passage, so F1 and EM can reach 100.
        assert qa["answers"] and all(a and a in paragraph["context"] for a in qa["answers"])


def test_the_shipped_vocabulary_loads_directly_in_seqio():
  vocab = seqio.SentencePieceVocabulary(vocabularies.CPU_SENTENCEPIECE_MODEL, extra_ids=100)
  assert (vocab.pad_id, vocab.eos_id, vocab.unk_id, vocab.vocab_size) == (0, 1, 2, 4100)
  text = "The committee met on 3 May 1998; its report (pp. 12-40) was never published."
  assert vocab.decode(vocab.encode(text)) == text
  assert vocab.unk_id not in vocab.encode(text)


def test_natural_text_has_a_validation_split():
  gin.bind_parameter("named_vocabulary.name", "cpu_sp")
  registry.sync_vocabulary()
  ds = seqio.get_mixture_or_task("natural_text").get_dataset(
      {"inputs": 128, "targets": 64}, split="validation", shuffle=False)
  examples = list(ds.take(4).as_numpy_iterator())
  assert len(examples) == 4 and all(len(ex["inputs"]) <= 128 for ex in examples)
