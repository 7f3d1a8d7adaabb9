"""Training: run configs, data sources, the accelerate trainer, checkpoints and EMA."""
