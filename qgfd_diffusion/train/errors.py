"""The error a training run stops with when it cannot go on."""


class TrainingError(RuntimeError):
    """Training cannot go on (a run folder that cannot be used as asked, too many non-finite
    losses, non-finite weights); nothing non-finite was saved."""
