"""benchmarks/device_check.py --smoke: the accelerator check's code path, tiny, on the CPU.

It runs where TensorFlow and seqio cannot be imported: the check needs only jax, flax, optax,
numpy and gin-config, which is what a GPU machine without our data stack has.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One train case with the fused attention (cudnn runs as xla on the CPU) and one beam decode
# through the key/value cache: every function of the script, in about 30 s.
CASES = "train:t5_1_1_small:cudnn,decode:t5_1_1_small:cudnn:4"


def test_smoke_run_writes_the_json_and_the_table_without_tensorflow(tmp_path):
  out = tmp_path / "check.json"
  code = textwrap.dedent(f"""
      import runpy, sys
      class _Refuse:
        def find_spec(self, name, path=None, target=None):
          if name.split(".")[0] in ("tensorflow", "seqio", "orbax"):
            raise ImportError("refused in this test: " + name)
      sys.meta_path.insert(0, _Refuse())
      sys.argv = ["device_check.py", "--smoke", "--out={out}", "--cases={CASES}"]
      runpy.run_path({os.path.join(REPO, 'benchmarks', 'device_check.py')!r}, run_name="__main__")
  """)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  done = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path),
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["smoke"] and report["platform"] == "cpu" and report["peak"]
  train, decode = report["results"]
  assert "error" not in train and "error" not in decode, report["results"]
  assert train["kind"] == "train" and train["ran_as"] == "xla" and train["loss_finite"]
  assert train["tokens_per_s"] > 0 and 0 < train["mfu"] and train["compile_s"] > 0
  assert decode["beams"] == 4 and decode["tokens_per_s"] > 0
  assert "| train | t5_1_1_small | bfloat16 | cudnn (as xla) |" in done.stdout
  assert "MFU against: measured bf16" in done.stdout


def test_cases_past_the_time_budget_are_skipped_and_reported():
  sys.path.insert(0, os.path.join(REPO, "benchmarks"))
  try:
    import device_check  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(os.path.join(REPO, "benchmarks"))
  report = device_check.run(smoke=True, budget_s=0.0, cases=["train:t5_1_0_small:einsum"])
  assert report["results"] == [{"kind": "train", "model": "t5_1_0_small", "attention": "einsum",
                                "beams": None, "skipped": "skipped: past the 0 s budget"}]
  assert "skipped" in device_check.table(report["results"])
