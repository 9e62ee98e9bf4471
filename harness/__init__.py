"""Reference harness for zero-shot semantic segmentation (DeOP, its ablations and SimBaseline).

The machinery lives here and knows no method by name; the methods are plugins in `methods/`,
reached only through `harness.registries`.
"""

__version__ = "0.1.0"
