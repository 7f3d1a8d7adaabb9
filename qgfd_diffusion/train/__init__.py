"""Training: run configs, data sources, the accelerate trainer, checkpoints and EMA.

``load_trained_pipeline`` loads any trained folder as a pipeline, a run's training checkpoints
(``checkpoints/step-*``) included.
"""

from .checkpoint_model import load_trained_pipeline, pipeline_from_checkpoint

__all__ = ["load_trained_pipeline", "pipeline_from_checkpoint"]
