"""Training: run configs, phases (adapters fitted on their data), the accelerate trainer,
checkpoints and EMA. Where the examples come from is ``qgfd_diffusion.data``.

``load_trained_pipeline`` loads any trained folder as a pipeline, a run's training checkpoints
(``checkpoints/step-*``) included.
"""

from .checkpoint_model import load_trained_pipeline, pipeline_from_checkpoint

__all__ = ["load_trained_pipeline", "pipeline_from_checkpoint"]
