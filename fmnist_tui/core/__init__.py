"""The torch-free core every layer shares: errors, the architecture registry, the training config, the
dataset, run folders, atomic files, metrics and the trainer's events (numpy at most, never torch)."""
