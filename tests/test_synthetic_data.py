"""Synthetic tasks: invariants, length limits, seeded streams, split disjointness, SeqIO, files.

The golden outputs of the authors' generator are checked in test_synthetic_golden.py; here every
task's defining property is checked on random examples (hypothesis), plus the data contracts:
seeding, sharding, train/validation disjointness, SeqIO well-formedness, the file format.
"""
import collections
import os
import re
import sys
import textwrap

import gin
import numpy as np
import pytest
import seqio
from hypothesis import given, settings, strategies as st

import synthetic_pretraining.tasks  # noqa: F401  (registers the paper's tasks)
from synthetic_pretraining.data import pipeline
from synthetic_pretraining import export_data
from synthetic_pretraining.data import vocabularies
from synthetic_pretraining.synthetic import file_source, lime, nesting_language, nonsense_summary
from synthetic_pretraining.synthetic import registry, simple_tasks, sources
from synthetic_pretraining.synthetic.common import TokenSpace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMPLE = sorted(simple_tasks.TASKS)
ALL_TASKS = SIMPLE + list(lime.MODES) + ["nonsense_summary", "nesting_language"]
SEEDS = st.integers(0, 2**40)
INDICES = st.integers(0, 2**40)
# The shortest body each task can build (the others can build a single token): sort needs an
# order of 5 and a sequence of 5; binary tasks need both arguments and extra_id_2.
MIN_BODY = collections.defaultdict(lambda: 1, sort=11, replace=4, delete=3, search=3, count=2,
                                   union=3, intersect=3, set1_minus_set2=3, set2_minus_set1=3)


def _source(name):
  return seqio.get_mixture_or_task(name).source


def _space():
  return TokenSpace.from_vocabulary(vocabularies.configured_vocabulary())


def _body(name, inputs, space):
  prefix = simple_tasks.prefix_ids(simple_tasks.TASKS[name], space)
  assert inputs[:len(prefix)] == prefix, "every input starts with encode(name) + [extra_id_0]"
  return inputs[len(prefix):]


def _or_empty(ids, space):
  return ids if ids else [space.empty_output]


def _words(body, divider):
  words = [[]]
  for t in body:
    if t == divider:
      words.append([])
    else:
      words[-1].append(t)
  return words


def _check_simple(name, example, space, min_length=10, max_length=220):
  """Each task's defining property, on a body and its target."""
  body, target = _body(name, example["inputs"], space), example["targets"]
  assert min_length <= len(body) <= max_length, (name, len(body))
  assert target, "an empty output is written [extra_id_3], never []"
  content = set(space.pool.tolist())
  if name in ("identity", "reverse", "first_token", "last_token", "duplicate", "length", "set",
              "deduplicate"):
    assert set(body) <= content, "unary bodies are content ids only"
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
    assert target == list(dict.fromkeys(body))  # distinct tokens in first-seen order
  elif name == "deduplicate":
    assert target == [t for i, t in enumerate(body) if i == 0 or body[i - 1] != t]
    assert all(a != b for a, b in zip(target, target[1:]))
  elif name == "longest_word":
    words = _words(body, space.word_divider)
    assert all(words), "words are non-empty"
    assert target == max(words, key=len)  # the first of the longest words
  else:
    assert body.count(space.arg_divider) == 1, "binary tasks have exactly one extra_id_2"
    seq, arg = space.split_args(body)
    if name == "count":
      assert len(arg) == 1 and target == space.encode_word(str(seq.count(arg[0])))
    elif name == "search":
      found = simple_tasks.find(seq, arg) >= 0
      assert target == space.encode_word("yes" if found else "no")
    elif name == "delete":
      i = simple_tasks.find(seq, arg)
      assert target == _or_empty(seq if i < 0 else seq[:i] + seq[i + len(arg):], space)
    elif name == "sort":
      assert set(seq) <= set(arg), "sort's sequence uses only tokens of the order"
      assert collections.Counter(target) == collections.Counter(seq), "a permutation of seq"
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
@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, index=INDICES)
def test_simple_task_invariants(name, seed, index):
  _check_simple(name, _source(name).example("train", index, seed), _space())


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(SIMPLE), lengths=st.tuples(st.integers(1, 60), st.integers(0, 40)),
       seed=SEEDS)
def test_any_feasible_gin_length_range_is_respected(name, lengths, seed):
  min_length = lengths[0]
  max_length = max(min_length + lengths[1], MIN_BODY[name])
  gin.clear_config()
  gin.bind_parameter("length_range.min_length", min_length)
  gin.bind_parameter("length_range.max_length", max_length)
  gin.bind_parameter("split_sizes.validation", 10)  # a new range builds a new validation split
  source, space = _source(name), _space()
  for index in range(3):
    _check_simple(name, source.example("train", index, seed), space, min_length, max_length)


def test_paper_length_range_is_covered():
  """At the default 10..220 the bodies span the range, not just a corner of it."""
  lengths = [len(_body("identity", _source("identity").example("train", i, 1)["inputs"],
                       _space())) for i in range(400)]
  assert min(lengths) < 40 and max(lengths) > 190


def test_a_task_that_cannot_fit_the_range_says_so():
  gin.bind_parameter("length_range.min_length", 1)
  gin.bind_parameter("length_range.max_length", 8)
  with pytest.raises(RuntimeError, match="sort.*widen the length range"):
    _source("sort").draw("train", 0)


@pytest.mark.parametrize("mode", lime.MODES)
def test_lime_respects_its_gin_length_range(mode):
  """`lime_length_range` bounds inputs and outputs; by default inputs run past 127 tokens."""
  source = _source(mode)
  default = [source.example("train", i, 1) for i in range(60)]
  assert max(len(e["inputs"]) for e in default) > 127  # so the bound below has work to do
  gin.bind_parameter("lime_length_range.min_length", 90)
  gin.bind_parameter("lime_length_range.max_length", 127)
  gin.bind_parameter("split_sizes.validation", 10)
  bounded = [source.example("train", i, 1) for i in range(60)] + source.validation_examples()
  for example in bounded:
    assert len(example["inputs"]) <= 127 and len(example["targets"]) <= 127
    assert len(example["inputs"]) >= 90 - 4  # commas counted: at most 4 between 5 variables
  gin.bind_parameter("lime_length_range.min_length", 0)
  gin.bind_parameter("lime_length_range.max_length", 60)  # below the 51-53 token header + a body
  with pytest.raises(RuntimeError, match="lime_length_range"):
    source.example("train", 0, 1)


def _lime_parts(mode, example, ids):
  """(variables, lower, math, pattern, result, substitution) of a LIME example."""
  inputs, targets = example["inputs"], example["targets"]
  assert inputs[0] == ids["<UPPER>"]
  lower_at, math_at = inputs.index(ids["<LOWER>"]), inputs.index(ids["<MATH>"])
  seps = [i for i, t in enumerate(inputs) if t == ids["<sep>"]]
  assert len(seps) == 2 and 0 < lower_at < math_at < seps[0]
  variables, lower = inputs[1:lower_at], inputs[lower_at + 1:math_at]
  math = inputs[math_at + 1:seps[0]]
  first, second = inputs[seps[0] + 1:seps[1]], inputs[seps[1] + 1:]

  def substitution(serialised):
    out, i = {}, 0
    while i < len(serialised):
      var = serialised[i]
      assert serialised[i + 1:i + 3] == [ids[":"], ids["["]]
      end = serialised.index(ids["]"], i)
      out[var] = serialised[i + 3:end]
      i = end + 1
    return out

  if mode == "induct":
    result, sub, pattern = first, substitution(second), targets
  elif mode == "deduct":
    pattern, sub, result = first, substitution(second), targets
  else:
    pattern, result, sub = first, second, substitution(targets)
  return variables, lower, math, pattern, result, sub


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(lime.MODES), seed=SEEDS, index=INDICES)
def test_lime_examples_are_well_formed(mode, seed, index):
  space = _space()
  ids = lime.special_ids(space)
  example = _source(mode).example("train", index, seed)
  assert len(example["inputs"]) <= lime.MAX_LENGTH and 0 < len(example["targets"]) <= lime.MAX_LENGTH
  variables, lower, math, pattern, result, sub = _lime_parts(mode, example, ids)
  assert len(lower) == 24 and len(math) == 20 and 1 <= len(variables) <= 5
  symbols = variables + lower + math
  assert len(set(symbols)) == len(symbols) and set(symbols) <= set(space.pool.tolist())
  assert list(sub) == variables, "the substitution lists the header's variables, in order"
  assert all(2 <= len(v) <= 8 and set(v) <= set(lower + math) for v in sub.values())
  occurrences = [t for t in pattern if t in sub]
  assert set(occurrences) == set(variables) and len(occurrences) in (6, 8, 10)
  assert 5 <= len(pattern) - len(occurrences) <= 19 and set(pattern) <= set(variables + math)
  assert result == [t for s in pattern for t in sub.get(s, [s])], "result = pattern substituted"


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, index=INDICES)
def test_nonsense_summary_is_well_formed(seed, index):
  example = _source("nonsense_summary").example("train", index, seed)
  document, summary = example["inputs"], example["targets"]
  assert summary and not re.search(r"[\t\n]", document + summary)
  # Quotes (d7) and bullets (d8) are inserted; every other transformation replaces words.
  tokens = [t for t in document.split(" ") if not re.fullmatch(r"__d[78]__\w+__", t)]
  assert tokens[-1] == "."
  sentences = " ".join(tokens[:-1]).split(" . ")
  assert 7 <= len(sentences) <= 13
  words = set(nonsense_summary.WORDS)
  keywords = 0
  for sentence in sentences:
    tokens = sentence.split(" ")
    assert 5 <= len(tokens) <= 15
    for token in tokens:
      if token not in words:
        assert re.fullmatch(r"__d\d+__\w+__", token), token
        keywords += 1
  assert keywords + document.count("__d7__") + document.count("__d8__") >= 1, "keywords"


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, index=INDICES)
def test_nesting_language_sentences_nest_like_brackets(seed, index):
  space = _space()
  language = nesting_language.build(space)
  dependent_of = dict(zip(language.heads, language.dependents))
  dependents = set(language.dependents)
  sentence = _source("nesting_language").example("train", index, seed)["targets"]
  assert 2 <= len(sentence) <= 62 and len(sentence) % 2 == 0
  stack = []
  for t in sentence:
    if t in dependent_of:
      stack.append(dependent_of[t])
    else:
      assert t in dependents and stack and stack.pop() == t, "a dependent closes its own head"
  assert not stack


def test_nesting_language_heads_follow_zipf():
  language = nesting_language.build(_space())
  source = _source("nesting_language")
  counts = collections.Counter(t for i in range(300)
                               for t in source.example("train", i, 2)["targets"]
                               if t in set(language.heads))
  top = [t for t, _ in counts.most_common(3)]
  assert top[0] == language.heads[0], "the rank-1 head is the most frequent"
  assert counts[language.heads[0]] > 1.5 * counts[language.heads[1]]


@pytest.mark.parametrize("name", ["set", "induct", "nesting_language", "nonsense_summary"])
def test_streams_are_seeded_and_disjoint(name):
  source = _source(name)
  key = source.membership_key
  first = [key(source.example("train", i, seed=5)) for i in range(50)]
  assert first == [key(source.example("train", i, seed=5)) for i in range(50)], "same seed"
  assert len(set(first)) == 50, "indices give different examples"
  other_seed = {key(source.example("train", i, seed=6)) for i in range(50)}
  assert not other_seed & set(first), "another seed is another stream"
  validation = {key(e) for e in source.validation_examples()[:200]}
  assert not validation & set(first), "another split is another stream"


def _take(source, split, shard_info, n, seed=9):
  ds = source.get_dataset(split, seed=seed, shard_info=shard_info)
  return [tuple(x["inputs"].tolist()) for x in ds.take(n).as_numpy_iterator()]


def test_shards_partition_the_stream_without_overlap():
  gin.bind_parameter("split_sizes.validation", 40)
  source = _source("set")
  for split in ("train", "validation"):
    whole = _take(source, split, None, 40)
    shards = [_take(source, split, seqio.ShardInfo(i, 4), 10) for i in range(4)]
    assert all(not set(shards[i]) & set(shards[j]) for i in range(4) for j in range(i))
    # Shard i holds indices i, i + 4, ...: interleaving the shards gives the unsharded stream.
    assert [shards[i % 4][i // 4] for i in range(40)] == whole
    assert _take(source, split, seqio.ShardInfo(2, 4), 10) == shards[2], "reproducible"
  assert _take(source, "train", None, 40, seed=10) != whole, "the dataset seed is the stream's"


def test_resuming_from_an_index_continues_the_stream():
  """An example depends on its index only, so a restarted run continues where it stopped."""
  source = _source("count")
  ds = source.get_dataset("train", seed=4)
  it = iter(ds)
  for _ in range(70):
    next(it)
  assert next(it)["inputs"].numpy().tolist() == source.example("train", 70, 4)["inputs"]


def test_no_validation_input_in_100k_train_draws_of_set():
  # Bodies of 1..2 tokens with 2,000 validation inputs: the 257 one-token bodies and the 257
  # [a, a] bodies are nearly all validation inputs, so about 3/4 of raw train draws hit one and
  # the rejection is exercised hard.
  gin.bind_parameter("split_sizes.validation", 2_000)
  gin.bind_parameter("length_range.min_length", 1)
  gin.bind_parameter("length_range.max_length", 2)
  source = _source("set")
  key = source.membership_key
  validation = {key(e) for e in source.validation_examples()}
  assert len(validation) == 2_000
  for index in range(100_000):
    assert key(source.example("train", index, seed=0)) not in validation, index
  raw_hits = sum(key(source.draw("train", i, 0)) in validation for i in range(2_000))
  assert raw_hits > 0, "the rejection must have had something to reject in this setting"


def test_all_paper_tasks_are_registered():
  synthetic = {n for n in seqio.TaskRegistry.names()
               if isinstance(seqio.get_mixture_or_task(n).source, sources.SyntheticSource)}
  assert set(ALL_TASKS) <= synthetic and len(ALL_TASKS) == 23
  assert sorted(t.name for t in seqio.get_mixture_or_task("lime").tasks) == sorted(lime.MODES)


@pytest.mark.parametrize("name", ALL_TASKS + ["lime"])
def test_every_registered_task_yields_well_formed_examples_through_seqio(name):
  vocab = vocabularies.configured_vocabulary()
  ds = seqio.get_mixture_or_task(name).get_dataset({"inputs": 512, "targets": 512},
                                                    split="train", shuffle=False, seed=1)
  for example in ds.take(6).as_numpy_iterator():
    for feature in ("inputs", "targets"):
      ids = example[feature]
      assert ids.dtype == np.int32 and 1 < len(ids) <= 512 and ids[-1] == vocab.eos_id
      assert ids.min() >= 0 and ids.max() < vocab.vocab_size
      assert vocab.pad_id not in ids and vocab.eos_id not in ids[:-1]


def test_the_registry_docstring_example_works():
  # The docstring's example is its first indented block.
  lines = registry.__doc__.splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("    "))
  end = next(i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith("    "))
  code = textwrap.dedent("\n".join(lines[start:end]))
  assert "register_task(" in code
  if "rotate" in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove("rotate")
  namespace = {}
  exec(compile(code, "registry docstring", "exec"), namespace)  # pylint: disable=exec-used
  try:
    source, space = _source("rotate"), _space()
    prefix = [int(t) for t in space.encode("rotate")] + [space.task_name_divider]
    for i in range(20):
      example = source.example("train", i, seed=0)
      body = example["inputs"][len(prefix):]
      assert example["inputs"][:len(prefix)] == prefix
      assert example["targets"] == namespace["rotate"](body) and 10 <= len(body) <= 220
    ds = seqio.get_mixture_or_task("rotate").get_dataset(
        {"inputs": 256, "targets": 256}, split="validation", shuffle=False)
    assert len(list(ds.take(3).as_numpy_iterator())) == 3
  finally:
    seqio.TaskRegistry.remove("rotate")


def test_the_docs_task_module_example_registers_a_trainable_task(tmp_path, monkeypatch):
  """docs/synthetic_tasks.md's my_tasks.py, imported as MIXTURE_OR_TASK_MODULE."""
  with open(os.path.join(REPO, "docs", "synthetic_tasks.md")) as f:
    section = f.read().split("## Adding a task", 1)[1]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  (tmp_path / "my_tasks.py").write_text(code)
  monkeypatch.syspath_prepend(str(tmp_path))
  for name in ("rotate", "rotate_pairs"):
    if name in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(name)
  try:
    task = pipeline.get_mixture_or_task("rotate", "my_tasks")
    ds = task.get_dataset({"inputs": 64, "targets": 64}, split="train", shuffle=False, seed=0)
    for example in ds.take(4).as_numpy_iterator():
      assert example["inputs"][-1] == example["targets"][-1] == vocabularies.configured_vocabulary().eos_id
  finally:
    sys.modules.pop("my_tasks", None)
    for name in ("rotate", "rotate_pairs"):
      if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)


def _lines(path):
  with open(path) as f:
    return f.read().splitlines()


def test_export_writes_unique_disjoint_parsable_files(tmp_path):
  train, valid = str(tmp_path / "train.txt"), str(tmp_path / "valid.txt")
  small = "--gin.split_sizes.validation=300"
  assert export_data.main(["--task=set", "--split=train", "--num_examples=400",
                           f"--output={train}", small]) == 0
  assert export_data.main(["--task=set", "--split=validation", "--num_examples=300",
                           f"--output={valid}", small]) == 0
  parsed = {}
  for split, path in (("train", train), ("valid", valid)):
    rows = []
    for line in _lines(path):
      assert re.fullmatch(r"\[\d+(, \d+)*\]\t\[\d+(, \d+)*\]", line), line
      inputs, targets = (eval(field) for field in line.split("\t"))  # pylint: disable=eval-used
      rows.append((tuple(inputs), targets))
    parsed[split] = rows
  train_inputs = [r[0] for r in parsed["train"]]
  valid_inputs = [r[0] for r in parsed["valid"]]
  assert len(set(train_inputs)) == 400 and len(set(valid_inputs)) == 300, "inputs unique"
  assert not set(train_inputs) & set(valid_inputs), "train and valid disjoint"
  space = _space()
  for inputs, targets in parsed["train"][:50]:
    assert targets == simple_tasks.target_set(_body("set", list(inputs), space), space)
  first = _source("set").example("train", 0, 0)
  assert parsed["train"][0] == (tuple(first["inputs"]), first["targets"])
  assert sorted(os.listdir(tmp_path)) == ["train.txt", "valid.txt"], "no temporary file left"


def test_export_of_the_lime_mixture_interleaves_its_tasks(tmp_path):
  path = str(tmp_path / "lime.txt")
  assert export_data.main(["--task=lime", "--num_examples=6", f"--output={path}", "--seed=3"]) == 0
  tasks_in_order = sorted(lime.MODES)  # seqio lists a mixture's tasks by name
  expected = [file_source.format_line(_source(tasks_in_order[i % 3]).example("train", i // 3, 3),
                                      ("inputs", "targets")) for i in range(6)]
  assert _lines(path) == expected


@pytest.mark.parametrize("args, message", [
    (["--task=sett"], "Did you mean 'set'"),
    (["--task=set", "--split=test"], "--split must be 'train' or 'validation', got 'test'"),
    (["--task=squad_offline"], "not generated on the fly"),
    (["--task=set", "--split=validation", "--num_examples=6", "--gin.split_sizes.validation=5"],
     "split_sizes.validation"),
    (["--task=sort", "--gin.length_range.min_length=1", "--gin.length_range.max_length=8"],
     "widen the length range"),
])
def test_export_errors_are_one_clear_line(tmp_path, capsys, args, message):
  output = tmp_path / "out.txt"
  output.write_text("previous contents\n")
  argv = ["--num_examples=3", f"--output={output}"] + args
  assert export_data.main(argv) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
  assert os.listdir(tmp_path) == ["out.txt"] and output.read_text() == "previous contents\n"


def test_export_interrupted_midway_leaves_nothing(tmp_path, monkeypatch):
  written = []

  def failing_format_line(example, features):
    if len(written) == 5:
      raise KeyboardInterrupt
    written.append(example)
    return file_source.format_ids(example["inputs"])

  monkeypatch.setattr(export_data.file_source, "format_line", failing_format_line)
  with pytest.raises(KeyboardInterrupt):
    export_data.export("set", "train", 20, str(tmp_path / "set.txt"), progress=False)
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("name, kind", [("set", "pairs"), ("nesting_language", "sequence"),
                                        ("nonsense_summary", "text")])
def test_exported_files_read_back_identically(tmp_path, name, kind):
  path = str(tmp_path / f"{name}.txt")
  n = 5 if name == "nonsense_summary" else 30
  assert export_data.main([f"--task={name}", f"--num_examples={n}", f"--output={path}"]) == 0
  features = _source(name).features
  task = registry.register_file_task(f"{name}_from_file", {"train": path}, kind=kind,
                                     replace=True)
  try:
    read = list(task.source.get_dataset("train", shuffle=False).as_numpy_iterator())
  finally:
    seqio.TaskRegistry.remove(f"{name}_from_file")
  as_written = []
  for example in read:
    values = {k: v.decode() if isinstance(v, bytes) else v.tolist() for k, v in example.items()}
    as_written.append(file_source.format_line(values, features))
  assert as_written == _lines(path) and len(as_written) == n
  assert task.source.skipped_lines() == 0


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_malformed_lines_name_file_and_line(tmp_path, on_error, capfd):
  path = tmp_path / "bad.txt"
  path.write_text("[5, 6]\t[7]\n[5, 6]\t[7]\n[5, x]\t[7]\n[8]\t[9, 10]\n[8]\t[99999]\n[8]\n")
  source = file_source.AuthorsFileSource({"train": str(path)}, on_error=on_error)
  ds = source.get_dataset("train", shuffle=False)
  if on_error == "raise":
    with pytest.raises(Exception, match=r"bad\.txt: line.*\b3\b"):
      list(ds.as_numpy_iterator())
  else:
    rows = [x["inputs"].tolist() for x in ds.as_numpy_iterator()]
    assert rows == [[5, 6], [5, 6], [8]] and source.skipped_lines() == 3
    err = capfd.readouterr().err
    assert "bad.txt: line" in err and "vocabulary size" in err
