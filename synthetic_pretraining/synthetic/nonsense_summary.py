"""Nonsense summarization (Krishna et al. 2021), the generator behind the paper's nonsense_summary.

A document is 7..13 sentences of 5..15 pseudo-words (drawn from 5,000 three-letter words) each
ending in " .". Three distinct transformations out of 16 edit it in turn (inserting keywords,
quotes, bullets, numbers or clause markers); then each contributes summary lines, computed on the
final document. Keywords are made unique per transformation as `__<id>__<keyword>__`, and only
words without "_" are replaced, so transformations never overwrite each other's keywords. The
example is plain text (`document`, `summary`: lines joined by spaces), tokenized by the task.

Where the original generator would fail an assertion (a sentence left with too few replaceable
words), the document is redrawn. Keywords found in a sentence are listed in word order (the
original used a set of strings, whose order varies between Python processes).
"""
from typing import Callable, Dict, List, Sequence, Tuple

from synthetic_pretraining.synthetic.common import TaskRandom

VOCAB_SIZE = 5000
NUM_TRANSFORMS = 3
MAX_ATTEMPTS = 100


def pseudo_word(i: int) -> str:
  """Word i of the random vocabulary: base-26 letters, least significant first (3 letters)."""
  return "".join(chr(97 + (i // 26 ** j) % 26) for j in range(3))


WORDS = tuple(pseudo_word(i) for i in range(VOCAB_SIZE))


class _Redraw(Exception):
  """The document cannot take this transformation; draw another."""


def keyword(task_id: str, word: str) -> str:
  """A keyword made unique to its transformation."""
  return f"__{task_id}__{word}__"


def document(rng: TaskRandom) -> List[List[str]]:
  """7..13 sentences of 5..15 pseudo-words, each ending with '.'."""
  sentences = []
  for _ in range(10 + rng.randint(-3, 3)):
    count = 10 + rng.randint(-5, 5)
    sentences.append([WORDS[i] for i in rng.below(VOCAB_SIZE, count).tolist()] + ["."])
  return sentences


def _candidates(doc, rng: TaskRandom, count: int,
                require: bool = True) -> List[Tuple[int, List[int]]]:
  """`count` distinct random sentences (in order), each with its replaceable word positions
  (words other than the final '.' that contain no '_', i.e. are not another task's keyword)."""
  chosen = sorted(rng.sample(range(len(doc)), count))
  out = []
  for i in chosen:
    positions = [j for j, w in enumerate(doc[i][:-1]) if "_" not in w]
    if require and not positions:
      raise _Redraw()
    out.append((i, positions))
  return out


def _found(doc, keywords: Sequence[str]) -> List[Tuple[int, List[str]]]:
  """Sentences containing any of `keywords`, with the keywords in word order."""
  wanted = set(keywords)
  out = []
  for i, words in enumerate(doc):
    hits = list(dict.fromkeys(w for w in words if w in wanted))
    if hits:
      out.append((i, hits))
  return out


def _put(doc, rng: TaskRandom, count: int, choose: Callable[[int], List[str]]):
  """Replaces one replaceable word in each of `count` random sentences by choose(count)[k]."""
  words = choose(count)
  for (i, positions), word in zip(_candidates(doc, rng, count), words):
    doc[i][positions[rng.randrange(len(positions))]] = word


def _line(words: Sequence[str]) -> str:
  return " ".join(words)


class Transform:
  """A transformation: `modify(doc, rng)` edits the document, `summary(doc, rng)` -> lines."""
  task_id = ""
  words: Tuple[str, ...] = ()

  def __init__(self):
    self.keywords = [keyword(self.task_id, w) for w in self.words]

  def pick(self, rng, distinct=False):
    """A chooser of `n` keywords, with or without replacement."""
    if distinct:
      return lambda n: rng.sample(self.keywords, n)
    return lambda n: [rng.choice(self.keywords) for _ in range(n)]

  def modify(self, doc, rng):
    raise NotImplementedError

  def summary(self, doc, rng) -> List[str]:
    raise NotImplementedError


class CopyKeywordOneSentence(Transform):
  """d3: a keyword in one sentence -> that sentence."""
  task_id = "d3"
  words = tuple(f"keyword_{i}" for i in range(10))
  count = 1

  def modify(self, doc, rng):
    _put(doc, rng, self.count, self.pick(rng))

  def summary(self, doc, rng):
    return [_line(doc[i]) for i, _ in _found(doc, self.keywords)]


class CopyKeywordMultipleSentences(CopyKeywordOneSentence):
  """d4: keywords in three sentences -> those sentences in document order."""
  task_id = "d4"
  count = 3


class CopyKeywordMultipleSentencesShuffled(CopyKeywordMultipleSentences):
  """d5: as d4 -> the sentences in random order."""
  task_id = "d5"

  def summary(self, doc, rng):
    lines = super().summary(doc, rng)
    return rng.sample(lines, len(lines))


class CopyKeywordMultipleSentencesSorted(CopyKeywordMultipleSentences):
  """d6: three distinct keywords in three sentences -> the sentences ordered by keyword."""
  task_id = "d6"

  def modify(self, doc, rng):
    _put(doc, rng, 3, self.pick(rng, distinct=True))

  def summary(self, doc, rng):
    found = sorted(_found(doc, self.keywords), key=lambda hit: hit[1][0])
    return [_line(doc[i]) for i, _ in found]


class CopyQuoted(Transform):
  """d7: begin_quote ... end_quote around a span of one sentence -> the quoted words."""
  task_id = "d7"
  words = ("begin_quote", "end_quote")

  def modify(self, doc, rng):
    (i, positions), = _candidates(doc, rng, 1, require=False)
    words = doc[i]
    begin = rng.randint(0 if 0 in positions else 1, len(words) - 1)
    end = rng.randint(begin + 1, len(words))
    doc[i] = words[:begin] + [self.keywords[0]] + words[begin:end] + [self.keywords[1]] + words[end:]

  def summary(self, doc, rng):
    lines = []
    for i, _ in _found(doc, self.keywords):
      words = doc[i]
      text = _line(words[words.index(self.keywords[0]) + 1:words.index(self.keywords[1])])
      lines.append(text if text.endswith(".") else text + " .")
    return lines


class CopyBulleted(Transform):
  """d8: 'bullet' before one sentence -> that sentence without it."""
  task_id = "d8"
  words = ("bullet",)

  def modify(self, doc, rng):
    (i, _), = _candidates(doc, rng, 1, require=False)
    doc[i] = [self.keywords[0]] + doc[i]

  def summary(self, doc, rng):
    return [_line(doc[i][1:]) for i, _ in _found(doc, self.keywords)]


class ClassifyKeyword(Transform):
  """d10: one of 10 keywords (the first 5 positive) -> whether it was positive."""
  task_id = "d10"
  words = tuple(f"keyword_{i}" for i in range(10))

  def modify(self, doc, rng):
    _put(doc, rng, 1, self.pick(rng))

  def summary(self, doc, rng):
    (_, (word, *_)), = _found(doc, self.keywords)
    polarity = "positive" if word in self.keywords[:5] else "negative"
    return [f"the keyword was {polarity} ."]


class ReplaceClassKeyword(Transform):
  """d11: one of 3 classes x 3 keywords -> the sentence with the keyword replaced by its class."""
  task_id = "d11"
  words = tuple(f"class_{c}_kw_{k}" for c in range(3) for k in range(3))

  def __init__(self):
    super().__init__()
    self.classes = [keyword(self.task_id, f"class_{c}") for c in range(3)]
    self.class_of = {kw: self.classes[n // 3] for n, kw in enumerate(self.keywords)}

  def modify(self, doc, rng):
    _put(doc, rng, 1, self.pick(rng))

  def summary(self, doc, rng):
    (i, (word, *_)), = _found(doc, self.keywords)
    return [_line(doc[i]).replace(word, self.class_of[word])]


class MajorityKeyword(Transform):
  """d12: keyword_1/keyword_2 in 3 or 5 sentences -> which occurred more often."""
  task_id = "d12"
  words = ("keyword_1", "keyword_2")

  def modify(self, doc, rng):
    _put(doc, rng, 2 * rng.randint(1, 2) + 1, self.pick(rng))

  def summary(self, doc, rng):
    counts = [0, 0]
    for _, hits in _found(doc, self.keywords):
      for word in hits:
        counts[self.keywords.index(word)] += 1
    return [f"The keyword {1 if counts[0] > counts[1] else 2} occurred more number of times ."]


class TopicSegregation(ReplaceClassKeyword):
  """d13: class keywords in 2..5 sentences -> per class, 'section <class>' and its sentences."""
  task_id = "d13"

  def modify(self, doc, rng):
    _put(doc, rng, rng.randint(2, 5), self.pick(rng))

  def summary(self, doc, rng):
    found = _found(doc, self.keywords)
    lines = []
    for name in self.classes:
      lines.append(f"section {name}")
      lines += [_line(doc[i]) for i, hits in found if self.class_of[hits[0]] == name]
    return lines


class ThresholdNumber(Transform):
  """d14: a number 0..99 -> whether it is at least 50."""
  task_id = "d14"
  words = tuple(str(n) for n in range(100))

  def modify(self, doc, rng):
    _put(doc, rng, 1, self.pick(rng))

  def summary(self, doc, rng):
    (_, (word, *_)), = _found(doc, self.keywords)
    if self.keywords.index(word) >= 50:
      return ["the number was above or equal to threshold ."]
    return ["the number was below threshold ."]


class LargestNumber(ThresholdNumber):
  """d16: 1..4 distinct numbers in as many sentences -> the largest."""
  task_id = "d16"

  def modify(self, doc, rng):
    _put(doc, rng, rng.randint(1, 4), self.pick(rng, distinct=True))

  def summary(self, doc, rng):
    numbers = [self.keywords.index(w) for _, hits in _found(doc, self.keywords) for w in hits]
    return [f"The largest number is {max(numbers)} ."]


class ParaphraseWords(Transform):
  """d18: one of 20 source words -> the sentence with it replaced by one of its 3 paraphrases."""
  task_id = "d18"
  words = tuple(f"src_{s}" for s in range(20))

  def __init__(self):
    super().__init__()
    self.paraphrases = {keyword(self.task_id, f"src_{s}"): [keyword(self.task_id, f"target_{s}_{t}")
                                                             for t in range(3)]
                        for s in range(20)}

  def modify(self, doc, rng):
    _put(doc, rng, 1, self.pick(rng))

  def summary(self, doc, rng):
    lines = []
    for i, (word, *_) in _found(doc, self.keywords):
      words = list(doc[i])
      words[words.index(word)] = rng.choice(self.paraphrases[word])
      lines.append(_line(words))
    return lines


class JoinClauses(Transform):
  """d19: 3 distinct join markers in 3 sentences -> one sentence of the marked clauses."""
  task_id = "d19"
  words = tuple(f"join_{k}" for k in range(5))

  def modify(self, doc, rng):
    markers = rng.sample(self.keywords, 3)
    for (i, positions), marker in zip(_candidates(doc, rng, 3), markers):
      allowed = [j for j in positions if j < len(doc[i]) - 2]
      if not allowed:
        raise _Redraw()
      doc[i][allowed[rng.randrange(len(allowed))]] = marker

  def summary(self, doc, rng):
    text = "The combined sentence is "
    for i, (marker, *_) in _found(doc, self.keywords):
      words = doc[i]
      text += marker + " " + _line(words[words.index(marker) + 1:-1]) + " "
    return [text + "."]


class BreakClauses(Transform):
  """d20: 2 distinct markers in one sentence -> two sentences, one per marked clause."""
  task_id = "d20"
  words = tuple(f"join_{k}" for k in range(5))

  def modify(self, doc, rng):
    markers = rng.sample(self.keywords, 2)
    (i, positions), = _candidates(doc, rng, 1)
    allowed = [j for j in positions if j < len(doc[i]) - 1]
    if len(allowed) < 2:
      raise _Redraw()
    for position, marker in zip(rng.sample(allowed, 2), markers):
      doc[i][position] = marker

  def summary(self, doc, rng):
    (i, _), = _found(doc, self.keywords)
    words = doc[i]
    starts = sorted(j for j, w in enumerate(words) if w in self.keywords)
    ends = starts[1:] + [len(words) - 1]
    prefix = words[:starts[0]]
    return [_line(prefix + words[s:e] + ["."]) for s, e in zip(starts, ends)]


class TruncateSentence(CopyKeywordOneSentence):
  """d21: a keyword in one sentence -> the sentence cut before the keyword."""
  task_id = "d21"

  def summary(self, doc, rng):
    (i, (word, *_)), = _found(doc, self.keywords)
    return [_line(doc[i][:doc[i].index(word)] + ["."])]


TRANSFORMS: Tuple[Transform, ...] = tuple(cls() for cls in (
    CopyKeywordOneSentence, CopyKeywordMultipleSentences, CopyKeywordMultipleSentencesShuffled,
    CopyKeywordMultipleSentencesSorted, CopyQuoted, CopyBulleted, ClassifyKeyword,
    ReplaceClassKeyword, MajorityKeyword, TopicSegregation, ThresholdNumber, LargestNumber,
    ParaphraseWords, JoinClauses, BreakClauses, TruncateSentence))


def make_document(rng: TaskRandom) -> Tuple[List[List[str]], List[str], List[Transform]]:
  """(document sentences, summary lines, the transformations applied), redrawn if one fails."""
  for _ in range(MAX_ATTEMPTS):
    doc = document(rng)
    chosen = [TRANSFORMS[k] for k in rng.sample(range(len(TRANSFORMS)), NUM_TRANSFORMS)]
    try:
      for transform in chosen:
        transform.modify(doc, rng)
    except _Redraw:
      continue
    summary = [line for transform in chosen for line in transform.summary(doc, rng)]
    return doc, summary, chosen
  raise RuntimeError("nonsense summary: no document took its transformations")


def make_example(rng: TaskRandom) -> Dict[str, str]:
  """{'inputs': document text, 'targets': summary text}: lines joined by spaces."""
  doc, summary, _ = make_document(rng)
  return {"inputs": " ".join(_line(s) for s in doc), "targets": " ".join(summary)}


def build(space) -> Callable[[TaskRandom], Dict[str, str]]:
  """A SyntheticSource `build` function (text does not depend on the vocabulary)."""
  del space
  return make_example
