#!/usr/bin/env python3
r"""Derives the shipped offline data from the `bigbench` 1.0.0 source distribution (run once by us).

  curl -sLO https://files.pythonhosted.org/packages/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/bigbench-1.0.0.tar.gz
  python scripts/make_offline_data.py bigbench-1.0.0.tar.gz

The sdist carries SQuAD v1.1's dev set and the four SQuADShifts test sets
(`bigbench/benchmark_tasks/squad_shifts/*.json`, SQuAD's JSON format). Written:

* data/squad_offline/{train,validation,test}.jsonl: one paragraph per line,
  {"title", "context", "qas": [{"id", "question", "answers": [distinct answer texts]}]}.
  train = the SQuAD v1.1 dev set (Wikipedia, 48 articles); validation and test = the
  SQuADShifts New-Wikipedia set, its articles split in two halves (disjoint passages), capped at
  VALIDATION_QUESTIONS / TEST_QUESTIONS questions (whole paragraphs, in file order).
* data/natural_text/{nyt,reddit,amazon}.txt: the SQuADShifts New York Times, Reddit and Amazon
  review passages, one per line: natural text for pre-training (4.7 MB, about three times the NYT
  set alone) that shares no passage with squad_offline.

Deterministic: no randomness, input order kept. sha256 of the sdist is checked.
"""
import hashlib
import json
import os
import sys
import tarfile

SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/squad_shifts/{}.json"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATURAL_SETS = {"nyt": "nyt_v1.0", "reddit": "reddit_v1.0", "amazon": "amazon_reviews_v1.0"}
VALIDATION_QUESTIONS = 1000
TEST_QUESTIONS = 1000


def _load(archive: tarfile.TarFile, name: str) -> list:
  data = json.load(archive.extractfile(MEMBER.format(name)))
  return data["data"]


def _paragraphs(articles):
  for article in articles:
    for paragraph in article["paragraphs"]:
      qas = [{"id": qa["id"], "question": qa["question"].strip(),
              "answers": list(dict.fromkeys(a["text"].strip() for a in qa["answers"]))}
             for qa in paragraph["qas"]]
      yield {"title": article.get("title", ""), "context": paragraph["context"].strip(),
             "qas": qas}


def _capped(paragraphs, limit):
  out, count = [], 0
  for paragraph in paragraphs:
    if count >= limit:
      break
    out.append(paragraph)
    count += len(paragraph["qas"])
  return out


def _write_jsonl(path, rows):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    for row in rows:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
  print(f"{path}: {len(rows)} lines, {sum(len(r.get('qas', ())) for r in rows)} questions, "
        f"{os.path.getsize(path) / 1e6:.2f} MB")


def main(argv) -> int:
  if len(argv) != 1:
    print(__doc__, file=sys.stderr)
    return 2
  digest = hashlib.sha256(open(argv[0], "rb").read()).hexdigest()
  if digest != SHA256:
    print(f"error: {argv[0]} has sha256 {digest}, expected {SHA256}", file=sys.stderr)
    return 1
  with tarfile.open(argv[0]) as archive:
    dev = _load(archive, "squaddev_v1.1")
    new_wiki = _load(archive, "new_wiki_v1.0")
    natural = {name: _load(archive, member) for name, member in NATURAL_SETS.items()}
  half = len(new_wiki) // 2
  splits = {"train": list(_paragraphs(dev)),
            "validation": _capped(_paragraphs(new_wiki[:half]), VALIDATION_QUESTIONS),
            "test": _capped(_paragraphs(new_wiki[half:]), TEST_QUESTIONS)}
  for split, rows in splits.items():
    _write_jsonl(os.path.join(ROOT, "data", "squad_offline", f"{split}.jsonl"), rows)
  held_out = {" ".join(p["context"].split()) for rows in splits.values() for p in rows}
  for name, articles in natural.items():
    passages = list(dict.fromkeys(" ".join(p["context"].split()) for p in _paragraphs(articles)))
    passages = [p for p in passages if p not in held_out]
    path = os.path.join(ROOT, "data", "natural_text", f"{name}.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.write("\n".join(passages) + "\n")
    print(f"{path}: {len(passages)} passages, {os.path.getsize(path) / 1e6:.2f} MB")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
