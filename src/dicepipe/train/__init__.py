"""Training: the task-mixing loader over the shards, the loop on accelerate, checkpoints."""
