"""The authors' file format, both ways.

One example per line, Python list reprs of token ids: `[input ids]<TAB>[target ids]` for the
simple tasks and LIME, `[ids]` alone for the nesting language (a `targets` sequence for span
corruption); the nonsense summary files are plain `document<TAB>summary` text.

`AuthorsFileSource` reads such files as a seqio source. Every line is checked: a malformed line
(or an id outside the vocabulary) stops the pipeline with an error naming the file and the line
number, or, with `on_error='skip'`, is reported on stderr and counted in `skipped_lines()`.
Nothing is dropped silently.

Record order: `permuted` gives any in-memory records a seeded random order (a fresh permutation
every epoch when training, one fixed permutation for evaluation), and `AuthorsFileSource` applies
it to splits small enough to hold in memory (PERMUTE_MAX_BYTES), so no file's own order (sorted
by article, grouped by register) reaches a training batch or an evaluation subset.
"""
import random
import re
import sys
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import seqio
import tensorflow as tf

from synthetic_pretraining import errors
from synthetic_pretraining import paths
from synthetic_pretraining.data import vocabularies

_IDS = r"\[\s*(\d+(\s*,\s*\d+)*)?\s*\]"
MAX_LINE_BYTES = 1 << 20  # far above any example of the paper's tasks (a few KB at most)
PREFLIGHT_BYTES = 1 << 16  # of a split's first file, checked before a run creates anything
_SHOWN_CHARS = 200  # of a malformed line in an error message
# Splits up to this size (this shard's files together) are read into memory and permuted; larger
# ones (the authors' million-line generated files, whose lines are i.i.d. draws anyway) stream in
# a seeded file order through the task's shuffle buffer.
PERMUTE_MAX_BYTES = 128 << 20
# The one order of unshuffled reads (evaluation): the same for every run, spread over the split.
EVAL_ORDER_SEED = 20220621


def permutation_order(num_records: int, *, shuffle: bool, seed: Optional[int]) -> tf.data.Dataset:
  """Record indices 0..num_records-1 in a seeded random order.

  shuffle=True (training): a fresh permutation at every pass over the dataset (each epoch), drawn
  from `seed` (0 when None); tf.data's shuffle state is part of the data iterator's checkpoint, so
  a resumed run continues the same order exactly. shuffle=False (evaluation): one fixed
  permutation (EVAL_ORDER_SEED) whatever the seed, so every run evaluates the same examples and
  a first-N subset is spread over the whole split instead of being the file's head.
  """
  if shuffle:
    return tf.data.Dataset.range(num_records).shuffle(
        max(num_records, 1), seed=0 if seed is None else int(seed), reshuffle_each_iteration=True)
  order = np.random.default_rng(EVAL_ORDER_SEED).permutation(num_records).astype(np.int64)
  return tf.data.Dataset.from_tensor_slices(order)


def permuted(records: Any, num_records: int, *, shuffle: bool,
             seed: Optional[int]) -> tf.data.Dataset:
  """The records as a dataset in the order of `permutation_order`.

  Args:
    records: dicts and tuples whose leaves are columns with a leading record axis of size
      `num_records`: tensors (ragged allowed), numpy arrays or lists.
    num_records: the number of records.
    shuffle, seed: as in `permutation_order`.
  """
  def columns(node):
    if isinstance(node, dict):
      return {k: columns(v) for k, v in node.items()}
    if isinstance(node, tuple):
      return tuple(columns(v) for v in node)
    return node if isinstance(node, (tf.Tensor, tf.RaggedTensor)) else tf.constant(node)

  def pick(node, i):
    if isinstance(node, dict):
      return {k: pick(v, i) for k, v in node.items()}
    if isinstance(node, tuple):
      return tuple(pick(v, i) for v in node)
    return node[i]

  records = columns(records)
  return permutation_order(num_records, shuffle=shuffle, seed=seed).map(
      lambda i: pick(records, i))


def format_ids(ids: Sequence[int]) -> str:
  """The authors' repr of an id list: '[1, 2, 3]'."""
  return "[" + ", ".join(str(int(t)) for t in ids) + "]"


def format_line(example: Mapping[str, Union[Sequence[int], str]], features: Sequence[str]) -> str:
  """One line of the authors' format for an example (id lists or text, tab-separated)."""
  fields = []
  for name in features:
    value = example[name]
    if isinstance(value, str):
      if "\t" in value or "\n" in value:
        raise ValueError(f"feature {name!r} contains a tab or newline; it cannot be written as "
                         "one field of a line")
      fields.append(value)
    else:
      fields.append(format_ids(value))
  return "\t".join(fields)


def _as_utf8(text: tf.Tensor) -> tf.Tensor:
  """`text` with every invalid UTF-8 byte replaced by U+FFFD (TensorFlow's error messages, and
  Python reading them, need valid UTF-8)."""
  return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace",
                                      replacement_char=0xFFFD)


def _parse_ids(field: tf.Tensor) -> tf.Tensor:
  inner = tf.strings.regex_replace(field, r"[\[\]\s]", "")
  parts = tf.strings.split(inner, ",")
  parts = tf.boolean_mask(parts, tf.strings.length(parts) > 0)
  return tf.strings.to_number(parts, tf.int64)


class AuthorsFileSource(seqio.DataSource):
  """Reads files in the authors' line format, one file pattern per split.

  Args:
    split_to_filepattern: e.g. {'train': 'set/train.txt', 'validation': 'gs://b/set/valid*.txt'}
      (local or gs://); a pattern may match several files (sharded at file level when there are
      enough).
    features: the feature of each tab-separated field: ('inputs', 'targets') for the simple tasks,
      LIME and nonsense summary, ('targets',) for the nesting language.
    text: fields are plain text (nonsense summary), not id lists.
    on_error: 'raise' (default) or 'skip' for malformed lines.
    vocabulary: ids must be below its size (default: the configured vocabulary).
    max_line_bytes: longer lines are malformed; they are rejected before any parsing (a 50 MB
      line would take minutes and gigabytes to match) and never echoed whole.
    eval_order: unshuffled reads (evaluation) in 'file' order, or 'permuted' (one fixed
      permutation, `permutation_order`) so that a first-N subset spans the split. Shuffled reads
      of a split up to PERMUTE_MAX_BYTES are always permuted afresh each epoch from the seed.
  """

  def __init__(self, split_to_filepattern: Mapping[str, Union[str, Sequence[str]]],
               features: Sequence[str] = ("inputs", "targets"), text: bool = False,
               on_error: str = "raise", vocabulary: Optional[seqio.Vocabulary] = None,
               max_line_bytes: int = MAX_LINE_BYTES, eval_order: str = "file"):
    if on_error not in ("raise", "skip"):
      raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if eval_order not in ("file", "permuted"):
      raise ValueError(f"eval_order must be 'file' or 'permuted', got {eval_order!r}")
    self.eval_order = eval_order
    super().__init__(splits=tuple(split_to_filepattern))
    self._patterns = dict(split_to_filepattern)
    self.features = tuple(features)
    self.text = text
    self.on_error = on_error
    self._vocabulary = vocabulary
    self.max_line_bytes = int(max_line_bytes)
    self._skipped = None

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def list_shards(self, split: str) -> Sequence[str]:
    patterns = self._patterns[split]
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted(f for p in patterns for f in paths.glob(p))  # local or gs://
    if not files:
      raise errors.MissingInputError(f"No file matches {patterns} (split {split!r}).")
    return files

  def check_split(self, split: str) -> Sequence[str]:
    """The files of `split`; a one-line error if none match or all are empty."""
    files = self.list_shards(split)
    if all(paths.as_path(f).stat().length == 0 for f in files):
      raise errors.UsageError(f"The {split!r} split has no examples: {', '.join(files[:3])} "
                           f"{'is' if len(files) == 1 else 'are'} empty (expected one example "
                           "per line).")
    return files

  def check_head(self, split: str) -> None:
    """A one-line error if the first PREFLIGHT_BYTES of the split's first file hold a line that
    is not UTF-8 or not of the form, so a run refuses a broken file before it creates anything
    (preflight); the rest is checked as it is read. Nothing with on_error='skip'."""
    if self.on_error == "raise":
      self._check_head(self.check_split(split)[0])

  def _check_head(self, path: str) -> None:
    with paths.open_file(path, "rb") as f:
      head = f.read(PREFLIGHT_BYTES + 1)
    lines = head.split(b"\n")
    if len(head) > PREFLIGHT_BYTES:
      lines = lines[:-1]  # the last line read may be cut short
    expected = "<TAB>".join(["text" if self.text else "[ids]"] * len(self.features))
    form = re.compile("\t".join([r"[^\t]*" if self.text else _IDS] * len(self.features)))
    for number, raw in enumerate(lines, start=1):
      if not raw and number == len(lines):
        break  # the end of the file
      try:
        line = raw.decode("utf-8").rstrip("\r")
      except UnicodeDecodeError as e:
        shown = raw[:_SHOWN_CHARS].decode("utf-8", "replace")
        raise errors.UsageError(
            f"Malformed line in {path}: line {number} is not UTF-8 text (byte {e.start + 1}) : "
            f"{shown.encode('unicode_escape').decode('ascii')}") from None
      if not form.fullmatch(line):
        shown = line[:_SHOWN_CHARS] + ("..." if len(line) > _SHOWN_CHARS else "")
        raise errors.UsageError(f"Malformed line in {path}: line {number} is not of the form "
                                f"{expected} : {shown.replace(chr(9), chr(92) + 't')}")

  def skipped_lines(self) -> int:
    """Malformed lines skipped so far (on_error='skip')."""
    return 0 if self._skipped is None else int(self._skipped.numpy())

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: Optional[int] = None,
                  shard_info: Optional[seqio.ShardInfo] = None, *, sequence_length=None,
                  use_cached: bool = False, num_epochs: Optional[int] = 1) -> tf.data.Dataset:
    """The examples of `split` (this shard's files).

    Shuffled: lines in a seeded random order, a new one each epoch (`permutation_order`), when
    the files fit PERMUTE_MAX_BYTES; larger splits stream their files in a seeded order.
    Unshuffled: file order, or one fixed permutation with eval_order='permuted'.
    """
    del sequence_length, use_cached, num_epochs
    files = self.check_split(split)
    if shard_info:
      files = files[shard_info.index::shard_info.num_shards]
    vocab_size = (self._vocabulary or vocabularies.configured_vocabulary()).vocab_size
    if self._skipped is None:
      self._skipped = tf.Variable(0, dtype=tf.int64, trainable=False)
    permute = shuffle or self.eval_order == "permuted"
    if permute and sum(paths.as_path(f).stat().length for f in files) <= PERMUTE_MAX_BYTES:
      numbered = self._numbered(files)
      columns = [np.concatenate(c) for c in zip(*numbered.batch(1 << 16).as_numpy_iterator())]
      if columns:  # else: no line at all
        numbered = permuted(tuple(columns), len(columns[0]), shuffle=shuffle, seed=seed)
      return self._checked(numbered, files, vocab_size)
    if shuffle:
      random.Random(0 if seed is None else int(seed)).shuffle(files)
    return self._checked(self._numbered(files), files, vocab_size)

  @staticmethod
  def _numbered(files: Sequence[str]) -> tf.data.Dataset:
    """(file index, line number from 0, line) of every line of `files`, in file order."""
    ds = None
    for index, path in enumerate(files):
      lines = tf.data.TextLineDataset(path).enumerate().map(
          lambda number, line, i=index: (tf.constant(i, tf.int64), number, line))
      ds = lines if ds is None else ds.concatenate(lines)
    return ds

  def _checked(self, lines: tf.data.Dataset, files: Sequence[str],
               vocab_size: int) -> tf.data.Dataset:
    """(file index, line number from 0, line) elements checked and parsed into examples."""
    names = tf.constant(list(files))
    field = r"[^\t]*" if self.text else _IDS
    pattern = "\t".join([field] * len(self.features))
    expected = "<TAB>".join(["text" if self.text else "[ids]"] * len(self.features))
    skipped, text, features = self._skipped, self.text, self.features

    max_bytes = self.max_line_bytes

    def check(file_index, number, line):
      fits = tf.strings.length(line) <= max_bytes
      # tf.cond: a huge line is never run through the regex.
      line = tf.cond(fits, lambda: tf.strings.regex_replace(line, r"\r$", ""), lambda: line)
      well_formed = tf.cond(fits, lambda: tf.strings.regex_full_match(line, pattern),
                            lambda: tf.constant(False))
      if text:
        ok, problem = well_formed, f"not of the form {expected}"
      else:
        ids = tf.cond(well_formed, lambda: _parse_ids(tf.strings.regex_replace(line, "\t", ",")),
                      lambda: tf.zeros([0], tf.int64))
        ok = tf.logical_and(well_formed, tf.reduce_all(ids < vocab_size))
        problem = tf.where(well_formed, f"an id >= the vocabulary size {vocab_size}",
                           f"not of the form {expected}")
      utf8 = tf.cond(fits, lambda: tf.equal(_as_utf8(line), line), lambda: tf.constant(True))
      ok = tf.logical_and(ok, utf8)
      problem = tf.where(utf8, problem, "not UTF-8 text")
      problem = tf.where(fits, problem, f"longer than {max_bytes} bytes")
      return file_index, number, line, ok, problem

    def keep(file_index, number, line, ok, problem):
      shown = _as_utf8(tf.strings.substr(line, 0, _SHOWN_CHARS, unit="BYTE"))
      shown = tf.where(tf.strings.length(line) > _SHOWN_CHARS, shown + "...", shown)
      where = tf.strings.join(["Malformed line in ", tf.gather(names, file_index), ": line"])
      message = [where, number + 1, "is", problem, ":", shown]
      if self.on_error == "raise":
        with tf.control_dependencies([tf.debugging.Assert(ok, message, summarize=3)]):
          return tf.identity(ok)

      def report():
        with tf.control_dependencies([skipped.assign_add(1),
                                      tf.print("Skipping:", *message, output_stream=sys.stderr)]):
          return tf.constant(False)
      return tf.cond(ok, lambda: tf.constant(True), report)

    def parse(file_index, number, line, ok, problem):
      del file_index, number, ok, problem
      fields = tf.strings.split(line, "\t")
      if text:
        return {name: fields[i] for i, name in enumerate(features)}
      return {name: tf.cast(_parse_ids(fields[i]), tf.int32) for i, name in enumerate(features)}

    return lines.map(check).filter(keep).map(parse)
