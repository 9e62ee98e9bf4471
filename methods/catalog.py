"""The METHODS registry's plugin module: one line per method plugin.

Adding a method: write ``methods/plugins/<name>.py`` with a plugin object (a ``methods.plugin.Plugin``, or any
``harness.api.SegmentationMethod``) and add one ``METHODS.register(...)`` line here (methods/README.md).
"""

from harness.registries import METHODS, PARTS, TOOLS

METHODS.register("baseline", "methods.plugins.baseline:BASELINE")
METHODS.register("baseline+", "methods.plugins.baseline:BASELINE_PLUS")
METHODS.register("baseline+ps", "methods.plugins.deop:BASELINE_PLUS_PS")
METHODS.register("baseline+cal", "methods.plugins.deop:BASELINE_PLUS_CAL")
METHODS.register("deop", "methods.plugins.deop:DEOP")
METHODS.register("simbaseline", "methods.plugins.simbaseline:SIMBASELINE")
METHODS.register("clip", "methods.plugins.clip:CLIP")
METHODS.register("maskclip", "methods.plugins.maskclip:MASKCLIP")
METHODS.register("sclip", "methods.plugins.sclip:SCLIP")
METHODS.register("clearclip", "methods.plugins.clearclip:CLEARCLIP")
METHODS.register("naclip", "methods.plugins.naclip:NACLIP")
METHODS.register("proxyclip", "methods.plugins.proxyclip:PROXYCLIP")
METHODS.register("scclip", "methods.plugins.scclip:SCCLIP")
METHODS.register("lposs", "methods.plugins.lposs:LPOSS")
METHODS.register("lposs+", "methods.plugins.lposs:LPOSS_PLUS")
METHODS.register("talk2dino", "methods.plugins.talk2dino:TALK2DINO")

TOOLS.register("demo-model", "methods.tools.demo_model:load_demo_model")
TOOLS.register("attention-maps", "methods.tools.attention:attention_maps")
TOOLS.register("miniworld-pretrain", "methods.tools.miniworld.record:pretrain_and_record")
TOOLS.register("miniworld-probe", "methods.tools.miniworld.record:probe_checkpoint")
TOOLS.register("template-rankings", "methods.tools.template_ranking:template_rankings")
TOOLS.register("attention-rules", "methods.components.attention_rules:rule_descriptions")

# The in-tree parts of each kind (harness.parts): importing the table registers them for `harness list parts`.
PARTS.register("attention", "methods.components.attention_rules:ATTENTION_RULES")
PARTS.register("decision", "methods.components.queries:DECISIONS")
PARTS.register("pooling", "methods.components.pooling:POOLINGS")
PARTS.register("cal", "methods.components.cal_heads:CAL_HEADS")
PARTS.register("proposals", "methods.components.proposal_sources:PROPOSAL_SOURCES")
PARTS.register("image-model", "methods.components.image_models:IMAGE_MODELS")
PARTS.register("coupling", "methods.components.window_coupling:COUPLINGS")
PARTS.register("refinement", "methods.components.refinements:REFINEMENTS")
