"""Test set-up: 8 fake CPU devices, the toy task importable, gin state cleared between tests."""
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gin  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position



@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()
  # Tasks that follow the configured vocabulary go back to the unconfigured default.
  registry = sys.modules.get("synthetic_pretraining.synthetic.registry")
  if registry is not None:
    registry.sync_vocabulary()
