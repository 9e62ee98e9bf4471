"""Vanilla dense CLIP: the frozen CLIP with its own last block (qk, residual and FFN kept), no training; the
training-free family's floor (TRAINING_FREE_SPEC 3: CLIP as ResCLIP re-runs it under the SCLIP protocol)."""

from ..training_free import TrainingFreePlugin
from ..training_free_spec import BACKGROUND_THD_01, SCLIP_PROTOCOL

CLIP = TrainingFreePlugin(
    "clip", "vanilla dense CLIP: last-block softmax(q k^T), residual and FFN kept, no training",
    source="SCLIP protocol (wangf3014/SCLIP @b56bd30 configs), as CLIP is re-run in ResCLIP's tables",
    attention="qk", residual="keep", ffn="keep", **SCLIP_PROTOCOL, per_dataset=BACKGROUND_THD_01)
