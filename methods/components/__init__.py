"""Shared building blocks of the methods, each usable on its own.

`clip_trunk` (the one dense CLIP trunk: a frozen ViT run block by block, a per-block attention rule), `clip_dense`
(DeOP's dense CLIP on it: severance rules, visual prompts, proposal masks), `last_block` (the training-free
family's last block on it), `text` (class-name prompts),
`weights` (building CLIP from a tag, a local file or explicitly random weights), `proposals`, `anchors`
and `regions`.
"""
