"""A plugin package that lives only under tests/, registered through HARNESS_PLUGINS like a user's package
(issue 13's acceptance test, tests/methods/test_plugin_package.py). Importing it registers

- `keys_rule.SelfKeys`: a new attention rule (``ps: test-self-keys``), plugged into the one-pass pipeline by the
  method ``test-onepass-keys`` (a `methods.plugin.Plugin`: one line of data);
- `patch_probe.PATCH_PROBE`: ``test-patch-probe``, a method with a proposal-free pipeline of its own (every CLIP
  patch classified against the text embeddings), built on `harness.api`'s contract alone.

Nothing under harness/ knows either of them.
"""

from harness.registries import METHODS

from . import keys_rule  # noqa: F401 - registers the rule before the plugin below names it

METHODS.register("test-onepass-keys", "plugin_example.keys_rule:ONEPASS_KEYS")
METHODS.register("test-patch-probe", "plugin_example.patch_probe:PATCH_PROBE")
