#!/usr/bin/env python3
"""Trains the shipped SentencePiece vocabulary from text the repository ships (run once by us).

  python scripts/train_vocabulary.py

Input: the passages and questions of data/squad_offline/train.jsonl and data/natural_text/*.txt
(validation and test passages are left out). Output: data/vocab/cpu_sp.model, a unigram model of
VOCAB_SIZE pieces in T5's layout (pad 0, eos 1, unk 2, no bos); seqio adds the 100 sentinel ids
above them. One thread, no sampling or shuffling of the input: the same input gives the same model.
"""
import glob
import io
import json
import os

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB_SIZE = 4000
OUTPUT = os.path.join(ROOT, "data", "vocab", "cpu_sp.model")


def sentences():
  """The training text, in a fixed order."""
  with open(os.path.join(ROOT, "data", "squad_offline", "train.jsonl")) as f:
    for line in f:
      paragraph = json.loads(line)
      yield paragraph["context"]
      for qa in paragraph["qas"]:
        yield qa["question"]
  for path in sorted(glob.glob(os.path.join(ROOT, "data", "natural_text", "*.txt"))):
    with open(path) as f:
      yield from (line.strip() for line in f if line.strip())


def main() -> None:
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=sentences(), model_writer=model, vocab_size=VOCAB_SIZE,
      model_type="unigram", character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      num_threads=1, shuffle_input_sentence=False, input_sentence_size=0,
      max_sentence_length=16384, minloglevel=2)
  os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
  with open(OUTPUT, "wb") as f:
    f.write(model.getvalue())
  print(f"Wrote {OUTPUT} ({len(model.getvalue()) / 1e3:.0f} kB, {VOCAB_SIZE} pieces).")


if __name__ == "__main__":
  main()
