"""Every binary hides the GPUs from TensorFlow before JAX creates a backend (as t5x does).

A fake `tensorflow` package records `tf.config.set_visible_devices` calls, so the tests need no
GPU and no real TensorFlow start-up.
"""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_TF = '''
calls = []
class config:
  @staticmethod
  def set_visible_devices(devices, device_type):
    from jax._src import xla_bridge
    calls.append((list(devices), device_type, xla_bridge.backends_are_initialized()))
'''


def _run(code, tmp_path):
  fake = tmp_path / "fake" / "tensorflow"
  fake.mkdir(parents=True)
  (fake / "__init__.py").write_text(FAKE_TF)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "fake"), REPO]))
  done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


def test_tensorflow_imported_later_hides_its_gpus_on_import(tmp_path):
  out = _run("""
      from synthetic_pretraining.training import accelerators
      assert accelerators.hide_gpus_from_tensorflow() == "on import"
      assert accelerators.hide_gpus_from_tensorflow() == "on import"  # one hook, not two
      import tensorflow
      assert tensorflow.calls == [([], "GPU", False)], tensorflow.calls
      import jax
      jax.devices()
      assert accelerators.hide_gpus_from_tensorflow() == "hidden"  # again, at once
      print("ok", accelerators.events)
  """, tmp_path)
  assert out.startswith("ok")


def test_tensorflow_imported_earlier_is_hidden_at_once(tmp_path):
  out = _run("""
      import tensorflow
      from synthetic_pretraining.training import accelerators
      assert accelerators.hide_gpus_from_tensorflow() == "hidden"
      assert tensorflow.calls == [([], "GPU", False)], tensorflow.calls
      print("ok")
  """, tmp_path)
  assert out.startswith("ok")


def test_every_binary_hides_first_before_jax_has_a_backend():
  # In this process JAX may already have backends; a child checks the order from a cold start:
  # each binary's main calls the helper before cli.run (before parsing flags or touching JAX).
  code = """
    import sys
    from jax._src import xla_bridge
    from synthetic_pretraining import cli
    from synthetic_pretraining.training import accelerators
    order = []
    accelerators.hide_gpus_from_tensorflow = (
        lambda: order.append(("hide", xla_bridge.backends_are_initialized())))
    cli.run = lambda *a, **k: order.append(("cli.run", None)) or 0
    import importlib
    for name in ["train", "precompile", "inspect_checkpoint", "export_data", "stats_init.__main__"]:
      module = importlib.import_module("synthetic_pretraining." + name)
      del order[:]
      module.main(["--help"])
      assert order == [("hide", False), ("cli.run", None)], (name, order)
    print("ok")
  """
  env = dict(os.environ, PYTHONPATH=REPO)
  done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-3000:]
