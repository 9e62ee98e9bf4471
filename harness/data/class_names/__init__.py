"""Class-name lists of the benchmark datasets, verbatim as the official DeOP / SimBaseline code uses them.

Names are data, not code: each module holds the lists exactly as written in the official registration
files (METHOD_SPEC §10), including odd strings such as "window " (trailing space, ADE-150) or
"diningtable" (VOC). Prompt builders strip them; the catalog keeps them verbatim.
"""
