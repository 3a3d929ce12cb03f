"""The TensorFlow-free core: the model and its compiled train step import without TF or seqio."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = ("synthetic_pretraining.model.network", "synthetic_pretraining.model.models",
        "synthetic_pretraining.model.optimizers", "synthetic_pretraining.model.partitioning",
        "synthetic_pretraining.training.compiled_steps")
HEAVY = ("tensorflow", "seqio", "tensorflow_datasets", "tensorflow_text")


def _modules_after(code: str):
  out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                        "print(json.dumps(sorted(sys.modules)))"],
                       cwd=REPO, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.unit
def test_core_imports_pull_in_neither_tensorflow_nor_seqio():
  loaded = _modules_after("\n".join(f"import {m}" for m in CORE))
  assert set(CORE) <= set(loaded)
  heavy = sorted({m.split(".")[0] for m in loaded} & set(HEAVY))
  assert not heavy, f"the core imported {heavy}"


@pytest.mark.unit
def test_a_train_step_runs_without_tensorflow_or_seqio():
  # Importing tensorflow or seqio fails in this process, so any import of them breaks the step.
  code = """
import sys
class _Refuse:
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in %r:
      raise ImportError("refused in this test: " + name)
sys.meta_path.insert(0, _Refuse())
import jax, numpy as np
from synthetic_pretraining.model import models, network, optimizers, partitioning
from synthetic_pretraining.training import compiled_steps
cfg = network.T5Config(vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32,
                       num_encoder_layers=1, num_decoder_layers=1, dropout_rate=0.0)
part = partitioning.PjitPartitioner(devices=jax.devices()[:1])
tr = compiled_steps.Trainer(models.EncoderDecoderModel(cfg), part, optimizers.create_optimizer(), 0)
params = tr.random_params()
state = compiled_steps.TrainState(0, params, tr.init_opt_state(params))
tokens = np.arange(8, dtype=np.int32).reshape(2, 4) + 3
batch = {"encoder_input_tokens": tokens, "decoder_target_tokens": tokens,
         "decoder_input_tokens": np.pad(tokens[:, :-1], ((0, 0), (1, 0))),
         "decoder_loss_weights": np.ones_like(tokens, np.float32)}
state, sums = tr.train_step(state, batch)
assert state.step == 1 and np.isfinite(float(sums["step_loss"]))
""" % (HEAVY,)
  loaded = _modules_after(code)
  assert not {m.split(".")[0] for m in loaded} & set(HEAVY)
