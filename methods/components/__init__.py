"""Shared building blocks of the methods, each usable on its own.

`clip_dense` (dense CLIP features with attention rules and visual prompts), `text` (class-name prompts),
`weights` (building CLIP from a tag, a local file or explicitly random weights), `proposals`, `anchors`
and `regions`.
"""
