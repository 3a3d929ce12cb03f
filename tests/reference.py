"""The test suite's reference data, kept in the repository (tests/testdata, see its README)."""
import os

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata")
SAMPLES_DIR = os.path.join(REFERENCE_DIR, "original_task_samples")
T5X_TINY = os.path.join(REFERENCE_DIR, "t5x_checkpoints", "t5_1_1_tiny.msgpack")
