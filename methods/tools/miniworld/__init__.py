"""The model side of MiniWorld (issue 9): contrastive pretraining of its tiny CLIP (`pretrain`; the recipe is
data in `harness.data.miniworld.recipe`), the probe of what that CLIP knows before any segmentation training
(`probe`), and the two CLI actions as functions (`record`).

The world itself (scenes, captions, classes) is data and lives in `harness.data.miniworld`; the CLI command
``python -m harness miniworld`` reaches this package through the TOOLS registry (`methods.catalog`), so that
`harness` never imports `methods`.
"""
