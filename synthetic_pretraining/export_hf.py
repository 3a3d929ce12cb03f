"""Exports a checkpoint as a transformers T5 directory (config.json, model.safetensors, tokenizer).

  python -m synthetic_pretraining.export_hf --checkpoint=runs/set \\
      --gin_file=gin/models/t5_1_0/cpu.gin --output_dir=exports/set_hf [--dtype=bfloat16]

CHECKPOINT is anything the resolver reads (our run or checkpoint, a statistics-only
initialisation, a t5x checkpoint, a transformers directory); the gin file names the model (its
activations and output layer are not visible in the weights) and its vocabulary, whose
SentencePiece model is copied beside the weights. The output (local or gs://) loads with
`transformers.T5ForConditionalGeneration.from_pretrained(DIR)` and `AutoTokenizer`; no torch is
needed here. The whole model is held on this host while it is written (one process; docs/hf.md).
"""
import logging
import sys
import time

import jax
import numpy as np
from flax import traverse_util

from synthetic_pretraining import cli
from synthetic_pretraining import errors
from synthetic_pretraining import gin_utils
from synthetic_pretraining import startup
from synthetic_pretraining.checkpointing import hf_reader
from synthetic_pretraining.checkpointing import hf_writer
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.checkpointing import resolver


def _parser() -> cli.ArgumentParser:
  p = cli.ArgumentParser(prog="python -m synthetic_pretraining.export_hf",
                         description=__doc__.split("\n")[0])
  p.add_argument("--checkpoint", required=True, help="checkpoint, MODEL_DIR, t5x or transformers")
  p.add_argument("--output_dir", required=True, help="the transformers directory to write")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                 help="stored dtype of the weights (default float32)")
  return p


def export(checkpoint: str, output_dir: str, gin_files, bindings=(), dtype: str = "float32") -> str:
  """Writes `checkpoint` (the model of `gin_files`) as a transformers directory; returns it."""
  import gin  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.data import vocabularies  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.model import models  # pylint: disable=import-outside-toplevel
  if not gin_files:
    raise errors.UsageError("Give the model with --gin_file (e.g. gin/models/t5_1_0/small.gin).")
  hf_writer.check_output(output_dir)  # before the checkpoint is read
  gin.clear_config()
  gin_utils.parse(gin_files, bindings)
  try:
    named = gin.query_parameter("%MODEL").configurable.name
  except (ValueError, AttributeError):
    named = None
  if named == "DecoderOnlyModel":
    raise errors.UsageError("export_hf writes transformers' T5 encoder-decoder; the gin files name "
                            "a decoder-only model (docs/decoder_only.md), which it cannot export.")
  model = models.EncoderDecoderModel()
  found = resolver.resolve(checkpoint)
  source = found.source
  shapes = traverse_util.flatten_dict(model.param_shapes(),
                                      sep="/")
  orbax_format.check_architecture(source.metadata(), shapes, found.path)
  hf_reader.check_model(source, model.config)
  arch = hf_writer.architecture_of(model.config)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  arrays = source.read({p: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device)
                        for p, s in shapes.items()})
  stored = np.dtype(jax.numpy.bfloat16) if dtype == "bfloat16" else np.dtype("float32")
  return hf_writer.write(output_dir, arch, lambda p: np.asarray(arrays.pop(p)),
                         vocabulary=vocabularies.configured_vocabulary(),
                         dropout_rate=model.config.dropout_rate, dtype=stored)


def main(argv=None) -> int:
  """Entry point; returns an exit code (1 with a one-line error for bad input, `cli.run`)."""
  return cli.run(_main, argv)


def _main(argv) -> int:
  startup.configure_logging(logging.INFO)
  gin_files, bindings, rest = gin_utils.split_gin_args(argv)
  args = _parser().parse_args(rest)
  start = time.perf_counter()
  written = export(args.checkpoint, args.output_dir, gin_files, bindings, args.dtype)
  print(f"wrote {written} in {time.perf_counter() - start:.1f}s "
        "(transformers.T5ForConditionalGeneration.from_pretrained reads it)")
  return 0


if __name__ == "__main__":
  sys.exit(main())  # --verbose: the traceback of a refused run
