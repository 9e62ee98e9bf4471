"""Looking inside a method: the demo's model loader and the attention maps of the paper's Figures 5 and 8."""
