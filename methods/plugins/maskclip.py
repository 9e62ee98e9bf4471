"""MaskCLIP (ECCV'22): the last block's attention replaced by the identity, residual and FFN kept (TRAINING_FREE_SPEC
1); the same rule as DeOP's GPS at alpha = 1. Settings: the SCLIP protocol, as the SCLIP family re-runs it."""

from ..training_free import TrainingFreePlugin
from ..training_free_spec import BACKGROUND_THD_01, SCLIP_PROTOCOL

MASKCLIP = TrainingFreePlugin(
    "maskclip", "MaskCLIP (ECCV'22): last-block identity attention (= GPS alpha 1), residual and FFN kept",
    source="chongzhou96/MaskCLIP @245d31f (rule); settings: the SCLIP protocol as the SCLIP family re-runs it",
    attention="identity", residual="keep", ffn="keep", **SCLIP_PROTOCOL, per_dataset=BACKGROUND_THD_01)
