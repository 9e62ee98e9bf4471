"""Baseline and Baseline+ (paper Sec. 3.1-3.2).

- `baseline`: frozen CLIP, one pass, mask pooling of dense CLIP features over the proposals, text prompt learned
  offline (stage 1) and frozen. Nothing of its own to train.
- `baseline+`: + additive visual prompts (input + blocks 1-5) + online text-prompt learning, trained with
  dice + focal on the assembled map (stage 3).
"""

from ..plugin import Plugin

BASELINE = Plugin("baseline", "frozen CLIP one pass, mask pooling, offline text prompt (Sec. 3.1)",
                  text_prompt="offline")
BASELINE_PLUS = Plugin("baseline+", "baseline + additive visual prompts + online text prompt (Sec. 3.2)",
                       text_prompt="learnable", visual_prompt="add")
