"""The three trainings of the official recipe (METHOD_SPEC 0), each cached by the hash of its spec:
1. `prompts`: CoOp text context on GT-mask crops of seen classes (SimBaseline's stage, reused by DeOP);
2. `proposals`: the class-agnostic MaskFormer with the stage-1 text classifier;
3. `head`: a one-pass method's trainable parts (visual prompts, online text prompt, CAL, void embedding)."""
