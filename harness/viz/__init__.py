"""Pictures: the demo's overlays and label maps, the paper-style attention figures, the speed-accuracy plot.

- `palette`: a fixed colour per class index (the same class index gets the same colour in every picture).
- `overlay`: label map -> colour overlay, pixel shares, label PNGs (numpy and PIL only).
- `inputs`: the demo's images (files and directories, unreadable files skipped, a size limit) and class names.
- `model`: the demo's method: untrained stages, or trained stages named by a record (`--stages-from`).
- `demo`: run a segmenter over images and write everything per image.
- `attention`: last-block self-attention with and without patch severance, proposal masks, CAL heatmaps
  (paper Figures 5 and 8); `figures`: their matplotlib layout and the demo's legend panel.
- `plots`: FPS vs hIoU per method from suite records.

Every module imports torch / matplotlib at module level: import them from inside a command's ``run``.
"""
