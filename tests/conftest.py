import os

# An offline hub request otherwise hangs ~47 s before failing; every test must stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import sys
from pathlib import Path

# Test doubles (tests/doubles.py) register a fake method and tasks, so the harness core can be tested without
# the real methods. They are reached through the same plugin mechanism users have (HARNESS_PLUGINS).
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["HARNESS_PLUGINS"] = ",".join(
    p for p in [*os.environ.get("HARNESS_PLUGINS", "").split(","), "doubles"] if p
)

# Tests run tiny models, for which two threads on two shared cores are far slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass
