"""TrainConfig: every option of a training run, checked once, shared by ``dmlviz.train`` and the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validation import check_choice, check_positive_float, check_positive_int

#: largest probe_size accepted (the probe is recorded every epoch)
PROBE_MAX_SIZE = 100_000
#: options that belong to the dataset, not the loss (a common slip: ``image_size=`` given to train)
DATA_OPTIONS = frozenset({"image_size", "resize", "download", "augment", "flip", "thumbnail_size"})
NMI_METHODS = ("auto", "kmeans", "minibatch", "off")
AUTO_BOOL = ("auto", True, False)


@dataclass
class TrainConfig:
    """The options of one training run; ``TrainConfig(...)`` checks them (errors name the option, the value and what works).

    dataset: a name from ``dmlviz.data.DATASETS``, ``"imagefolder:PATH"``, a features file
    ``*.npz`` written by ``dmlviz features``, or a DMLDataset. model: "linear", "mlp", "cnn",
    "resnet18", "resnet50" or an nn.Module mapping inputs [B, *input_shape] to [B, embedding_dim].
    loss: a name from ``dmlviz.losses.LOSSES`` or a DMLLoss; ``loss_params`` go to it (e.g.
    ``{"centers_per_class": 10, "tau": 0.2}`` for SoftTriple).

    Optimiser: Adam; centers and proxies at ``center_lr`` (default 10 × ``lr``), a backbone's
    trunk at ``backbone_lr`` (default ``lr``). split: "classes", "samples" (``test_fraction``
    of each class held out) or "official" (the benchmark's own split; the default of
    datasets that have one, else "classes"). m_per_class: batches of m samples per class
    (default min(4, batch_size // 2) for pair losses). ``probe_size`` samples (2 to 100,000)
    are recorded every epoch with effective K under ``eps``. nmi: "auto", "kmeans",
    "minibatch" or "off", every ``nmi_every`` epochs.

    Speed: ``resident`` ("auto": on CUDA when the in-memory dataset takes at most a quarter
    of the free GPU memory) keeps the inputs on the device and indexes batches there, no
    DataLoader; ``record_async`` ("auto": on CUDA) records an epoch in a background thread
    while the next one trains, checkpoint written after its snapshot.
    """

    dataset: Any = "mnist5k-pairs"
    model: Any = "linear"
    loss: Any = "softtriple"
    regularizer: str | None = None
    augmenter: str | None = None
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    center_lr: float | None = None
    embedding_dim: int = 64
    split: str | None = None
    test_fraction: float = 0.5
    m_per_class: int | None = None
    probe_size: int = 5000
    eps: float = 0.05
    seed: int = 0
    out: str | Path | None = None
    device: Any = "auto"
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    num_workers: int = 0
    data_root: str | Path | None = None
    data_params: dict[str, Any] | None = None
    model_params: dict[str, Any] | None = None
    backbone_lr: float | None = None
    nmi: str = "auto"
    nmi_every: int = 1
    resident: Any = "auto"
    record_async: Any = "auto"
    loss_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.epochs = check_positive_int("epochs", self.epochs)
        self.batch_size = check_positive_int("batch_size", self.batch_size, minimum=2)
        self.embedding_dim = check_positive_int("embedding_dim", self.embedding_dim)
        self.probe_size = check_positive_int("probe_size", self.probe_size, minimum=2)
        if self.probe_size > PROBE_MAX_SIZE:
            raise ValueError(
                f"probe_size must be an integer from 2 to {PROBE_MAX_SIZE:,}, got {self.probe_size:,}; "
                "the probe is recorded every epoch, so use e.g. 5000 (the default)"
            )
        self.seed = check_positive_int("seed", self.seed, minimum=0)
        self.lr = check_positive_float("lr", self.lr, example=1e-3)
        if self.center_lr is not None:
            self.center_lr = check_positive_float("center_lr", self.center_lr, example=10.0 * self.lr)
        self.eps = check_positive_float("eps", self.eps, example=0.05)
        if self.backbone_lr is not None:
            self.backbone_lr = check_positive_float("backbone_lr", self.backbone_lr, example=self.lr)
        for name in ("model_params", "data_params"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                example = "{'pretrained': True}" if name == "model_params" else "{'image_size': 224}"
                raise TypeError(f"{name} must be a dict of options, e.g. {example}, got {value!r}")
        if not isinstance(self.loss_params, dict):
            raise TypeError(f"loss_params must be a dict of loss parameters, e.g. {{'tau': 0.2}}, got {self.loss_params!r}")
        if self.regularizer is not None:
            from ..losses import REGULARIZERS

            check_choice("regularizer", self.regularizer, tuple(REGULARIZERS))
        if self.augmenter is not None:
            from ..losses import AUGMENTERS

            check_choice("augmenter", self.augmenter, tuple(AUGMENTERS))
        if self.nmi not in NMI_METHODS:
            raise ValueError(f"nmi must be 'auto', 'kmeans', 'minibatch' or 'off', got {self.nmi!r}")
        self.nmi_every = check_positive_int("nmi_every", self.nmi_every)
        self.num_workers = check_positive_int("num_workers", self.num_workers, minimum=0)
        for name in ("resident", "record_async"):
            if getattr(self, name) not in AUTO_BOOL or getattr(self, name) is None:
                raise ValueError(f"{name} must be 'auto', True or False, got {getattr(self, name)!r}")
        if self.m_per_class is not None:
            self.m_per_class = check_m_per_class(self.m_per_class, self.batch_size)
        if self.resume and self.overwrite:
            raise ValueError("resume=True and overwrite=True contradict each other; pass one")
        if self.resume and self.out is None:
            raise ValueError("resume=True needs out= pointing at an existing run (the folder that holds its run.json)")
        misplaced = sorted(set(self.loss_params) & DATA_OPTIONS)
        if misplaced:
            shown = ", ".join(f"{k!r}: {self.loss_params[k]!r}" for k in misplaced)
            raise ValueError(f"{misplaced} are dataset parameters, not loss parameters: pass data_params={{{shown}}}")

    @classmethod
    def from_options(cls, **options: Any) -> "TrainConfig":
        """A config from keyword options: TrainConfig fields by name, everything else a loss parameter."""
        names = {f.name for f in dataclasses.fields(cls)}
        loss_params = dict(options.pop("loss_params", None) or {})
        loss_params.update({k: options.pop(k) for k in list(options) if k not in names})
        return cls(**options, loss_params=loss_params)

    @property
    def resolved_center_lr(self) -> float:
        """``center_lr``, or 10 × ``lr`` when not given."""
        return 10.0 * self.lr if self.center_lr is None else self.center_lr

    def replace(self, **options: Any) -> "TrainConfig":
        """A copy with some options changed (checked again)."""
        return dataclasses.replace(self, **options)


def check_m_per_class(m_per_class: Any, batch_size: int) -> int:
    """m_per_class as an int >= 2 that leaves at least 2 classes in a batch of ``batch_size``."""
    m_per_class = check_positive_int("m_per_class", m_per_class, minimum=2)
    if m_per_class > batch_size // 2:
        raise ValueError(f"m_per_class={m_per_class} leaves fewer than 2 classes in a batch of {batch_size}; use m_per_class <= {batch_size // 2}")
    return m_per_class
