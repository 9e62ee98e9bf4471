import os

# An offline hub request otherwise hangs ~47 s before failing; every test must stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
