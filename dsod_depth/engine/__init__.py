"""Training and evaluation engine: run folders, checkpoints, devices, model initialisation, logging, the
training and pretraining loops, evaluation, distributed set-up."""
