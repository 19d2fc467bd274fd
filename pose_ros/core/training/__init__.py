"""Training: targets to batches, multi-stage losses, optimisation loops (pure library)."""
