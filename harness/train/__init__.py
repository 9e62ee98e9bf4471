"""Training and evaluation machinery shared by every method: the loop (AMP, clipping, schedules, checkpoints,
resume, DDP), the stage cache, and the sharded evaluation loop."""
