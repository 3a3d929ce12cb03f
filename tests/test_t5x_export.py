"""`stats_init --output_format=t5x` and `t5x_export`: t5x's checkpoint layout, read back bitwise.

t5x's own restore of these checkpoints is exercised in test_t5x_interop.py (when t5x is
installed); here the layout is checked against t5x's format and read back by our t5x reader and
by our trainer's INITIAL_CHECKPOINT_PATH.
"""
import os

import gin
import jax
import numpy as np
import pytest
from flax import serialization
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining import gin_utils
from synthetic_pretraining.model import models
from synthetic_pretraining.model import optimizers
from synthetic_pretraining.model import partitioning
from synthetic_pretraining.checkpointing import t5x_writer
from synthetic_pretraining.training import trainer as trainer_lib
from synthetic_pretraining.stats_init import __main__ as stats_cli
from synthetic_pretraining.stats_init import sources

TINY_1_0 = "gin/models/t5_1_0/tiny.gin"
SEED = 3


def _cli(*args) -> int:
  return stats_cli.main([f"--gin_file={TINY_1_0}", "--set=pre_attn_ln=0.4", f"--seed={SEED}",
                         *args])


def _loaded(directory):
  """What INITIAL_CHECKPOINT_PATH=directory gives our trainer (T5 1.0 tiny, 4x2 mesh)."""
  gin.clear_config()
  gin_utils.parse([TINY_1_0], [])
  trainer = trainer_lib.Trainer(models.EncoderDecoderModel(),
                                partitioning.PjitPartitioner(num_partitions=2),
                                optimizers.create_optimizer(), SEED)
  params = trainer_lib.params_from_checkpoint(trainer, directory)
  return {p: np.asarray(v) for p, v in traverse_util.flatten_dict(params, sep="/").items()}


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory):
  """The same initialisation written as our checkpoint and as a t5x checkpoint."""
  ours = str(tmp_path_factory.mktemp("orbax") / "init")
  t5x = str(tmp_path_factory.mktemp("t5x") / "init")
  assert _cli(f"--output_dir={ours}") == 0
  assert _cli(f"--output_dir={t5x}", "--output_format=t5x") == 0
  return ours, t5x


def test_layout_is_t5x_legacy_checkpoint(both_formats):
  step_dir = os.path.join(both_formats[1], "checkpoint_0")
  with open(os.path.join(step_dir, "checkpoint"), "rb") as f:
    tree = serialization.msgpack_restore(f.read())
  assert set(tree) == {"version", "optimizer"} and tree["version"] == 3
  assert set(tree["optimizer"]) == {"target", "state"}
  assert int(tree["optimizer"]["state"]["step"]) == 0
  assert "param_states" not in tree["optimizer"]["state"]
  query = tree["optimizer"]["target"]["encoder"]["layers_0"]["attention"]["query"]["kernel"]
  assert query["driver"] == "zarr" and query["dtype"] == "float32"
  # Relative path, as t5x writes it, naming a zarr array beside the msgpack file.
  assert query["kvstore"] == {"driver": "file",
                              "path": "target.encoder.layers_0.attention.query.kernel"}
  assert list(query["metadata"]["shape"]) == [8, 12]
  assert os.path.isfile(os.path.join(step_dir, query["kvstore"]["path"], ".zarray"))
  assert os.path.isfile(os.path.join(both_formats[1], "stats.json"))


def test_t5x_output_reads_back_bitwise(both_formats):
  ours, t5x = both_formats
  expected = _loaded(ours)
  assert resolver.resolve(t5x).kind == "t5x_tensorstore"  # a t5x MODEL_DIR
  step, read = sources.load_t5x_params(os.path.join(t5x, "checkpoint_0"))
  assert step == 0 and set(read) == set(expected)
  for path, value in expected.items():
    assert read[path].dtype == value.dtype
    np.testing.assert_array_equal(read[path], value, err_msg=path)
  # --set took effect (the two files hold an initialisation, not zeros or a copy of random).
  np.testing.assert_array_equal(read["encoder/layers_0/pre_attention_layer_norm/scale"],
                                np.float32(0.4))
  # Our own trainer also starts from it.
  for path, value in _loaded(os.path.join(t5x, "checkpoint_0")).items():
    np.testing.assert_array_equal(value, expected[path], err_msg=path)


def test_sharded_arrays_are_written_shard_by_shard(tmp_path):
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("data", "model"))
  rng = np.random.default_rng(0)
  values = {"encoder/a/kernel": rng.standard_normal((16, 6)).astype(np.float32),
            "decoder/b/scale": rng.standard_normal((5,)).astype(np.float32)}
  params = {"encoder/a/kernel": jax.device_put(values["encoder/a/kernel"],
                                               NamedSharding(mesh, PartitionSpec("data", "model"))),
            "decoder/b/scale": jax.device_put(values["decoder/b/scale"],
                                              NamedSharding(mesh, PartitionSpec()))}
  out = str(tmp_path)
  step_dir = t5x_writer.write_checkpoint(out, params, step=5)
  assert step_dir == os.path.join(out, "checkpoint_5")
  with open(os.path.join(step_dir, "checkpoint"), "rb") as f:
    spec = serialization.msgpack_restore(f.read())["optimizer"]["target"]["encoder"]["a"]["kernel"]
  assert list(spec["metadata"]["chunks"]) == [4, 3]  # one chunk per device shard
  step, read = sources.load_t5x_params(out)
  assert step == 5
  for path, value in values.items():
    np.testing.assert_array_equal(read[path], value)
  with pytest.raises(FileExistsError, match="already holds a t5x checkpoint"):
    t5x_writer.write_checkpoint(out, params, step=5)


def test_chunks_stay_under_64_mib():
  assert t5x_writer._chunk_shape((32128, 4096), 4) == (4016, 4096)  # pylint: disable=protected-access
  assert t5x_writer._chunk_shape((7, 3), 4) == (7, 3)  # pylint: disable=protected-access


def test_existing_t5x_output_is_a_one_line_error(both_formats, capsys):
  assert _cli(f"--output_dir={both_formats[1]}", "--output_format=t5x") == 1
  assert "already holds a t5x checkpoint" in capsys.readouterr().err
