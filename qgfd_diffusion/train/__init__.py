"""Training: run configs, phases (adapters fitted on their data), the accelerate trainer,
checkpoints and EMA. Where the examples come from is ``qgfd_diffusion.data``."""
