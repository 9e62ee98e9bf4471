"""The project's registries. Entries are registered by plugin modules, imported on first lookup.

- ``METHODS``: method plugins (``methods/catalog.py`` holds one line per method).
- ``DATASETS``: the dataset catalog (``harness/data/catalog.py``).
- ``TASKS``: what a suite benchmark does with a method (``harness/tasks/__init__.py``).
- ``TOOLS``: model-side helpers of CLI commands (``methods/catalog.py``).
- ``PARTS``: part kind -> the module table of its in-tree parts (``harness.parts``; ``methods/catalog.py``);
  loading an entry registers that kind's parts for ``harness list parts``.

``harness`` never imports a method by name: only ``methods.catalog`` knows them.
"""

from .registry import Registry

METHODS: Registry = Registry("method", plugins=("methods.catalog",))
DATASETS: Registry = Registry("dataset", plugins=("harness.data.catalog",))
TASKS: Registry = Registry("task", plugins=("harness.tasks",))
# Model-side tools the CLI needs (the demo's model loader, the attention maps of Figures 5/8): reached by name,
# so that harness never imports methods.
TOOLS: Registry = Registry("tool", plugins=("methods.catalog",))
PARTS: Registry = Registry("part kind", plugins=("methods.catalog",))
