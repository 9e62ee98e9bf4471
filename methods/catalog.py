"""The METHODS registry's plugin module: one line per method plugin.

Adding a method: write ``methods/<name>.py`` with a plugin object (see ``harness.api.MethodPlugin``) and
add one ``METHODS.register(...)`` line here.
"""

from harness.registries import METHODS  # noqa: F401  (registrations go below)
