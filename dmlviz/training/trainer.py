"""Training: one function that trains an embedding model with a loss and records every epoch."""

from __future__ import annotations

import datetime as _dt
import logging
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from .._validation import check_positive_float, check_positive_int
from ..data import DMLDataset, Split, load_dataset, split_dataset
from ..eval.clustering import resolve_nmi_method
from ..losses import DMLLoss, build
from ..models import build_model
from ..runs import Run, RunWriter, load_run
from .recorder import PROBE_MAX_SIZE, Recorder
from .sampler import epoch_batches

logger = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the run is marked failed ("diverged") and its last good epoch kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); the run is marked "stopped" at its last complete epoch, and resume=True continues it."""

    def __init__(self, message: str, path: Path, last_epoch: int | None, resume_command: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.last_epoch = last_epoch
        self.resume_command = resume_command


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" → CUDA when available, else CPU; otherwise the named device, checked to exist."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked but CUDA is not available here; use device='cpu' or 'auto'")
    return resolved


def _describe(obj: Any, kind: str) -> str:
    return obj if isinstance(obj, str) else f"custom:{type(obj).__name__}"


def _versions() -> dict[str, str]:
    import pytorch_metric_learning

    return {
        "dmlviz": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
    }


def train(
    dataset: str | DMLDataset = "mnist5k-pairs",
    model: str | torch.nn.Module = "linear",
    loss: str | DMLLoss = "softtriple",
    *,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 1e-3,
    center_lr: float | None = None,
    embedding_dim: int = 64,
    split: str | None = None,
    test_fraction: float = 0.5,
    m_per_class: int | None = None,
    probe_size: int = 5000,
    eps: float = 0.05,
    seed: int = 0,
    out: str | Path | None = None,
    device: str | torch.device = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    num_workers: int = 0,
    data_root: str | Path | None = None,
    data_params: dict[str, Any] | None = None,
    model_params: dict[str, Any] | None = None,
    backbone_lr: float | None = None,
    nmi: str = "auto",
    nmi_every: int = 1,
    **loss_params: Any,
) -> Run:
    """Train ``model`` with ``loss`` on ``dataset``, record every epoch in ``out``, return the Run.

    dataset: a name from ``dmlviz.data.DATASETS`` or a DMLDataset. model: "linear", "mlp",
    "cnn" or an nn.Module mapping inputs [B, *input_shape] to [B, embedding_dim]. loss: a name
    from ``dmlviz.losses.LOSSES`` or a DMLLoss; ``loss_params`` go to it (e.g.
    ``centers_per_class=10, la=20, gamma=0.1, tau=0.2, margin=0.01`` for SoftTriple).
    Adam; centers and proxies use ``center_lr`` (default 10 × ``lr``, see README). split:
    "classes" (train on the first half of the classes, test on the rest), "samples"
    (``test_fraction`` of each class held out) or "official" (the benchmark's own split of
    cub200, cars196, sop, inshop; their default when ``split`` is None, else "classes");
    each side needs at least 2 classes. ``data_root`` (image datasets: the folder of their
    files) and ``data_params`` (e.g. ``{"image_size": 224, "resize": 256, "download": True}``)
    go to the named dataset; ``num_workers`` decode images in DataLoader workers.
    ``model_params`` go to the named model (e.g. ``{"pretrained": True, "pooling": "avg+max",
    "freeze_bn": True}`` for "resnet18" / "resnet50"); a model with an ImageNet trunk trains
    the trunk at ``backbone_lr`` (default ``lr``) and its embedding head at ``lr``.
    m_per_class: batches of m samples per class (default min(4, batch_size // 2) for pair
    losses, random batches otherwise). Epoch 0 is recorded before training; ``probe_size``
    samples of both splits are recorded every epoch, with effective K under ``eps``. ``seed``
    (an integer >= 0) fixes the model's initialisation, batches and dropout of every epoch.
    ``probe_size`` (2 to 100,000): with more samples than that, see :func:`choose_probe`.
    nmi: "auto" (exact k-means while test samples × test classes <= 2,000,000, else
    "minibatch"), "kmeans", "minibatch" (MiniBatchKMeans on at most 1,000 whole test classes)
    or "off"; computed on epochs divisible by ``nmi_every``, NaN in metrics.csv otherwise;
    run.json's config keeps the method used ("auto" resolved) and ``nmi_every``.

    ``resume=True`` continues the run in ``out`` from its last complete epoch, exactly as if it
    had not stopped; ``epochs`` and ``device`` may differ, and after a run that diverged (NaN)
    also ``lr``, ``center_lr`` and the loss parameters (run.json lists them under "resumed_with").
    ``overwrite=True`` replaces a dmlviz run there (only its own files). Arguments are checked,
    the model run once on 2 samples, before anything is written. A NaN or inf loss stops the run
    at that batch, before its optimizer step, with :class:`TrainingDivergedError`: the run reads
    "failed" with run.json "failure": "diverged" and keeps its last good epoch. Any other
    exception (e.g. out of memory) marks it "failed" with "failure": "error" and "error_type".
    Ctrl-C marks it "stopped" and raises :class:`TrainingInterrupted`. While training, run.json
    "heartbeat" is refreshed every few seconds, so readers tell a killed run from a live one.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size, minimum=2)
    embedding_dim = check_positive_int("embedding_dim", embedding_dim)
    probe_size = check_positive_int("probe_size", probe_size, minimum=2)
    if probe_size > PROBE_MAX_SIZE:
        raise ValueError(f"probe_size must be an integer from 2 to {PROBE_MAX_SIZE:,}, got {probe_size:,}; the probe is recorded every epoch, so use e.g. 5000 (the default)")
    seed = check_positive_int("seed", seed, minimum=0)
    lr = check_positive_float("lr", lr, example=1e-3)
    center_lr = 10.0 * lr if center_lr is None else check_positive_float("center_lr", center_lr, example=10.0 * lr)
    eps = check_positive_float("eps", eps, example=0.05)
    if backbone_lr is not None:
        backbone_lr = check_positive_float("backbone_lr", backbone_lr, example=lr)
    if model_params is not None and not isinstance(model_params, dict):
        raise TypeError(f"model_params must be a dict of model options, e.g. {{'pretrained': True}}, got {model_params!r}")
    if nmi not in ("auto", "kmeans", "minibatch", "off"):
        raise ValueError(f"nmi must be 'auto', 'kmeans', 'minibatch' or 'off', got {nmi!r}")
    nmi_every = check_positive_int("nmi_every", nmi_every)
    if m_per_class is not None:
        m_per_class = _check_m_per_class(m_per_class, batch_size)
    if resume and overwrite:
        raise ValueError("resume=True and overwrite=True contradict each other; pass one")
    if resume and out is None:
        raise ValueError("resume=True needs out= pointing at an existing run (the folder that holds its run.json)")
    torch_device = resolve_device(device)

    misplaced = sorted(set(loss_params) & {"image_size", "resize", "download", "augment", "flip", "thumbnail_size"})
    if misplaced:
        raise ValueError(
            f"{misplaced} are dataset parameters, not loss parameters: pass data_params={{{', '.join(f'{k!r}: {loss_params[k]!r}' for k in misplaced)}}}"
        )
    data_kwargs = dict(data_params or {})
    if data_root is not None:
        data_kwargs["data_root"] = str(data_root)
    data = load_dataset(dataset, **data_kwargs)
    predefined = getattr(data, "predefined_split", None)
    if split is None:
        split = "official" if predefined is not None else "classes"
    parts = split_dataset(data.labels, split, test_fraction=test_fraction, seed=seed, predefined=predefined)
    _check_classes(parts, data.labels)
    label_map = np.full(data.num_classes, -1, dtype=np.int64)
    label_map[parts.train_classes] = np.arange(len(parts.train_classes))
    train_labels = label_map[data.labels[parts.train]]

    if nmi != "off":
        nmi = resolve_nmi_method(nmi, len(parts.test), len(np.unique(data.labels[parts.test])))

    torch.manual_seed(seed)
    net = build_model(model, data.input_shape, embedding_dim, **(model_params or {}))
    if isinstance(loss, DMLLoss):
        if loss_params:
            raise ValueError(f"loss parameters {sorted(loss_params)} were given with a loss object; set them on the object")
        _check_loss_object(loss, len(parts.train_classes), embedding_dim, split)
        loss_fn = loss
    else:
        loss_fn = build(loss, num_classes=len(parts.train_classes), embedding_dim=embedding_dim, **loss_params)
    if m_per_class is None and loss_fn.needs_pairs:
        if batch_size < 4:
            raise ValueError(f"loss {loss_fn.name!r} compares pairs, so batch_size must be >= 4 (2 classes of 2 samples), got {batch_size}")
        m_per_class = _check_m_per_class(min(4, batch_size // 2), batch_size)
    net.to(torch_device)
    if torch_device.type == "cuda" and getattr(net, "channels_last", False):
        net.to(memory_format=torch.channels_last)
    loss_fn.to(torch_device)
    _check_model_output(net, data, parts.train, embedding_dim, torch_device)

    center_params = {id(p) for p in loss_fn.center_parameters()}
    trunk = list(net.backbone_parameters()) if callable(getattr(net, "backbone_parameters", None)) else []
    if trunk:  # the papers' setting: the pretrained trunk at its own (usually lower) learning rate
        backbone_lr = lr if backbone_lr is None else backbone_lr
        in_trunk = {id(p) for p in trunk}
        groups = [
            {"params": trunk, "lr": backbone_lr, "name": "backbone"},
            {"params": [p for p in net.parameters() if id(p) not in in_trunk], "lr": lr, "name": "model"},
        ]
    else:
        if backbone_lr is not None:
            raise ValueError(f"backbone_lr={backbone_lr} was given, but model {_describe(model, 'model')!r} has no backbone; use model='resnet18' or 'resnet50', or leave backbone_lr out")
        groups = [{"params": list(net.parameters()), "lr": lr, "name": "model"}]
    centers = [p for p in loss_fn.parameters() if id(p) in center_params]
    others = [p for p in loss_fn.parameters() if id(p) not in center_params]
    if centers:
        groups.append({"params": centers, "lr": center_lr, "name": "centers"})
    if others:
        groups.append({"params": others, "lr": lr, "name": "loss"})
    optimizer = torch.optim.Adam(groups)

    config = {
        "dataset": _describe(dataset, "dataset"),
        "num_samples": len(data),
        "num_classes": data.num_classes,
        "model": _describe(model, "model"),
        "loss": loss_fn.name if isinstance(loss, DMLLoss) else loss,
        "loss_params": dict(loss_fn.hparams),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "center_lr": center_lr,
        **({"backbone_lr": backbone_lr} if trunk else {}),
        "optimizer": "adam",
        "embedding_dim": embedding_dim,
        "split": split,
        "test_fraction": test_fraction if split == "samples" else None,
        "train_classes": len(parts.train_classes),
        "m_per_class": m_per_class,
        "probe_size": probe_size,
        "eps": eps,
        "nmi": nmi,
        "nmi_every": nmi_every,
        "seed": seed,
        "device": str(torch_device),
        "amp": "bf16" if torch_device.type == "cuda" else None,
    }
    if model_params:
        config["model_params"] = dict(model_params)
    if data_root is not None:
        config["data_root"] = str(data_root)
    kept = {k: v for k, v in (data_params or {}).items() if k != "download"}  # fetching is not a setting of the run
    if kept:
        config["data_params"] = kept
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{config['dataset']}-{config['loss']}-{stamp}".replace(":", "_")

    def restore(state: dict[str, Any]) -> None:
        """Load the checkpoint (before the writer changes anything); the asked learning rates win."""
        try:
            net.load_state_dict(state["model"])
            loss_fn.load_state_dict(state["loss"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ValueError(f"cannot resume: the checkpoint in {str(out)!r} does not fit this model and loss ({error})") from error
        for group in optimizer.param_groups:
            group["lr"] = {"centers": center_lr, "backbone": backbone_lr}.get(group["name"], lr)

    writer = RunWriter(out)
    last = writer.start(config, _versions(), resume=resume, overwrite=overwrite, restore=restore)
    writer.start_heartbeat()
    epoch = max(last + 1, 0)  # the epoch in progress, for messages

    try:
        if last >= 0:
            logger.info("resuming %s after epoch %d", writer.path, last)
        recorder = Recorder(
            data, parts, writer, probe_size=probe_size, eps=eps, seed=seed, device=torch_device, num_workers=num_workers,
            nmi_method=nmi, nmi_every=nmi_every,
        )
        if last < 0:
            row = recorder.record(0, net, loss_fn, {"loss": float("nan"), "seconds": 0.0})
            _save(writer, net, loss_fn, optimizer, 0)
            last = 0
        bar = tqdm(range(last + 1, epochs + 1), desc=f"{config['loss']} on {config['dataset']}", unit="epoch", disable=not progress)
        for epoch in bar:
            try:
                stats = _train_epoch(net, loss_fn, optimizer, data, parts.train, train_labels, batch_size, m_per_class, seed, epoch, torch_device, num_workers)
                if not math.isfinite(stats["loss"]):  # _train_epoch stops at the batch; this is a second guard
                    raise FloatingPointError(f"the loss became {stats['loss']} during epoch {epoch}")
                row = recorder.record(epoch, net, loss_fn, stats)
            except FloatingPointError as error:
                raise TrainingDivergedError(
                    f"{error}; the run stopped and keeps epoch {epoch - 1} as its last good snapshot. Hint: {loss_fn.nan_hint}. "
                    f"It can go on from epoch {epoch - 1}: train again with resume=True and a lower lr or center_lr, "
                    "or changed loss parameters (a run that diverged accepts these changes)"
                ) from error
            _save(writer, net, loss_fn, optimizer, epoch)
            bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("loss", "recall@1", "submode_score", "effective_k")})
            logger.info("epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    except (KeyboardInterrupt, SystemExit) as error:
        writer.mark_stopped(f"interrupted ({type(error).__name__})")
        done, command = writer.info.get("last_epoch"), None
        try:
            command = load_run(writer.path).resume_command()
        except Exception:  # the message matters more than the command line
            logger.debug("no resume command for %s", writer.path, exc_info=True)
        message = (
            f"training was interrupted ({type(error).__name__}) during epoch {epoch}; the run in {str(writer.path)!r} "
            f"reads 'stopped' and keeps epoch {done} of {epochs} as its last complete one. Continue it with "
            f"dmlviz.train(<the same arguments>, out={str(writer.path)!r}, resume=True)"
            + (f" or: {command}" if command else "")
        )
        logger.warning(message)
        if isinstance(error, KeyboardInterrupt):
            raise TrainingInterrupted(message, writer.path, done, command) from error
        raise
    except TrainingDivergedError as error:
        writer.mark_failed(error, diverged=True)
        raise
    except BaseException as error:
        writer.mark_failed(error, diverged=False)
        raise
    finally:
        writer.stop_heartbeat()
    writer.update(status="finished")
    return load_run(writer.path)


def _check_m_per_class(m_per_class: Any, batch_size: int) -> int:
    m_per_class = check_positive_int("m_per_class", m_per_class, minimum=2)
    if m_per_class > batch_size // 2:
        raise ValueError(f"m_per_class={m_per_class} leaves fewer than 2 classes in a batch of {batch_size}; use m_per_class <= {batch_size // 2}")
    return m_per_class


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


def _save(writer: RunWriter, net: torch.nn.Module, loss_fn: DMLLoss, optimizer: torch.optim.Optimizer, epoch: int) -> None:
    """The checkpoint is written last in an epoch: it marks the epoch complete."""
    writer.write_checkpoint({"epoch": epoch, "model": net.state_dict(), "loss": loss_fn.state_dict(), "optimizer": optimizer.state_dict()})
    writer.update(last_epoch=epoch)


def _train_epoch(
    net: torch.nn.Module,
    loss_fn: DMLLoss,
    optimizer: torch.optim.Optimizer,
    data: DMLDataset,
    train_ids: np.ndarray,
    train_labels: np.ndarray,
    batch_size: int,
    m_per_class: int | None,
    seed: int,
    epoch: int,
    device: torch.device,
    num_workers: int,
) -> dict[str, float]:
    """One pass over the training split; returns the mean loss, its mean terms and seconds.

    A NaN or inf loss raises FloatingPointError at that batch, before its backward pass and
    optimizer step, so the weights never take a NaN step. The check costs nothing on the CPU;
    on CUDA it is one host sync per batch (the loss's own batch checks already sync once).
    """
    start = time.perf_counter()
    net.train()
    torch.manual_seed(seed * 1_000_003 + epoch)  # dropout & co. draw the same numbers when the epoch is resumed
    batches = epoch_batches(train_labels, batch_size, seed=seed, epoch=epoch, m_per_class=m_per_class)
    total = torch.zeros((), device=device)
    terms: dict[str, float] = {}
    n = max(1, len(batches))
    for index, (batch, (inputs, _)) in enumerate(zip(batches, data.train_batches([train_ids[b] for b in batches], num_workers=num_workers))):
        inputs = inputs.to(device, non_blocking=True)
        labels = torch.as_tensor(train_labels[batch], device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            embeddings = net(inputs)
        value = loss_fn(embeddings.float(), labels)
        if not bool(torch.isfinite(value.detach())):
            raise FloatingPointError(
                f"the loss became {float(value.detach())} in batch {index + 1} of {n} of epoch {epoch} "
                "(training stopped there, before that batch's optimizer step)"
            )
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        total += value.detach()
        for name, term in loss_fn.terms.items():
            terms[name] = terms.get(name, 0.0) + term
    stats = {"loss": float(total) / n, **{f"loss_{k}": v / n for k, v in terms.items()}}
    stats["seconds"] = time.perf_counter() - start
    return stats
