"""Class-agnostic MaskFormer proposals (METHOD_SPEC 1): R101c via timm, FPN pixel decoder, DETR predictor,
text-embedding classifier, Hungarian matcher, set criterion and semantic inference."""

from .backbone import ResNetBackbone, fold_frozen_batch_norm, normalise_images, pad_to_divisible
from .config import PIXEL_MEAN, PIXEL_STD, MaskFormerConfig
from .d2_weights import detectron2_key_to_timm, load_backbone_weights, read_detectron2_pickle
from .inference import class_probs_without_void, combine_semantic, mask_probs_at_image, semantic_inference
from .losses import SetCriterion, dice_loss, sigmoid_focal_loss
from .matcher import HungarianMatcher
from .model import MaskFormer, class_logits, maskformer_param_groups
from .position import sine_position_encoding
from .predictor import MLP, DetrDecoderLayer, TransformerPredictor
from .targets import targets_from_semantic

__all__ = [
    "MLP", "PIXEL_MEAN", "PIXEL_STD", "DetrDecoderLayer", "HungarianMatcher", "MaskFormer", "MaskFormerConfig",
    "ResNetBackbone", "SetCriterion", "TransformerPredictor", "class_logits", "class_probs_without_void",
    "combine_semantic", "detectron2_key_to_timm", "fold_frozen_batch_norm", "dice_loss", "load_backbone_weights", "mask_probs_at_image",
    "maskformer_param_groups", "normalise_images", "pad_to_divisible", "read_detectron2_pickle",
    "semantic_inference", "sigmoid_focal_loss", "sine_position_encoding", "targets_from_semantic",
]
