"""startup.py: the quiet start's native-stderr filter in real processes (fast: no heavy imports)."""
import os
import signal
import subprocess
import sys

import pytest

from synthetic_pretraining import startup

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What TensorFlow and the JAX runtime write to descriptor 2 from native code.
_NATIVE = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796581634.490414    2669 port.cc:153] oneDNN custom operations are on.\n"
    b"I0000 00:00:1796581634.495344    2669 cudart_stub.cc:31] Could not find cuda drivers\n"
    b"E0000 00:00:1796581643.538353    2669 cuda_platform.cc:52] failed call to cuInit\n"
    b"W1206 18:27:14.123456    2669 some.cc:1] a warning\n")


def _run(body: str, *args, env=None):
  code = ("import os, sys\n"
          "from synthetic_pretraining import startup\n"
          f"startup.start('synthetic_pretraining.train', {list(args)!r})\n" + body)
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                        env=dict(os.environ, PYTHONPATH=REPO, **(env or {})), timeout=60)


def test_native_log_lines_are_dropped_and_ours_kept():
  result = _run(f"os.write(2, {_NATIVE!r})\n"
                "os.write(2, b'Skipping: a tf.print line\\n')\n"
                "print('error: ours', file=sys.stderr)\n")
  assert result.returncode == 0
  assert sorted(result.stderr.decode().splitlines()) == ["Skipping: a tf.print line",
                                                         "error: ours"]


def test_verbose_keeps_everything():
  result = _run(f"os.write(2, {_NATIVE!r})\n", "--verbose")
  assert result.stderr == _NATIVE


def test_a_dead_peer_is_one_line_naming_the_heartbeat_setting():
  """The JAX runtime's fatal line and the native stack trace of its abort become our line."""
  fatal = (b"F1206 18:30:00.000000    2669 client.cc:99] Terminating process because the JAX "
           b"distributed service detected fatal errors. This most likely indicates that another "
           b"task died; see the other task logs for more details.\n"
           b"*** Check failure stack trace: ***\n    @     0x7f0000000000  (unknown)\n"
           b"Fatal Python error: Aborted\n\nThread 0x00007f (most recent call first):\n")
  result = _run(f"os.write(2, {_NATIVE + fatal!r})\nos.abort()\n",
                env={"JAX_HEARTBEAT_TIMEOUT_SECONDS": "7"})
  assert result.returncode == -signal.SIGABRT
  lines = result.stderr.decode().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: another process of this run died"), lines
  assert "JAX_HEARTBEAT_TIMEOUT_SECONDS=7 s" in lines[0]


def test_binary_is_recognised_from_the_interpreter_arguments():
  assert startup.binary_from_argv(
      ["python", "-u", "-m", "synthetic_pretraining.train", "--help"]) == (
          "synthetic_pretraining.train", ["--help"])
  assert startup.binary_from_argv(["python", "-msynthetic_pretraining.eval"]) == (
      "synthetic_pretraining.eval", [])
  assert startup.binary_from_argv(["python", "-m", "pytest", "-m", "x"]) is None
  assert startup.binary_from_argv(["python", "script.py", "-m", "synthetic_pretraining.x"]) is None


def test_the_messages_before_a_dead_peers_fatal_error_are_dropped_too():
  """What a survivor that runs the coordinator reads when its peer died (jaxlib 0.9): an error
  line whose message goes on over two lines, then the fatal one. Only our line is left."""
  before = (b"E1206 21:49:38.407930   26627 coordination_service.cc:1549] [162226] Use error "
            b"polling to propagate the following error to all tasks: UNAVAILABLE: The following "
            b"tasks are unhealthy (stopped sending heartbeats):\n1\nThe tasks have crashed. Check "
            b"the task logs for an earlier error. [type.googleapis.com/tensorflow."
            b"CoordinationServiceError='']\n"
            b"E1206 21:49:38.408445   26638 coordination_service_agent.cc:289] Polled an error "
            b"from coordination service (this can be an error from this or another task).\n")
  fatal = (b"F1206 21:49:38.408643   26638 client.h:80] Terminating process because the JAX "
           b"distributed service detected fatal errors. This most likely indicates that another "
           b"task died; see the other task logs for more details.\n1\nThe tasks have crashed.\n"
           b"*** Check failure stack trace: ***\n    @     0x7f0000000000  (unknown)\n")
  result = _run(f"os.write(2, {before!r})\nos.write(2, {fatal!r})\nos.abort()\n",
                env={"JAX_HEARTBEAT_TIMEOUT_SECONDS": "5"})
  assert result.returncode == -signal.SIGABRT
  lines = result.stderr.decode().splitlines()
  assert len(lines) == 1 and "JAX_HEARTBEAT_TIMEOUT_SECONDS=5 s" in lines[0], lines


def test_a_native_message_goes_on_only_within_its_own_write():
  error = b"E1206 21:49:38.407930   26627 x.cc:1] the following tasks are unhealthy:\n"
  assert startup.filter_lines([error, b"1\n", b"crashed\n"]) == ([], True, None)
  assert startup.filter_lines([b"next write\n"], False) == ([b"next write\n"], False, None)
  # A message that does not end with ':' has no continuation: what follows is shown.
  warning = b"W1206 18:27:14.123456    2669 some.cc:1] a warning\n"
  assert startup.filter_lines([warning, b"a tf.print line\n"]) == (
      [b"a tf.print line\n"], False, None)
