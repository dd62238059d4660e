"""Trained weights of the deep baselines (``<name>.pt``), with their configs and training logs."""
