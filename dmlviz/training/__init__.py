"""Training and recording: TrainConfig (the options), builder (data, model, loss, optimizer), trainer (the loop), recorder."""

from .builder import Setup, build_setup, resolve_device
from .config import TrainConfig
from .recorder import Recorder, choose_probe
from .sampler import epoch_batches
from .trainer import Trainer, TrainingDivergedError, TrainingInterrupted, train

__all__ = [
    "Recorder",
    "Setup",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "build_setup",
    "choose_probe",
    "epoch_batches",
    "resolve_device",
    "train",
]
