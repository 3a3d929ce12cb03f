"""Synthetic tasks: invariants, length limits, seeded streams, split disjointness, SeqIO, files."""
import collections
import os

import gin
import numpy as np
import pytest
import seqio
from hypothesis import given, settings, strategies as st

import tasks  # noqa: F401  (registers the paper's tasks)
from synthetic_pretraining import export_data
from synthetic_pretraining import vocabularies
from synthetic_pretraining.synthetic import file_source, lime, registry, simple_tasks, sources
from synthetic_pretraining.synthetic.common import TokenSpace

SIMPLE = sorted(simple_tasks.TASKS)
ALL_TASKS = SIMPLE + list(lime.MODES) + ["nonsense_summary", "nesting_language"]
SEEDS = st.integers(0, 2**40)
INDICES = st.integers(0, 2**40)


def _source(name):
  return seqio.get_mixture_or_task(name).source


def _space():
  return TokenSpace.from_vocabulary(vocabularies.VOCABULARY)


def _body(name, inputs, space):
  prefix = simple_tasks.prefix_ids(simple_tasks.TASKS[name], space)
  assert inputs[:len(prefix)] == prefix
  return inputs[len(prefix):]


def _unless_empty(ids, space):
  return ids if ids else [space.empty_output]


def _check_simple(name, example, space, min_length=10, max_length=220):
  """Each task's defining property, on a body and its target."""
  body, target = _body(name, example["inputs"], space), example["targets"]
  assert min_length <= len(body) <= max_length, (name, len(body))
  content = set(space.pool.tolist())
  words = {"yes": space.encode_word("yes"), "no": space.encode_word("no")}
  if name in ("identity", "reverse", "first_token", "last_token", "duplicate", "length"):
    assert set(body) <= content
  if name == "identity":
    assert target == body
  elif name == "reverse":
    assert target == body[::-1]
  elif name == "first_token":
    assert target == body[:1]
  elif name == "last_token":
    assert target == body[-1:]
  elif name == "duplicate":
    assert target[::2] == body and target[1::2] == body
  elif name == "length":
    assert target == space.encode_word(str(len(body)))
  elif name == "set":
    assert target == list(dict.fromkeys(body))
  elif name == "deduplicate":
    assert target == [t for i, t in enumerate(body) if i == 0 or body[i - 1] != t]
    assert len(target) <= len(body)
  elif name == "longest_word":
    words_ = [[]]
    for t in body:
      if t == space.word_divider:
        words_.append([])
      else:
        words_[-1].append(t)
    assert len(target) == max(map(len, words_)) and target in words_
  else:
    seq, arg = space.split_args(body)
    if name == "count":
      assert len(arg) == 1 and target == space.encode_word(str(seq.count(arg[0])))
    elif name == "search":
      found = simple_tasks.find(seq, arg) >= 0
      assert target == words["yes" if found else "no"]
    elif name == "delete":
      i = simple_tasks.find(seq, arg)
      assert target == _unless_empty(seq if i < 0 else seq[:i] + seq[i + len(arg):], space)
    elif name == "sort":
      assert set(seq) <= set(arg)
      assert collections.Counter(target) == collections.Counter(seq)
      rank = {t: i for i, t in enumerate(arg)}
      assert [rank[t] for t in target] == sorted(rank[t] for t in seq)
    elif name == "replace":
      key, value = arg
      assert key in seq and target == [value if t == key else t for t in seq]
    else:
      a, b = set(seq), set(arg)
      expected = {"union": a | b, "intersect": a & b, "set1_minus_set2": a - b,
                  "set2_minus_set1": b - a}[name]
      if expected:
        assert set(target) == expected and len(target) == len(expected)
      else:
        assert target == [space.empty_output]


@pytest.mark.parametrize("name", SIMPLE)
@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, index=INDICES)
def test_simple_task_invariants(name, seed, index):
  _check_simple(name, _source(name).example("train", index, seed), _space())


@pytest.mark.parametrize("name", ["set", "sort", "longest_word", "count", "delete", "union"])
def test_configured_length_range_is_respected(name):
  gin.bind_parameter("length_range.min_length", 5)
  gin.bind_parameter("length_range.max_length", 30)
  source, space = _source(name), _space()
  lengths = []
  for index in range(200):
    example = source.example("train", index, seed=3)
    _check_simple(name, example, space, 5, 30)
    lengths.append(len(_body(name, example["inputs"], space)))
  assert max(lengths) <= 30 and min(lengths) >= 5


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(lime.MODES), seed=SEEDS, index=INDICES)
def test_lime_examples_are_well_formed(mode, seed, index):
  space = _space()
  example = _source(mode).example("train", index, seed)
  ids = lime.special_ids(space)
  inputs, targets = example["inputs"], example["targets"]
  assert inputs[0] == ids["<UPPER>"] and ids["<LOWER>"] in inputs and ids["<MATH>"] in inputs
  assert inputs.count(ids["<sep>"]) == 2 and 0 < len(targets) <= lime.MAX_LENGTH
  assert len(inputs) <= lime.MAX_LENGTH
  if mode == "abduct":
    assert targets.count(ids["["]) == targets.count(ids["]"]) >= 1


def test_nonsense_summary_and_nesting_language_are_well_formed():
  ns = _source("nonsense_summary").example("train", 7, seed=1)
  assert isinstance(ns["inputs"], str) and isinstance(ns["targets"], str) and ns["targets"]
  nesting = [_source("nesting_language").example("train", i, seed=1)["targets"] for i in range(50)]
  assert all(len(s) > 0 and max(s) < _space().vocab_size - _space().num_extra_ids for s in nesting)


@pytest.mark.parametrize("name", ["set", "induct", "nesting_language", "nonsense_summary"])
def test_streams_are_seeded_and_disjoint(name):
  source = _source(name)
  key = source.membership_key
  first = [key(source.example("train", i, seed=5)) for i in range(50)]
  assert first == [key(source.example("train", i, seed=5)) for i in range(50)]
  other_seed = {key(source.example("train", i, seed=6)) for i in range(50)}
  assert not other_seed & set(first)
  validation = {key(e) for e in source.validation_examples()[:200]}
  assert not validation & set(first)


def test_shards_partition_the_stream_without_overlap():
  source = _source("set")
  def take(shard_info, n):
    ds = source.get_dataset("train", seed=9, shard_info=shard_info)
    return [tuple(x["inputs"].tolist()) for x in ds.take(n).as_numpy_iterator()]
  whole = take(None, 40)
  shards = [take(seqio.ShardInfo(i, 4), 10) for i in range(4)]
  assert not set(shards[0]) & set(shards[1])
  # Shard i holds indices i, i + 4, ...: interleaving the shards gives the unsharded stream.
  assert [shards[i % 4][i // 4] for i in range(40)] == whole
  assert take(seqio.ShardInfo(2, 4), 10) == shards[2]  # reproducible


def test_no_validation_input_in_100k_train_draws():
  gin.bind_parameter("split_sizes.validation", 2_000)
  gin.bind_parameter("length_range.min_length", 1)  # short bodies make collisions likely
  gin.bind_parameter("length_range.max_length", 3)
  source = _source("first_token")
  validation = {source.membership_key(e) for e in source.validation_examples()}
  assert len(validation) == 2_000
  raw_hits = 0
  state = source.state()
  for index in range(100_000):
    example = source._train_example(state, source._rng(state), 0, index)  # pylint: disable=protected-access
    assert source.membership_key(example) not in validation
    if index < 2_000:
      raw_hits += source.membership_key(source.draw("train", index, 0)) in validation
  assert raw_hits > 0, "the rejection must have had something to reject in this setting"


@pytest.mark.parametrize("name", ALL_TASKS + ["lime"])
def test_every_registered_task_yields_well_formed_examples_through_seqio(name):
  vocab = vocabularies.VOCABULARY
  ds = seqio.get_mixture_or_task(name).get_dataset({"inputs": 512, "targets": 512},
                                                    split="train", shuffle=False, seed=1)
  for example in ds.take(8).as_numpy_iterator():
    for feature in ("inputs", "targets"):
      ids = example[feature]
      assert ids.dtype == np.int32 and 1 < len(ids) <= 512 and ids[-1] == vocab.eos_id
      assert ids.min() >= 0 and ids.max() < vocab.vocab_size and vocab.pad_id not in ids


def test_a_custom_task_in_a_few_lines(tmp_path):
  def sample(rng):
    return rng.tokens(rng.randint(rng.min_length, rng.max_length))

  def rotate(body):
    return body[1:] + body[:1]

  registry.register_task("rotate_test", sample, rotate, replace=True)
  try:
    source, space = _source("rotate_test"), _space()
    prefix = [int(t) for t in space.encode("rotate_test")] + [space.task_name_divider]
    for i in range(20):
      example = source.example("train", i, seed=0)
      body = example["inputs"][len(prefix):]
      assert example["inputs"][:len(prefix)] == prefix and example["targets"] == rotate(body)
    ds = seqio.get_mixture_or_task("rotate_test").get_dataset(
        {"inputs": 256, "targets": 256}, split="validation", shuffle=False)
    assert len(list(ds.take(3).as_numpy_iterator())) == 3
  finally:
    seqio.TaskRegistry.remove("rotate_test")


def test_export_and_read_back(tmp_path):
  train, valid = str(tmp_path / "train.txt"), str(tmp_path / "valid.txt")
  small = "--gin.split_sizes.validation=300"
  assert export_data.main(["--task=set", "--split=train", "--num_examples=400",
                           f"--output={train}", small]) == 0
  assert export_data.main(["--task=set", "--split=validation", "--num_examples=300",
                           f"--output={valid}", small]) == 0
  lines = {s: open(p).read().splitlines() for s, p in (("train", train), ("valid", valid))}
  inputs = {s: [line.split("\t")[0] for line in ls] for s, ls in lines.items()}
  assert len(set(inputs["train"])) == 400 and len(set(inputs["valid"])) == 300
  assert not set(inputs["train"]) & set(inputs["valid"])
  assert lines["train"][0] == file_source.format_line(_source("set").example("train", 0, 0),
                                                      ("inputs", "targets"))
  assert not os.path.exists(train + ".partial")

  task = registry.register_file_task("set_from_file", {"train": train, "validation": valid},
                                     replace=True)
  try:
    got = [tuple(x["inputs"].tolist()) for x in task.source.get_dataset(
        "train", shuffle=False).as_numpy_iterator()]
    assert [file_source.format_ids(g) for g in got] == inputs["train"]
  finally:
    seqio.TaskRegistry.remove("set_from_file")


def test_export_errors_are_clear(tmp_path, capsys):
  assert export_data.main(["--task=sett", "--num_examples=3", f"--output={tmp_path}/x"]) == 1
  assert "Did you mean 'set'" in capsys.readouterr().err
  assert export_data.main(["--task=set", "--split=validation", "--num_examples=6",
                           f"--output={tmp_path}/v", "--gin.split_sizes.validation=5"]) == 1
  assert "split_sizes.validation" in capsys.readouterr().err
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_malformed_lines_name_file_and_line(tmp_path, on_error):
  path = tmp_path / "bad.txt"
  path.write_text("[5, 6]\t[7]\n[5, 6]\t[7]\n[5, x]\t[7]\n[8]\t[9, 10]\n")
  source = file_source.AuthorsFileSource({"train": str(path)}, on_error=on_error)
  ds = source.get_dataset("train", shuffle=False)
  if on_error == "raise":
    with pytest.raises(Exception, match=r"bad\.txt: line.*3"):
      list(ds.as_numpy_iterator())
  else:
    rows = [x["inputs"].tolist() for x in ds.as_numpy_iterator()]
    assert rows == [[5, 6], [5, 6], [8]] and source.skipped_lines() == 1
