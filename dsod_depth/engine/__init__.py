"""Training and evaluation engine: checkpoints, logging, the training loop, distributed set-up."""
