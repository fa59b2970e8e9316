"""Training on MONAI's ``SupervisedTrainer``: :func:`train` from a ``RunConfig`` into a run folder, with its
handlers, schedules, resumption, compilation, TensorBoard events and distributed set-up."""

from medseg_monai.training.trainer import TrainResult, make_splits, train

__all__ = ["TrainResult", "make_splits", "train"]
