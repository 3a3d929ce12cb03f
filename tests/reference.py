"""Where the shared reference material lives: ../shared/reference beside the checkout, else
$SYNTHETIC_PRETRAINING_REFERENCE, else /work/shared/reference."""
import os

_CANDIDATES = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference"),
               os.environ.get("SYNTHETIC_PRETRAINING_REFERENCE", ""), "/work/shared/reference"]
REFERENCE_DIR = next((os.path.normpath(c) for c in _CANDIDATES if c and os.path.isdir(c)),
                     os.path.normpath(_CANDIDATES[0]))
T5X_TINY = os.path.join(REFERENCE_DIR, "t5x_checkpoints", "t5_1_1_tiny.msgpack")
