"""The METHODS registry's plugin module: one line per method plugin.

Adding a method: write ``methods/<name>.py`` with a plugin object (see ``harness.api.MethodPlugin``) and
add one ``METHODS.register(...)`` line here.
"""

from harness.registries import METHODS, TOOLS

METHODS.register("baseline", "methods.baseline:BASELINE")
METHODS.register("baseline+", "methods.baseline:BASELINE_PLUS")
METHODS.register("baseline+ps", "methods.deop:BASELINE_PLUS_PS")
METHODS.register("baseline+cal", "methods.deop:BASELINE_PLUS_CAL")
METHODS.register("deop", "methods.deop:DEOP")
METHODS.register("simbaseline", "methods.simbaseline:SIMBASELINE")
METHODS.register("clip", "methods.training_free_plugins:CLIP")
METHODS.register("maskclip", "methods.training_free_plugins:MASKCLIP")
METHODS.register("sclip", "methods.training_free_plugins:SCLIP")
METHODS.register("clearclip", "methods.training_free_plugins:CLEARCLIP")
METHODS.register("naclip", "methods.training_free_plugins:NACLIP")
METHODS.register("proxyclip", "methods.training_free_plugins:PROXYCLIP")

TOOLS.register("demo-model", "methods.inspect.demo_model:load_demo_model")
TOOLS.register("attention-maps", "methods.inspect.attention:attention_maps")
TOOLS.register("miniworld-pretrain", "methods.miniworld.record:pretrain_and_record")
TOOLS.register("miniworld-probe", "methods.miniworld.record:probe_checkpoint")
