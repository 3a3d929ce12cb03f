"""The formal-language and procedural generators (dyck, shuffle_dyck, dyck_completion,
cellular_automaton, cellular_automaton_next_rows): their grammars, checked by independent code.

Brackets are read back with the convention the docs give (type i opens with the pool's (2i)-th id
and closes with the next one); automaton rows are checked against a tiny implementation written
here from Wolfram's numbering (rule bits 7..0 are the new values of neighbourhoods 111..000), and
the rule classes against facts typed here. Plus the data contracts every synthetic source keeps
(seeded, index-addressable, resumable, disjoint splits, well-formed through seqio) and an e2e
smoke of `python -m synthetic_pretraining.export_data` on each task.
"""
import itertools
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import seqio

import synthetic_pretraining.tasks  # noqa: F401  (registers the tasks)
from synthetic_pretraining import export_data
from synthetic_pretraining.data import vocabularies
from synthetic_pretraining.synthetic import cellular_automata, common, file_source

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW_TASKS = ["dyck", "shuffle_dyck", "dyck_completion", "cellular_automaton",
             "cellular_automaton_next_rows"]
DRAWS = 1500  # strings per grammar check

# Wolfram's classes of elementary rules, by the smallest rule of each equivalence class
# (class 2 is every other rule).
CLASS_1 = {0, 8, 32, 40, 128, 136, 160, 168}
CLASS_3 = {18, 22, 30, 45, 60, 90, 105, 122, 126, 146, 150}
CLASS_4 = {41, 54, 106, 110}


def _source(name):
  return seqio.get_mixture_or_task(name).source


def _space():
  return common.TokenSpace.from_vocabulary(vocabularies.configured_vocabulary())


def _prefix(name, space):
  return [int(t) for t in space.encode(name)] + [space.sentinel(0)]


def _body(name, inputs, space):
  prefix = _prefix(name, space)
  assert inputs[:len(prefix)] == prefix, "inputs start with encode(name) + [extra_id_0]"
  return inputs[len(prefix):]


def _brackets(k, space):
  """{open id: type}, {close id: type} for k types."""
  pool = [int(t) for t in space.pool]
  return {pool[2 * i]: i for i in range(k)}, {pool[2 * i + 1]: i for i in range(k)}


def _dyck_depth(ids, opens, closes):
  """The maximum depth if `ids` is a well-nested Dyck prefix, else None; and the open stack."""
  stack, deepest = [], 0
  for t in ids:
    if t in opens:
      stack.append(opens[t])
      deepest = max(deepest, len(stack))
    elif not stack or stack.pop() != closes[t]:
      return None, stack
  return deepest, stack


def _bind(config, **values):
  for key, value in values.items():
    gin.bind_parameter(f"{config}.{key}", value)


# ------------------------------------------------------------------------------------------------
# Dyck and shuffle-Dyck


@pytest.mark.parametrize("k, depth, lengths, reached", [
    (16, 8, (2, 126), True), (2, 3, (10, 40), True), (1, 3, (20, 60), True),
    (5, 30, (50, 51), False)])  # depth 25 would need 25 openings in a row
def test_every_dyck_string_is_balanced_and_within_the_depth_bound(k, depth, lengths, reached):
  gin.bind_parameter("split_sizes.validation", 20)
  _bind("dyck_config", num_types=k, max_depth=depth, min_length=lengths[0],
        max_length=lengths[1])
  space, source = _space(), _source("dyck")
  opens, closes = _brackets(k, space)
  deepest, types, sizes = 0, set(), set()
  for i in range(DRAWS):
    example = source.example("train", i, seed=1)
    assert example["inputs"] == _prefix("dyck", space), "LM task: inputs are the name prefix"
    ids = example["targets"]
    assert set(ids) <= set(opens) | set(closes), "only the k bracket pairs"
    string_depth, stack = _dyck_depth(ids, opens, closes)
    assert string_depth is not None and not stack, f"not balanced: {ids}"
    assert string_depth <= depth
    assert lengths[0] <= len(ids) <= lengths[1] and len(ids) % 2 == 0
    deepest, sizes = max(deepest, string_depth), sizes | {len(ids)}
    types |= {opens[t] for t in ids if t in opens}
  if reached:
    assert deepest == depth, "the depth bound is reached"
  assert types == set(range(k)), "every bracket type occurs"
  assert len(sizes) == len(range(lengths[0] + lengths[0] % 2, lengths[1] + 1, 2)), "all lengths"


@pytest.mark.parametrize("k, depth", [(16, 8), (2, 4)])
def test_every_shuffle_dyck_string_balances_each_type_and_types_interleave(k, depth):
  gin.bind_parameter("split_sizes.validation", 20)
  _bind("shuffle_dyck_config", num_types=k, max_depth=depth)
  space, source = _space(), _source("shuffle_dyck")
  opens, closes = _brackets(k, space)
  not_dyck = 0
  for i in range(DRAWS):
    ids = source.example("train", i, seed=2)["targets"]
    assert set(ids) <= set(opens) | set(closes) and 2 <= len(ids) <= 126
    counts = [0] * k
    for t in ids:
      if t in opens:
        counts[opens[t]] += 1
      else:
        counts[closes[t]] -= 1
        assert counts[closes[t]] >= 0, "a type closes only what it opened"
      assert sum(counts) <= depth, "at most max_depth brackets open at once"
    assert counts == [0] * k, "every type balanced"
    not_dyck += _dyck_depth(ids, opens, closes)[0] is None
  assert not_dyck > DRAWS // 4, f"types interleave: only {not_dyck} of {DRAWS} are not Dyck"


def test_a_single_bracket_type_makes_shuffle_dyck_plain_dyck():
  gin.bind_parameter("split_sizes.validation", 20)
  _bind("shuffle_dyck_config", num_types=1)
  space, source = _space(), _source("shuffle_dyck")
  opens, closes = _brackets(1, space)
  for i in range(200):
    assert _dyck_depth(source.example("train", i, seed=0)["targets"], opens, closes)[0]


@pytest.mark.parametrize("k, depth", [(16, 8), (3, 2)])
def test_the_completion_target_closes_the_prefix_exactly(k, depth):
  gin.bind_parameter("split_sizes.validation", 20)
  _bind("dyck_config", num_types=k, max_depth=depth)
  space, source = _space(), _source("dyck_completion")
  opens, closes = _brackets(k, space)
  closer = {i: c for c, i in closes.items()}
  for i in range(DRAWS):
    example = source.example("train", i, seed=3)
    prefix, target = _body("dyck_completion", example["inputs"], space), example["targets"]
    prefix_depth, stack = _dyck_depth(prefix, opens, closes)
    assert prefix_depth is not None and prefix_depth <= depth, "the prefix is a Dyck prefix"
    assert stack, "the prefix leaves brackets open (the target is never empty)"
    assert set(target) <= set(closes) and len(target) == len(stack), "only closers, shortest"
    assert target == [closer[t] for t in reversed(stack)], "open brackets closed, last first"
    whole_depth, rest = _dyck_depth(prefix + target, opens, closes)
    assert whole_depth is not None and not rest, "prefix + target is balanced"
    assert 1 <= len(prefix) < 126


# ------------------------------------------------------------------------------------------------
# Elementary cellular automata


def _reference_step(row, rule, periodic=True):
  """Wolfram's definition, one cell at a time."""
  new_value = dict(zip(["111", "110", "101", "100", "011", "010", "001", "000"],
                       (int(b) for b in format(rule, "08b"))))
  n, out = len(row), []
  for j in range(n):
    left = row[j - 1] if j > 0 else (row[-1] if periodic else 0)
    right = row[j + 1] if j < n - 1 else (row[0] if periodic else 0)
    out.append(new_value[f"{left}{row[j]}{right}"])
  return out


def _rows(ids, space):
  """Token rows back to 0/1 lists (dead = pool[0], live = pool[1], rows split by extra_id_1)."""
  dead, live, separator = int(space.pool[0]), int(space.pool[1]), space.sentinel(1)
  rows = [[]]
  for t in ids:
    if t == separator:
      rows.append([])
    else:
      assert t in (dead, live), t
      rows[-1].append(int(t == live))
  return rows


def _consistent_rules(rows, periodic=True):
  """Every rule under which each row follows from the previous one."""
  return [r for r in range(256)
          if all(_reference_step(a, r, periodic) == b for a, b in zip(rows, rows[1:]))]


def test_the_reference_step_is_wolframs():
  # Rule 90 is XOR of the neighbours; rule 30 is left XOR (centre OR right); 184 moves 1s right.
  row = [0, 0, 0, 1, 0, 0, 0]
  assert _reference_step(row, 90) == [0, 0, 1, 0, 1, 0, 0]
  assert _reference_step(row, 30) == [0, 0, 1, 1, 1, 0, 0]
  assert _reference_step([1, 1, 0, 1, 0, 0, 0], 184) == [1, 0, 1, 0, 1, 0, 0]
  assert _reference_step([1, 0, 0, 0], 170, periodic=False) == [0, 0, 0, 0]  # shift left
  assert _reference_step([1, 0, 0, 0], 170) == [0, 0, 0, 1]


@pytest.mark.parametrize("rule, boundary, width, steps",
                         [(110, "periodic", 16, 6), (30, "periodic", 9, 12), (90, "zero", 11, 5),
                          (184, "zero", 16, 3), (54, "periodic", 6, 4), (255, "zero", 5, 2)])
def test_every_automaton_row_follows_its_rule(rule, boundary, width, steps):
  gin.bind_parameter("split_sizes.validation", 20)
  _bind("cellular_automaton_config", rule=rule, width=width, steps=steps, boundary=boundary,
        input_rows=min(2, steps))
  space = _space()
  periodic = boundary == "periodic"
  for i in range(200):
    example = _source("cellular_automaton").example("train", i, seed=4)
    assert example["inputs"] == _prefix("cellular_automaton", space)
    rows = _rows(example["targets"], space)
    assert len(rows) == steps + 1 and all(len(r) == width for r in rows)
    for previous, row in zip(rows, rows[1:]):
      assert row == _reference_step(previous, rule, periodic)

    pair = _source("cellular_automaton_next_rows").example("train", i, seed=4)
    shown = _rows(_body("cellular_automaton_next_rows", pair["inputs"], space), space)
    rest = _rows(pair["targets"], space)
    assert len(shown) == min(2, steps) and len(shown) + len(rest) == steps + 1
    whole = shown + rest
    assert all(b == _reference_step(a, rule, periodic) for a, b in zip(whole, whole[1:]))


def test_the_default_automaton_is_rule_110_on_16_cells_for_7_rows():
  space = _space()
  ids = _source("cellular_automaton").example("train", 0, seed=0)["targets"]
  rows = _rows(ids, space)
  assert len(ids) == 7 * 16 + 6 == 118 and len(rows) == 7
  assert 110 in _consistent_rules(rows)
  first_rows = {tuple(_rows(_source("cellular_automaton").example("train", i, 0)["targets"],
                            space)[0]) for i in range(300)}
  assert len(first_rows) > 290, "first rows are random"


def _reference_equivalents(rule):
  """Rule, mirror image, complement, both: from the neighbourhood table, independently."""
  table = {f"{n:03b}": (rule >> n) & 1 for n in range(8)}

  def number(t):
    return sum(t[f"{n:03b}"] << n for n in range(8))

  mirrored = {k: table[k[::-1]] for k in table}
  flip = {"0": "1", "1": "0"}
  complemented = {k: 1 - table["".join(flip[c] for c in k)] for k in table}
  both = {k: 1 - mirrored["".join(flip[c] for c in k)] for k in table}
  return {rule, number(mirrored), number(complemented), number(both)}


def _reference_class(rule):
  smallest = min(_reference_equivalents(rule))
  return 1 if smallest in CLASS_1 else 3 if smallest in CLASS_3 else 4 if smallest in CLASS_4 else 2


def test_the_rule_classes_are_wolframs():
  representatives = {min(_reference_equivalents(r)) for r in range(256)}
  assert len(representatives) == 88
  named = set(itertools.chain(*cellular_automata.CLASSES.values()))
  assert named == representatives and sum(map(len, cellular_automata.CLASSES.values())) == 88
  assert all(cellular_automata.RULE_CLASS[r] == _reference_class(r) for r in range(256))
  for rule in (30, 45, 90, 150):
    assert rule in cellular_automata.RULES_OF_CLASS[3]
  assert {110, 124, 137, 193, 54} <= set(cellular_automata.RULES_OF_CLASS[4])
  assert {0, 255, 8} <= set(cellular_automata.RULES_OF_CLASS[1])
  assert {4, 184, 204} <= set(cellular_automata.RULES_OF_CLASS[2])
  assert set(cellular_automata.equivalents(110)) == _reference_equivalents(110) == {110, 124,
                                                                                     137, 193}


@pytest.mark.parametrize("rule_class", [1, 2, 3, 4])
def test_class_drawn_rules_lie_in_the_named_class(rule_class):
  space = _space()
  automaton = cellular_automata.CellularAutomaton(space, None, rule_class, width=24, steps=8)
  rng = common.TaskRandom(space)
  drawn = set()
  for i in range(400):
    rng.seed(i)
    rule, rows = automaton.draw(rng)
    assert _reference_class(rule) == rule_class, rule
    for previous, row in zip(rows.tolist(), rows.tolist()[1:]):
      assert row == _reference_step(previous, rule)
    drawn.add(rule)
  assert len(drawn) >= min(12, len(cellular_automata.RULES_OF_CLASS[rule_class])), "varied rules"

  # The task's examples: the rows follow at least one rule of the class.
  gin.bind_parameter("split_sizes.validation", 20)
  _bind("cellular_automaton_config", rule_class=rule_class, width=24, steps=8)
  for i in range(40):
    rows = _rows(_source("cellular_automaton").example("train", i, seed=5)["targets"], space)
    assert any(_reference_class(r) == rule_class for r in _consistent_rules(rows)), rows


# ------------------------------------------------------------------------------------------------
# The contracts of a synthetic source


@pytest.mark.parametrize("name", NEW_TASKS)
def test_streams_are_seeded_index_addressable_and_disjoint(name):
  gin.bind_parameter("split_sizes.validation", 300)
  source = _source(name)
  key = source.membership_key
  first = [source.example("train", i, seed=5) for i in range(60)]
  assert first == [source.example("train", i, seed=5) for i in range(60)], "same seed, same"
  assert [source.example("train", i, seed=5) for i in (59, 3, 17)] == [first[59], first[3],
                                                                         first[17]], "any order"
  keys = [key(e) for e in first]
  assert len(set(keys)) >= 58, "indices give different examples"
  other = [key(source.example("train", i, seed=6)) for i in range(60)]
  assert sum(a != b for a, b in zip(keys, other)) >= 58, "another seed is another stream"
  validation = {key(e) for e in source.validation_examples()}
  assert len(validation) == 300 and not validation & set(keys), "splits disjoint"


@pytest.mark.parametrize("name", ["shuffle_dyck", "cellular_automaton_next_rows"])
def test_the_dataset_resumes_and_shards_by_index(name):
  source = _source(name)
  it = iter(source.get_dataset("train", seed=7))
  for _ in range(70):
    next(it)
  assert {k: v.numpy().tolist() for k, v in next(it).items()} == source.example("train", 70, 7)
  shard = source.get_dataset("train", seed=7, shard_info=seqio.ShardInfo(1, 3))
  got = [x["targets"].tolist() for x in shard.take(5).as_numpy_iterator()]
  assert got == [source.example("train", 1 + 3 * j, 7)["targets"] for j in range(5)]


@pytest.mark.parametrize("name", NEW_TASKS)
def test_every_new_task_yields_well_formed_examples_through_seqio(name):
  vocab = vocabularies.configured_vocabulary()
  ds = seqio.get_mixture_or_task(name).get_dataset({"inputs": 256, "targets": 256},
                                                    split="validation", shuffle=False)
  for example in ds.take(8).as_numpy_iterator():
    for feature in ("inputs", "targets"):
      ids = example[feature]
      assert ids.dtype == np.int32 and 1 < len(ids) <= 256 and ids[-1] == vocab.eos_id
      assert ids.min() >= 0 and ids.max() < vocab.vocab_size
      assert vocab.pad_id not in ids and vocab.eos_id not in ids[:-1]


def test_the_task_list_describes_the_new_tasks():
  from synthetic_pretraining.tasks import __main__ as task_list  # pylint: disable=import-outside-toplevel
  lines = {line.split()[0]: line for line in task_list.lines([])}
  for name in NEW_TASKS:
    assert name in lines and "(no description)" not in lines[name]
    assert ("formal language" if "dyck" in name else "procedural") in lines[name]


@pytest.mark.parametrize("binding, message", [
    ("--gin.dyck_config.num_types=200", "num_types at most"),
    ("--gin.dyck_config.max_depth=0", "max_depth >= 1"),
    ("--gin.dyck_config.max_length=1", "even length"),
    ("--gin.cellular_automaton_config.rule=256", "a rule in 0..255"),
    ("--gin.cellular_automaton_config.rule_class=5", "must be 1, 2, 3 or 4"),
    ("--gin.cellular_automaton_config.input_rows=7", "input_rows <= steps"),
])
def test_bad_knobs_are_one_clear_line(tmp_path, capsys, binding, message):
  task = "dyck_completion" if "dyck" in binding else "cellular_automaton_next_rows"
  argv = [f"--task={task}", "--num_examples=2", f"--output={tmp_path / 'x.txt'}", binding]
  assert export_data.main(argv) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
  assert not os.listdir(tmp_path)


@pytest.mark.e2e
def test_export_data_writes_each_new_task(tmp_path, capsys):
  """The first task through the user's command in a fresh process, the others through the same
  binary's `main` in this process (a fresh interpreter per task only repeats the imports)."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
  for index, name in enumerate(NEW_TASKS):
    output = tmp_path / f"{name}.txt"
    flags = [f"--task={name}", "--num_examples=4", f"--output={output}"]
    if index == 0:
      done = subprocess.run([sys.executable, "-m", "synthetic_pretraining.export_data", *flags],
                            capture_output=True, text=True, env=env, cwd=str(tmp_path),
                            timeout=300)
      assert done.returncode == 0, done.stderr
      out = done.stdout
    else:
      capsys.readouterr()
      assert export_data.main(flags) == 0
      out = capsys.readouterr().out
    assert f"Wrote 4 examples of {name}/train" in out
    source = _source(name)
    expected = [file_source.format_line(source.example("train", i, 0), source.features)
                for i in range(4)]
    assert output.read_text().splitlines() == expected
