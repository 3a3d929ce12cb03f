"""Test set-up: 8 fake CPU devices, the toy task importable, gin state cleared between tests, one
trained toy run shared by the session (`trained_toy_run`), and every test marked `unit` or `e2e`
(pytest.ini; `make test-fast` runs the unit tests)."""
import os
import shutil
import sys
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# One persistent JAX compilation cache per test session, in a fresh temporary folder: made by the
# first pytest process and inherited through the environment by its xdist workers and by every
# binary a test starts, so the toy model's steps compile once per session instead of once per run
# (a toy run: 36 s -> 22 s). Every compilation is kept, since a toy run's many small programs add
# up. A JAX_COMPILATION_CACHE_DIR set by the caller is used as it is and kept afterwards.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _SESSION_CACHE = tempfile.mkdtemp(prefix="jax-cache-")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
else:
  _SESSION_CACHE = None

# A folder every xdist worker of the session shares (the same inheritance), for runs trained once
# per session (`trained_toy_run`).
if "SYNTHETIC_PRETRAINING_TEST_SHARED_DIR" not in os.environ:
  os.environ["SYNTHETIC_PRETRAINING_TEST_SHARED_DIR"] = _SESSION_SHARED = tempfile.mkdtemp(
      prefix="shared-runs-")
else:
  _SESSION_SHARED = None

import fcntl  # pylint: disable=wrong-import-position
import gin  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position


KINDS = ("unit", "e2e")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects
def pytest_collection_modifyitems(config, items):
  """Every test is `unit` or `e2e`: its own marker, else its module's (pytestmark).

  A module's kind is moved onto its tests here, so that a test marked otherwise (a heavy test in a
  module of unit tests) carries only its own kind and `-m unit` leaves it out.
  """
  del config
  module_kinds, unmarked = {}, []
  for item in items:
    module = item.getparent(pytest.Module)
    if module not in module_kinds:
      module_kinds[module] = [m.name for m in module.own_markers if m.name in KINDS]
      module.own_markers[:] = [m for m in module.own_markers if m.name not in KINDS]
    kinds = {m.name for m in item.own_markers if m.name in KINDS} or set(module_kinds[module])
    if len(kinds) != 1:
      unmarked.append(item.nodeid)
      continue
    if not any(m.name in KINDS for m in item.own_markers):
      item.add_marker(kinds.pop())
  if unmarked:
    raise pytest.UsageError(f"tests need exactly one of the markers {KINDS} (pytest.ini): "
                            + ", ".join(unmarked[:10]) + (" ..." if len(unmarked) > 10 else ""))
  # Longest files first: `make test`'s workers take whole files in this order, so a slow file
  # taken last would leave the other worker idle at the end.
  rank = {}
  for item in items:
    module = item.getparent(pytest.Module)
    kind = 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("e2e") else 2
    rank[module] = min(rank.get(module, 2), kind)
  items.sort(key=lambda item: rank[item.getparent(pytest.Module)])


def _reset_gin():
  gin.clear_config()
  # Tasks that follow the configured vocabulary go back to the unconfigured default.
  registry = sys.modules.get("synthetic_pretraining.synthetic.registry")
  if registry is not None:
    registry.sync_vocabulary()


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  _reset_gin()


@pytest.fixture(scope="session")
def trained_toy_run():
  """The model directory of one toy pre-training run (tests/toy_run.py, `shared_run_args`),
  trained once per session for every test that only reads a trained run: the first xdist worker
  to ask trains it under a file lock, the others wait for it and reuse it. Read-only: a test
  that changes a run copies it first."""
  import toy_run  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  shared = os.environ["SYNTHETIC_PRETRAINING_TEST_SHARED_DIR"]
  model_dir = os.path.join(shared, "trained_toy_run")
  with open(os.path.join(shared, "trained_toy_run.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(os.path.join(shared, "trained_toy_run.done")):
      shutil.rmtree(model_dir, ignore_errors=True)  # a worker that died while training it
      gin.clear_config()
      assert train.main(toy_run.shared_run_args(model_dir)) == 0
      _reset_gin()
      open(os.path.join(shared, "trained_toy_run.done"), "w").close()
  return model_dir


@pytest.fixture(scope="session")
def gcs_server():
  """One fake-gcs-server for the session (see tests/gcs_emulator.py for how clients reach it)."""
  import gcs_emulator  # pylint: disable=import-outside-toplevel
  server = gcs_emulator.GcsEmulator().start()
  yield server
  server.stop()


@pytest.fixture
def gcs(gcs_server, monkeypatch, tmp_path):
  """A fresh bucket on the emulator, with this process's GCS clients pointed at it.

  Yields a `gcs_emulator.Bucket`; subprocesses started with `env=os.environ` (or `gcs.env()`)
  reach the same emulator. Afterwards no `gs:` folder may exist on local disk (a gs:// path
  taken as a local one).
  """
  import gcs_emulator  # pylint: disable=import-outside-toplevel
  for name, value in gcs_server.environment().items():
    monkeypatch.setenv(name, value)
  bucket = gcs_emulator.Bucket.create(gcs_server)
  yield bucket
  strays = gcs_emulator.local_gs_folders([os.getcwd(), str(tmp_path), os.path.dirname(__file__)])
  assert not strays, f"gs:// paths were written to local disk: {strays}"
  assert not gcs_server.refused_hosts, f"clients tried other hosts: {gcs_server.refused_hosts}"


def pytest_unconfigure(config):
  """The session's compilation cache and shared folder go with the process that made them."""
  del config
  for folder in (_SESSION_CACHE, _SESSION_SHARED):
    if folder:
      shutil.rmtree(folder, ignore_errors=True)
