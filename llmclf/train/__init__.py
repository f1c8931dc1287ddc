"""Training (the train stage): the Trainer and its loss, memory levers, checkpoints and data-parallel processes."""
