"""Training and recording."""

from .recorder import Recorder, choose_probe
from .sampler import epoch_batches
from .trainer import TrainingDivergedError, TrainingInterrupted, resolve_device, train

__all__ = ["Recorder", "TrainingDivergedError", "TrainingInterrupted", "choose_probe", "epoch_batches", "resolve_device", "train"]
