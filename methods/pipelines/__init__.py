"""The pipelines: how a method turns an image into class scores. `onepass` (CLIP sees the image once: baseline ...
DeOP), `multipass` (CLIP on every masked crop: SimBaseline), `common` (what they share: the test-time
preprocessing, the proposal masks), and `assemble`, the one path from a spec to a built or trained segmenter.
A pipeline of another shape is a module here plus its kind in `assemble.PIPELINES` (see methods/README.md)."""
