"""MiniWorld: a procedurally drawn world with named classes, a tiny CLIP pretrained on its captions, and a
seen/unseen split, so every suite runs end to end on a CPU with numbers that mean something (issue 9).

- `world`: the stuff textures and thing shapes, scenes and captions (numpy and PIL only).
- `recipe`: how its CLIP is pretrained, as plain data (the CLI's defaults; the record stores it).

The model side - contrastive pretraining of the tiny CLIP and the probe of what it knows - is in
`methods.miniworld` (``python -m harness miniworld pretrain|probe`` reaches it through the TOOLS registry).

The dataset itself (`miniworld`, COCO-Stuff raw format, 15 seen / 5 unseen classes) is the catalog entry
`harness.data.catalog.MINIWORLD`; the registry reaches it through this package (``MINIWORLD`` below), so that
asking for the dataset also gives the shared scene generator its classes' appearances. Importing the package
alone stays light: the attribute loads `world` on first access.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "MINIWORLD":
        from ..catalog import MINIWORLD
        from .world import register_appearances

        register_appearances()
        return MINIWORLD
    if name == "MINIWORLD_BG":  # the same scenes; stuff drawn as the background
        from ..catalog import MINIWORLD_BG
        from ..class_names.miniworld import MINIWORLD_BG_STUFF_RAW, MINIWORLD_STUFF
        from ..synthetic import BACKGROUND_STUFF
        from .world import register_appearances

        register_appearances()
        BACKGROUND_STUFF[MINIWORLD_BG.name] = tuple(zip(MINIWORLD_STUFF, MINIWORLD_BG_STUFF_RAW, strict=True))
        return MINIWORLD_BG
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
