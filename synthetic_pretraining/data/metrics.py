"""The paper's downstream metrics, as seqio metric functions (targets, predictions) -> {name: value}.

* `rouge`: ROUGE-1/2/Lsum F-measure x100 for cnndm_10k, as t5.evaluation.metrics.rouge: no
  stemming, " . " turned into " .\n" so that Lsum sees sentences. t5 reports the middle of a
  bootstrap over examples, which estimates the mean; we report the mean itself (deterministic).
* `exact_match_f1`: the four parsing/generation tasks (t5's semantic_parsing_metrics): EM of the
  raw strings and token F1 over whitespace tokens, without normalisation, x100.
* `squad`: SQuAD v1.1's official normalisation (lower case, no punctuation, no articles a/an/the,
  single spaces); EM and F1 take the best over all gold answers, x100. A target may be a string
  or a list of answers.
"""
import collections
import re
import string
from typing import Callable, Dict, List, Sequence, Union

import numpy as np

Answers = Union[str, Sequence[str]]


def _token_f1(target_tokens: List[str], prediction_tokens: List[str]) -> float:
  """Token F1 with multiset overlap, as t5's qa_utils (and the SQuAD script) compute it.

  No overlap scores 0, even when both sides are empty: the paper's numbers were computed that
  way, so an empty (or all-article) answer never earns F1 credit.
  """
  common = collections.Counter(target_tokens) & collections.Counter(prediction_tokens)
  overlap = sum(common.values())
  if overlap == 0:
    return 0.0
  precision, recall = overlap / len(prediction_tokens), overlap / len(target_tokens)
  return 2 * precision * recall / (precision + recall)


def exact_match_f1(targets: Sequence[str], predictions: Sequence[str]) -> Dict[str, float]:
  """EM and whitespace-token F1 of raw strings, x100 (mtop, webqsp, retrosynthesis, code)."""
  _check(targets, predictions)
  em = [float(t == p) for t, p in zip(targets, predictions)]
  f1 = [_token_f1(t.split(), p.split()) for t, p in zip(targets, predictions)]
  return {"em": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f1))}


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_squad(text: str) -> str:
  """SQuAD v1.1's answer normalisation."""
  text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def squad(targets: Sequence[Answers], predictions: Sequence[str]) -> Dict[str, float]:
  """SQuAD EM and F1 (normalised, best over all answers), x100."""
  _check(targets, predictions)
  em, f1 = [], []
  for answers, prediction in zip(targets, predictions):
    answers = [answers] if isinstance(answers, str) else list(answers)
    if not answers:
      raise ValueError("A SQuAD target has no answers.")
    pred = normalize_squad(prediction)
    em.append(max(float(normalize_squad(a) == pred) for a in answers))
    f1.append(max(_token_f1(normalize_squad(a).split(), pred.split()) for a in answers))
  return {"em": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f1))}


def _sentences(text: str) -> str:
  return text.replace(" . ", " .\n")


def rouge(targets: Sequence[str], predictions: Sequence[str], *,
          use_stemmer: bool = False) -> Dict[str, float]:
  """ROUGE-1, ROUGE-2 and ROUGE-Lsum mean F-measure x100 (cnndm_10k).

  Args:
    targets: reference summaries.
    predictions: decoded summaries, one per reference.
    use_stemmer: Porter-stem tokens first. Off by default because t5's `rouge`, which scored
      the paper's runs, builds its RougeScorer without a stemmer; turn it on (with
      functools.partial) only to compare with tools that stem.

  Returns:
    {'rouge1', 'rouge2', 'rougeLsum'}: mean F-measure over examples, x100.
  """
  from rouge_score import rouge_scorer  # pylint: disable=import-outside-toplevel
  _check(targets, predictions)
  names = ("rouge1", "rouge2", "rougeLsum")
  scorer = rouge_scorer.RougeScorer(list(names), use_stemmer=use_stemmer)
  scores = {n: [] for n in names}
  for target, prediction in zip(targets, predictions):
    result = scorer.score(_sentences(target), _sentences(prediction))
    for n in names:
      scores[n].append(result[n].fmeasure)
  return {n: 100 * float(np.mean(v)) for n, v in scores.items()}


def _check(targets, predictions) -> None:
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions.")
  if not targets:
    raise ValueError("No examples to score.")


METRICS: Dict[str, Callable] = {"rouge": rouge, "exact_match_f1": exact_match_f1, "squad": squad}
