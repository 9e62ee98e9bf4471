"""Tools around the methods, apart from them: the demo's model loader, the attention maps of the paper's
Figures 5 and 8, and MiniWorld's CLIP pretraining and probe. The CLI reaches them through the TOOLS registry."""
