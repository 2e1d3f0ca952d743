"""Builds what a run trains from a TrainConfig: data and split, model, loss, optimizer, the run's config record."""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..data import DMLDataset, Split, load_dataset, split_dataset
from ..eval.clustering import resolve_nmi_method
from ..losses import Augmented, DMLLoss, Regularized, build
from ..models import build_model
from .._device import resolve_device
from .config import TrainConfig, check_m_per_class

__all__ = ["Setup", "build_setup", "resolve_device", "versions"]


@dataclass
class Setup:
    """Everything one training run holds: data, split, model, loss, optimizer and the config written to run.json."""

    config: TrainConfig
    data: DMLDataset
    parts: Split
    train_labels: np.ndarray  # [N_train], training classes renumbered 0..C_train-1
    net: torch.nn.Module
    loss_fn: DMLLoss
    optimizer: torch.optim.Optimizer
    device: torch.device
    m_per_class: int | None
    nmi: str
    run_config: dict[str, Any]
    out: Path

    def learning_rates(self) -> dict[str, float]:
        """The learning rate of each optimizer parameter group, by group name."""
        cfg = self.config
        return {"model": cfg.lr, "loss": cfg.lr, "centers": cfg.resolved_center_lr, "backbone": cfg.backbone_lr or cfg.lr}


def describe(obj: Any) -> str:
    """A name for run.json: the name given, or ``custom:<class>`` for an object."""
    return obj if isinstance(obj, str) else f"custom:{type(obj).__name__}"


def versions() -> dict[str, str]:
    """Versions of the libraries a run depends on, for run.json."""
    import pytorch_metric_learning

    return {
        "dmlviz": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
    }


def build_setup(config: TrainConfig, *, world_size: int = 1) -> Setup:
    """Load the data, split it, build model, loss and optimizer (nothing is written); checks that they fit together."""
    cfg = config
    device = resolve_device(cfg.device)
    data_kwargs = dict(cfg.data_params or {})
    if cfg.data_root is not None:
        data_kwargs["data_root"] = str(cfg.data_root)
    data = load_dataset(cfg.dataset, **data_kwargs)
    predefined = getattr(data, "predefined_split", None)
    split = cfg.split if cfg.split is not None else ("official" if predefined is not None else "classes")
    parts = split_dataset(data.labels, split, test_fraction=cfg.test_fraction, seed=cfg.seed, predefined=predefined)
    _check_classes(parts, data.labels)
    label_map = np.full(data.num_classes, -1, dtype=np.int64)
    label_map[parts.train_classes] = np.arange(len(parts.train_classes))
    train_labels = label_map[data.labels[parts.train]]
    nmi = cfg.nmi if cfg.nmi == "off" else resolve_nmi_method(cfg.nmi, len(parts.test), len(np.unique(data.labels[parts.test])))

    torch.manual_seed(cfg.seed)
    net = build_model(cfg.model, data.input_shape, cfg.embedding_dim, **(cfg.model_params or {}))
    if isinstance(cfg.loss, DMLLoss):
        if cfg.loss_params:
            raise ValueError(f"loss parameters {sorted(cfg.loss_params)} were given with a loss object; set them on the object")
        _check_loss_object(cfg.loss, len(parts.train_classes), cfg.embedding_dim, split)
        loss_fn = cfg.loss if cfg.augmenter is None else Augmented(cfg.loss, cfg.augmenter)
        loss_fn = loss_fn if cfg.regularizer is None else Regularized(loss_fn, cfg.regularizer)
    else:
        loss_fn = build(
            cfg.loss, num_classes=len(parts.train_classes), embedding_dim=cfg.embedding_dim, regularizer=cfg.regularizer,
            augmenter=cfg.augmenter, **cfg.loss_params
        )
    m_per_class = cfg.m_per_class
    if m_per_class is None and loss_fn.needs_pairs:
        if cfg.batch_size < 4:
            raise ValueError(f"loss {loss_fn.name!r} compares pairs, so batch_size must be >= 4 (2 classes of 2 samples), got {cfg.batch_size}")
        m_per_class = check_m_per_class(min(loss_fn.preferred_m_per_class, cfg.batch_size // 2), cfg.batch_size)
    net.to(device)
    if device.type == "cuda" and getattr(net, "channels_last", False):
        net.to(memory_format=torch.channels_last)
    loss_fn.set_class_counts(np.bincount(train_labels, minlength=len(parts.train_classes)))  # e.g. SOPRC's class prior
    loss_fn.to(device)
    _check_model_output(net, data, parts.train, cfg.embedding_dim, device)
    optimizer, has_trunk = _build_optimizer(cfg, net, loss_fn, device)

    run_config = {
        "dataset": describe(cfg.dataset),
        "num_samples": len(data),
        "num_classes": data.num_classes,
        "model": describe(cfg.model),
        "loss": cfg.loss.name if isinstance(cfg.loss, DMLLoss) else cfg.loss,
        "loss_params": dict(loss_fn.hparams),
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "center_lr": cfg.resolved_center_lr,
        **({"backbone_lr": cfg.backbone_lr or cfg.lr} if has_trunk else {}),
        "optimizer": "adam",
        "embedding_dim": cfg.embedding_dim,
        "split": split,
        "test_fraction": cfg.test_fraction if split == "samples" else None,
        "train_classes": len(parts.train_classes),
        "m_per_class": m_per_class,
        "probe_size": cfg.probe_size,
        "eps": cfg.eps,
        "nmi": nmi,
        "nmi_every": cfg.nmi_every,
        "seed": cfg.seed,
        "device": str(device),
        "amp": "bf16" if device.type == "cuda" else None,
        "world_size": world_size,
    }
    if cfg.regularizer is not None:
        run_config["regularizer"] = cfg.regularizer
    if cfg.augmenter is not None:
        run_config["augmenter"] = cfg.augmenter
    if loss_fn.embedding_scale != "unit":  # how the loss measured distances; views measure the same way
        run_config["embedding_scale"] = loss_fn.embedding_scale
    if cfg.model_params:
        run_config["model_params"] = dict(cfg.model_params)
    if cfg.data_root is not None:
        run_config["data_root"] = str(cfg.data_root)
    kept = {k: v for k, v in (cfg.data_params or {}).items() if k != "download"}  # fetching is not a setting of the run
    if kept:
        run_config["data_params"] = kept
    out = cfg.out
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{run_config['dataset']}-{run_config['loss']}-{stamp}".replace(":", "_")
    return Setup(cfg, data, parts, train_labels, net, loss_fn, optimizer, device, m_per_class, nmi, run_config, Path(out))


def _build_optimizer(cfg: TrainConfig, net: torch.nn.Module, loss_fn: DMLLoss, device: torch.device) -> tuple[torch.optim.Optimizer, bool]:
    """Adam with named groups: "backbone" (a trunk, at backbone_lr), "model", "centers" (at center_lr), "loss"."""
    center_params = {id(p) for p in loss_fn.center_parameters()}
    trunk = list(net.backbone_parameters()) if callable(getattr(net, "backbone_parameters", None)) else []
    if trunk:  # the papers' setting: the pretrained trunk at its own (usually lower) learning rate
        in_trunk = {id(p) for p in trunk}
        groups = [
            {"params": trunk, "lr": cfg.backbone_lr or cfg.lr, "name": "backbone"},
            {"params": [p for p in net.parameters() if id(p) not in in_trunk], "lr": cfg.lr, "name": "model"},
        ]
    else:
        if cfg.backbone_lr is not None:
            raise ValueError(
                f"backbone_lr={cfg.backbone_lr} was given, but model {describe(cfg.model)!r} has no backbone; "
                "use model='resnet18' or 'resnet50', or leave backbone_lr out"
            )
        groups = [{"params": list(net.parameters()), "lr": cfg.lr, "name": "model"}]
    centers = [p for p in loss_fn.parameters() if id(p) in center_params]
    others = [p for p in loss_fn.parameters() if id(p) not in center_params]
    if centers:
        groups.append({"params": centers, "lr": cfg.resolved_center_lr, "name": "centers"})
    if others:
        groups.append({"params": others, "lr": cfg.lr, "name": "loss"})
    if fused_adam(device):
        return torch.optim.Adam(groups, fused=True), bool(trunk)
    return torch.optim.Adam(groups), bool(trunk)


def fused_adam(device: torch.device) -> bool:
    """Whether Adam runs fused on ``device`` (CUDA): one kernel per step, and it skips a step whose loss was
    not finite on the device (``found_inf``), so the loop needs no host sync per batch to guard against NaN.
    On the CPU the loop checks each loss (free there) and keeps torch's default Adam."""
    return device.type == "cuda"


def _check_classes(parts: Split, labels: np.ndarray) -> None:
    """Training needs 2 classes (negatives); a class-disjoint test split needs 2 too (retrieval, NMI)."""
    n_train, n_test = len(parts.train_classes), len(np.unique(labels[parts.test]))
    if parts.how in ("classes", "official") and (n_train < 2 or n_test < 2):
        raise ValueError(
            f"split={parts.how!r} gives {n_train} training and {n_test} test classes here; each side needs at least 2: "
            "use split='samples' (every class in both splits) or a dataset with at least 4 classes"
        )
    if n_train < 2:
        raise ValueError(f"training needs at least 2 classes, the training split has {n_train}; use a dataset with more classes")


def _check_loss_object(loss: DMLLoss, num_classes: int, embedding_dim: int, split: str) -> None:
    if loss.num_classes != num_classes:
        raise ValueError(
            f"the loss object was built with num_classes={loss.num_classes}, but split={split!r} gives {num_classes} "
            f"training classes; build it with num_classes={num_classes}"
        )
    if loss.embedding_dim != embedding_dim:
        raise ValueError(
            f"the loss object was built with embedding_dim={loss.embedding_dim}, but embedding_dim={embedding_dim}; "
            f"build it with embedding_dim={embedding_dim} or pass embedding_dim={loss.embedding_dim}"
        )


def _check_model_output(net: torch.nn.Module, data: DMLDataset, ids: np.ndarray, embedding_dim: int, device: torch.device) -> None:
    """One forward pass (eval mode, no gradient) on 2 training samples: shape [2, embedding_dim], finite."""
    inputs, _ = next(iter(data.batches([ids[:2]])))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(inputs.to(device))
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"the model cannot embed a batch of inputs of shape {tuple(inputs.shape)}: {error}") from error
    finally:
        net.train(was_training)
    want = (len(inputs), embedding_dim)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != want:
        raise ValueError(
            f"the model maps inputs of shape {tuple(inputs.shape)} to {got}, but embedding_dim={embedding_dim} needs {want}; "
            "pass the model's output size as embedding_dim, or change the model"
        )
    if not torch.isfinite(out).all():
        raise ValueError("the model's output on 2 training samples contains NaN or inf before training; check its initialisation")
