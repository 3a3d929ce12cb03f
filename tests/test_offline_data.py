"""Shipped data and vocabulary: squad_offline, natural_text and cpu_sp load with no network."""
import json
import os
import random

import gin
import numpy as np
import pytest
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
  by_answers = {tuple(qa["answers"]): qa for p in _paragraphs("validation") for qa in p["qas"]}
  for ex in ds.take(3).as_numpy_iterator():
    qa = by_answers[tuple(a.decode() for a in ex["answers"])]
    assert vocab.decode(ex["inputs"].tolist()).startswith(f"question: {qa['question']} context:")
    assert ex["inputs"][-1] == vocab.eos_id == ex["targets"][-1]
    assert vocab.decode(ex["targets"][:-1].tolist()) == qa["answers"][0]


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


# Record order: seeded, spread over articles, resumable (tasks/offline.py, file_source.permuted).

def _squad_titles(task, split, n, vocab, **kwargs):
  """The article of each of the first n examples of a squad task read through seqio."""
  title = {qa["question"]: p["title"] for p in _paragraphs(split) for qa in p["qas"]}
  ds = seqio.get_mixture_or_task(task).get_dataset({"inputs": 512, "targets": 64}, split=split,
                                                   **kwargs)
  out = []
  for ex in ds.take(n).as_numpy_iterator():
    text = vocab.decode(ex["inputs"].tolist())
    out.append(title.get(text[len("question: "):text.index(" context: ")]))
  return [t for t in out if t is not None]  # a few questions do not decode back verbatim


def test_first_800_training_examples_of_squad_come_from_most_articles():
  gin.bind_parameter("named_vocabulary.name", "cpu_sp")
  vocab = registry.sync_vocabulary()
  articles = {p["title"] for p in _paragraphs("train")}
  for seed in (1, 2):
    seen = _squad_titles("squad_offline", "train", 800, vocab, shuffle=True, seed=seed)
    assert len(seen) > 700 and len(set(seen)) >= 0.75 * len(articles), seed
  # Evaluation subsets (first N of an unshuffled read) are spread over the split's articles too.
  test_articles = {p["title"] for p in _paragraphs("test")}
  head = _squad_titles("squad_window", "test", 256, vocab, shuffle=False)
  assert len(set(head)) >= 0.75 * len(test_articles)
  assert head == _squad_titles("squad_window", "test", 256, vocab, shuffle=False, seed=5)


def test_natural_text_is_read_across_its_registers():
  gin.bind_parameter("named_vocabulary.name", "cpu_sp")
  registry.sync_vocabulary()
  register = {}
  for name in ("nyt.txt", "reddit.txt", "amazon.txt"):
    with open(os.path.join(offline.DATA, "natural_text", name)) as f:
      register.update({line.rstrip("\n"): name for line in f if line.strip()})
  source = seqio.get_mixture_or_task("natural_text").source
  first = [register[x["targets"].decode()] for x in
           source.get_dataset("train", shuffle=True, seed=3).take(800).as_numpy_iterator()]
  assert all(first.count(name) > 200 for name in ("nyt.txt", "reddit.txt", "amazon.txt"))
  validation = [register[x["targets"].decode()] for x in
                source.get_dataset("validation", shuffle=False).as_numpy_iterator()]
  assert len(validation) == offline.VALIDATION_PASSAGES and len(set(validation)) == 3
  train = {x["targets"] for x in source.get_dataset("train", shuffle=False).as_numpy_iterator()}
  assert len(train) == len(register) - offline.VALIDATION_PASSAGES


def test_permuted_order_is_seeded_new_each_epoch_and_resumes_exactly(tmp_path):
  from synthetic_pretraining.data import pipeline  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.synthetic import file_source  # pylint: disable=import-outside-toplevel
  read = lambda seed: file_source.permuted({"x": np.arange(20)}, 20, shuffle=True, seed=seed)
  stream = [int(x["x"]) for x in read(4).repeat(2).as_numpy_iterator()]
  assert sorted(stream[:20]) == sorted(stream[20:]) == list(range(20))
  assert stream[:20] != list(range(20)) and stream[:20] != stream[20:]
  assert stream == [int(x["x"]) for x in read(4).repeat(2).as_numpy_iterator()]
  assert stream != [int(x["x"]) for x in read(5).repeat(2).as_numpy_iterator()]
  # The position (mid-epoch and in the next epoch) is part of the data iterator's checkpoint.
  iterator = pipeline.CheckpointableIterator(read(4).repeat(2).batch(3))
  first = [next(iterator)["x"].tolist() for _ in range(8)]
  iterator.save(str(tmp_path / "data"))
  rest = [b["x"].tolist() for b in iterator]
  resumed = pipeline.CheckpointableIterator(read(4).repeat(2).batch(3))
  resumed.restore(str(tmp_path / "data"))
  assert [b["x"].tolist() for b in resumed] == rest
  assert sum(first + rest, []) == stream
  # Unshuffled reads: one fixed permutation, whatever the seed.
  fixed = [int(x["x"]) for x in file_source.permuted({"x": np.arange(20)}, 20, shuffle=False,
                                                      seed=9).repeat(2).as_numpy_iterator()]
  assert fixed[:20] == fixed[20:] != list(range(20))


# squad_window ------------------------------------------------------------------------------------

def test_squad_window_keeps_the_answer_inside_a_window_at_varying_offsets():
  for split in ("train", "validation", "test"):
    windows = offline.window_questions(split, 16, 0)
    assert [q["id"] for q in windows] == [q["id"] for q in offline.squad_questions(split)]
    assert all(q["answers"][0] in q["context"] for q in windows)
    sizes = [len(q["context"].split()) for q in windows]
    assert sum(s == 16 for s in sizes) > 0.95 * len(sizes)
    offsets = [q["offset"] for q in windows]
    assert len(set(offsets)) == 16 and max(offsets.count(o) for o in set(offsets)) < 0.2 * len(
        offsets)
    words = [q["context"].split() for q in windows]
    assert all(w[q["offset"]] in q["answers"][0] or q["answers"][0].split()[0] in w[q["offset"]]
               for w, q in zip(words, windows))
  other = offline.window_questions("test", 16, 1)
  assert sum(a["offset"] != b["offset"] for a, b in zip(windows, other)) > 0.5 * len(windows)
  assert all(len(q["context"].split()) <= max(8, len(q["answers"][0].split()))
             for q in offline.window_questions("test", 8, 0))


def test_answer_window_edges():
  rng = random.Random(0)
  context = "a b c d e f g h i j"
  assert offline.answer_window(context, "a b", 4, rng) == ("a b c d", 0)
  assert offline.answer_window(context, "j", 4, rng) == ("g h i j", 3)
  assert offline.answer_window(context, "c d e f g", 3, rng) == ("c d e f g", 0)
  assert offline.answer_window("x  y", "y", 5, rng) == ("x y", 1)
  assert {offline.answer_window(context, "e", 4, random.Random(s))[1] for s in range(50)} == {
      0, 1, 2, 3}
  with pytest.raises(ValueError, match="not in its context"):
    offline.answer_window(context, "z", 4, rng)


def test_squad_window_size_is_a_gin_knob_through_seqio():
  gin.bind_parameter("named_vocabulary.name", "cpu_sp")
  vocab = registry.sync_vocabulary()
  with gin.unlock_config():
    gin.bind_parameter("offline.squad_window.words", 6)
  try:
    ds = seqio.get_mixture_or_task("squad_window").get_dataset(
        {"inputs": 256, "targets": 128}, split="validation", shuffle=False)
    for ex in ds.take(20).as_numpy_iterator():
      text = vocab.decode(ex["inputs"].tolist())
      window = text[text.index(" context: ") + len(" context: "):]
      answer = vocab.decode(ex["targets"][:-1].tolist())
      assert len(window.split()) <= max(6, len(answer.split()))
    gin.bind_parameter("offline.squad_window.words", 0)
    from synthetic_pretraining import cli  # pylint: disable=import-outside-toplevel
    with pytest.raises(cli.UsageError, match="squad_window.words"):
      offline.squad_window()
  finally:
    with gin.unlock_config():
      gin.bind_parameter("offline.squad_window.words", 16)
