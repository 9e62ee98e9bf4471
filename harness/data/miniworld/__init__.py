"""MiniWorld: a procedurally drawn world with named classes, a tiny CLIP pretrained on its captions, and a
seen/unseen split, so every suite runs end to end on a CPU with numbers that mean something (issue 9).

- `world`: the stuff textures and thing shapes, scenes and captions (numpy and PIL only).
- `recipe`: how its CLIP is pretrained, as plain data (the CLI's defaults; the record stores it).

The model side - contrastive pretraining of the tiny CLIP and the probe of what it knows - is in
`methods.tools.miniworld` (``python -m harness miniworld pretrain|probe`` reaches it through the TOOLS registry).

The dataset itself (`miniworld`, COCO-Stuff raw format, 15 seen / 5 unseen classes) is the catalog entry
`harness.data.catalog.MINIWORLD`, which names its appearances (`world.APPEARANCES`) as data.
"""
