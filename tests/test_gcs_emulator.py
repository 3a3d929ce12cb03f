"""Every GCS client the project uses reaches the local emulator (tests/gcs_emulator.py)."""
import pytest
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import tensorflow as tf
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from synthetic_pretraining import paths

pytestmark = [pytest.mark.e2e, pytest.mark.gcs]


def test_path_layer_on_gs_goes_to_the_emulator(gcs):
  # epath's default gs:// backend (tf.io.gfile) through synthetic_pretraining.paths.
  root = paths.join(gcs.url, "run")
  paths.write_atomic(paths.join(root, "a.txt"), "first\nsecond\n")
  paths.write_atomic(paths.join(root, "sub", "b.bin"), b"\x00\x01")
  with paths.open_file(paths.join(root, "sub", "c.txt"), "w") as f:
    f.write("c")
  assert gcs.objects() == ["run/a.txt", "run/sub/b.bin", "run/sub/c.txt"]
  assert paths.read_text(paths.join(root, "a.txt")) == "first\nsecond\n"
  assert list(paths.iter_lines(paths.join(root, "a.txt"))) == ["first", "second"]
  assert paths.read_bytes(paths.join(root, "sub", "b.bin")) == b"\x00\x01"
  assert paths.listdir(root) == ["a.txt", "sub"]
  assert paths.isdir(paths.join(root, "sub")) and not paths.isdir(paths.join(root, "a.txt"))
  assert paths.glob(paths.join(root, "sub", "*.txt")) == [f"{gcs.url}/run/sub/c.txt"]
  assert paths.glob(paths.join(root, "*", "*")) == [f"{gcs.url}/run/sub/b.bin",
                                                   f"{gcs.url}/run/sub/c.txt"]
  assert paths.exists(paths.join(root, "a.txt")) and not paths.exists(paths.join(root, "z"))
  paths.rmtree(paths.join(root, "sub"))
  assert gcs.objects() == ["run/a.txt"]
  assert paths.listdir(paths.join(gcs.url, "nothing-here")) == []


def test_epath_over_gcsfs_reaches_the_emulator(gcs):
  # EPATH_USE_TF=false makes epath use fsspec/gcsfs for gs://; etils decides once per process,
  # so this runs in a subprocess.
  script = (
      "import sys\n"
      "from etils import epath\n"
      "from synthetic_pretraining import paths\n"
      "target = sys.argv[1] + '/gcsfs/x.txt'\n"
      "paths.write_atomic(target, 'via gcsfs')\n"
      "assert paths.read_text(target) == 'via gcsfs'\n"
      "assert paths.glob(sys.argv[1] + '/gcsfs/*.txt') == [target], paths.glob(sys.argv[1] + '/*')\n"
      "print(type(epath.Path(target)._backend).__name__)\n")
  result = subprocess.run([sys.executable, "-c", script, gcs.url], capture_output=True, text=True,
                          env=gcs.env(EPATH_USE_TF="false"), timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "FileSystemSpec" in result.stdout.strip().splitlines()[-1]
  assert gcs.objects("gcsfs/") == ["gcsfs/x.txt"]


def test_orbax_saves_and_restores_a_sharded_tree_on_gs(gcs):
  # tensorstore writes the arrays; orbax's metadata and commit files go through epath.
  mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
  tree = {
      "kernel": jax.device_put(np.arange(128, dtype=np.float32).reshape(16, 8),
                               NamedSharding(mesh, PartitionSpec("data", "model"))),
      "bias": jax.device_put(np.linspace(-1, 1, 8, dtype=np.float32),
                             NamedSharding(mesh, PartitionSpec("model"))),
  }
  directory = paths.as_path(paths.join(gcs.url, "ckpt", "checkpoint_3"))
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory, tree)
    checkpointer.wait_until_finished()
    written = gcs.objects("ckpt/")
    assert "ckpt/checkpoint_3/_METADATA" in written
    assert any("/ocdbt.process_0/" in name for name in written)  # tensorstore's array data
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
    restored = checkpointer.restore(directory, target)
  for name, value in tree.items():
    np.testing.assert_array_equal(np.asarray(restored[name]), np.asarray(value))
    assert restored[name].sharding == value.sharding


def test_tf_data_reads_text_lines_from_gs(gcs):
  paths.write_atomic(paths.join(gcs.url, "data", "lines.txt"), "alpha\nbeta\ngamma\n")
  dataset = tf.data.TextLineDataset(paths.join(gcs.url, "data", "lines.txt"))
  assert [line.decode() for line in dataset.as_numpy_iterator()] == ["alpha", "beta", "gamma"]

