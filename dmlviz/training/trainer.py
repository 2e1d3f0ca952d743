"""Training: the loop that trains an embedding model with a loss and records every epoch (options in TrainConfig)."""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..losses import DMLLoss
from ..runs import Run, RunWriter, load_run
from .batches import Batches, decide_resident, upload
from .builder import Setup, build_setup, resolve_device, versions
from .config import TrainConfig
from .distributed import GlobalBatchLoss, Processes, check_shardable, from_environment, shard, shutdown
from .recorder import Recorder
from .sampler import epoch_batches, samples_per_class

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainingDivergedError", "TrainingInterrupted", "resolve_device", "train"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the run is marked failed ("diverged") and its last good epoch kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); the run is marked "stopped" at its last complete epoch, and resume=True continues it."""

    def __init__(self, message: str, path: Path, last_epoch: int | None, resume_command: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.last_epoch = last_epoch
        self.resume_command = resume_command


def train(dataset: Any = "mnist5k-pairs", model: Any = "linear", loss: Any = "softtriple", **options: Any) -> Run:
    """Train ``model`` with ``loss`` on ``dataset``, record every epoch in ``out``, return the Run.

    ``options`` are :class:`TrainConfig` fields (``epochs``, ``batch_size``, ``lr``,
    ``center_lr``, ``embedding_dim``, ``split``, ``probe_size``, ``out``, ``device``,
    ``resume``, ``data_root``, ``model_params``, ``nmi``, ...; see its docstring); any other
    keyword is a loss parameter (e.g. ``centers_per_class=10, la=20, gamma=0.1, tau=0.2,
    margin=0.01`` for SoftTriple). ``dataset`` may also be a whole TrainConfig (``options``
    then change some of its fields).

    ``resume=True`` continues the run in ``out`` from its last complete epoch, exactly as if it
    had not stopped; ``epochs``, ``device`` and the number of processes may differ, and after a
    run that diverged (NaN) also ``lr``, ``center_lr`` and the loss parameters (run.json lists
    them under "resumed_with"). ``overwrite=True`` replaces a dmlviz run there (only its own
    files). Arguments are checked, the model run once on 2 samples, before anything is written.
    A NaN or inf loss never reaches the weights: on the CPU the run stops at that batch, before
    its optimizer step; on CUDA (no host sync per batch) fused Adam skips that batch's step on
    the device and the run stops at the end of the epoch. Either way
    :class:`TrainingDivergedError` is raised and the run reads "failed" with run.json
    "failure": "diverged", keeping its last good epoch. Any other exception (e.g. out of memory)
    marks it "failed" with "failure": "error" and "error_type". Ctrl-C marks it "stopped" and
    raises :class:`TrainingInterrupted`. While training, run.json "heartbeat" is refreshed every
    few seconds, so readers tell a killed run from a live one.

    Launched by ``torchrun --nproc-per-node N -m dmlviz train ...`` (or any script that calls
    ``train`` under torchrun), each process trains on its shard of every global batch of
    ``batch_size`` and only rank 0 records and writes the run (see ``dmlviz.training.distributed``).
    """
    if isinstance(dataset, TrainConfig):
        config = dataset.replace(**options) if options else dataset
    else:
        config = TrainConfig.from_options(dataset=dataset, model=model, loss=loss, **options)
    processes, device = from_environment(config.device)
    if device != config.device:
        config = config.replace(device=device)
    try:
        return Trainer(config, processes).run()
    finally:
        shutdown(processes)


class Trainer:
    """One training run: builds it from a TrainConfig, trains epoch by epoch, records and checkpoints each epoch."""

    def __init__(self, config: TrainConfig, processes: Processes | None = None) -> None:
        self.config = config
        self.processes = processes or Processes()
        self.setup = build_setup(config, world_size=self.processes.world_size)
        s = self.setup
        resident = decide_resident(s.data, s.device, config.resident)
        self.source = Batches(s.data, s.device, resident=resident, num_workers=config.num_workers)
        self.record_async = s.device.type == "cuda" if config.record_async == "auto" else bool(config.record_async)
        self.step_module: torch.nn.Module = GlobalBatchLoss(s.net, s.loss_fn, self.processes)
        if self.processes.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [s.device.index] if s.device.type == "cuda" else None
            self.step_module = DistributedDataParallel(self.step_module, device_ids=ids)
        self.train_labels = torch.as_tensor(s.train_labels, device=s.device)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> Run:
        """Train every epoch that is left; return the finished Run (rank 0; other ranks return it too once written)."""
        s, cfg, procs = self.setup, self.config, self.processes
        writer = RunWriter(s.out)
        if procs.is_main:
            last = writer.start(s.run_config, versions(), resume=cfg.resume, overwrite=cfg.overwrite, restore=self._restore)
            writer.start_heartbeat()
        last = procs.broadcast(last if procs.is_main else None)
        if not procs.is_main and last >= 0:
            self._restore(torch.load(s.out / "checkpoint.pt", map_location="cpu", weights_only=True))
        epoch = max(last + 1, 0)  # the epoch in progress, for messages
        recording: _Recording | None = None
        try:
            if last >= 0:
                logger.info("resuming %s after epoch %d", writer.path, last)
            if procs.is_main:
                recorder = Recorder(
                    s.data, s.parts, writer, probe_size=cfg.probe_size, eps=cfg.eps, seed=cfg.seed, device=s.device,
                    num_workers=cfg.num_workers, nmi_method=s.nmi, nmi_every=cfg.nmi_every, source=self.source,
                )
                recording = _Recording(recorder, writer, s, asynchronous=self.record_async)
                if last < 0:
                    recording.submit(0, {"loss": float("nan"), "seconds": 0.0})
                    recording.wait()
            last = max(last, 0)
            procs.barrier()
            bar = tqdm(range(last + 1, cfg.epochs + 1), desc=f"{s.run_config['loss']} on {s.run_config['dataset']}", unit="epoch",
                       disable=not cfg.progress or not procs.is_main)
            for epoch in bar:
                try:
                    stats = _train_epoch(self, epoch)
                    if not math.isfinite(stats["loss"]):  # _train_epoch stops at the batch; this is a second guard
                        raise FloatingPointError(f"the loss became {stats['loss']} during epoch {epoch}")
                    row = recording.submit(epoch, stats) if recording is not None else None
                except FloatingPointError as error:
                    raise TrainingDivergedError(
                        f"{error}; the run stopped and keeps epoch {epoch - 1} as its last good snapshot. Hint: {s.loss_fn.nan_hint}. "
                        f"It can go on from epoch {epoch - 1}: train again with resume=True and a lower lr or center_lr, "
                        "or changed loss parameters (a run that diverged accepts these changes)"
                    ) from error
                procs.barrier()
                if row:
                    bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("loss", "recall@1", "submode_score", "effective_k")})
                    logger.info("epoch %d: %s", row["epoch"], {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            if recording is not None:
                recording.wait()
        except (KeyboardInterrupt, SystemExit) as error:
            if not procs.is_main:
                raise
            _settle(recording)
            self._interrupted(writer, error, epoch)
        except FloatingPointError as error:  # NaN found by a recording in the background
            if not procs.is_main:
                raise
            _settle(recording)
            diverged = TrainingDivergedError(f"{error}; the run stopped and keeps its last good snapshot. Hint: {s.loss_fn.nan_hint}")
            writer.mark_failed(diverged, diverged=True)
            raise diverged from error
        except TrainingDivergedError as error:
            if procs.is_main:
                _settle(recording)
                writer.mark_failed(error, diverged=True)
            raise
        except BaseException as error:
            if procs.is_main:
                _settle(recording)
                writer.mark_failed(error, diverged=False)
            raise
        finally:
            if recording is not None:
                recording.close()
            if procs.is_main:
                writer.stop_heartbeat()
        if procs.is_main:
            writer.update(status="finished")
        procs.barrier()
        return load_run(writer.path)

    def _restore(self, state: dict[str, Any]) -> None:
        """Load the checkpoint (before the writer changes anything); the asked learning rates win."""
        s = self.setup
        try:
            s.net.load_state_dict(state["model"])
            s.loss_fn.load_state_dict(state["loss"])
            s.optimizer.load_state_dict(_keep_implementation(state["optimizer"], s.optimizer))
        except (RuntimeError, ValueError, KeyError) as error:
            raise ValueError(f"cannot resume: the checkpoint in {str(s.out)!r} does not fit this model and loss ({error})") from error
        rates = s.learning_rates()
        for group in s.optimizer.param_groups:
            group["lr"] = rates.get(group["name"], self.config.lr)

    def _interrupted(self, writer: RunWriter, error: BaseException, epoch: int) -> None:
        writer.mark_stopped(f"interrupted ({type(error).__name__})")
        done, command = writer.info.get("last_epoch"), None
        try:
            command = load_run(writer.path).resume_command()
        except Exception:  # the message matters more than the command line
            logger.debug("no resume command for %s", writer.path, exc_info=True)
        message = (
            f"training was interrupted ({type(error).__name__}) during epoch {epoch}; the run in {str(writer.path)!r} "
            f"reads 'stopped' and keeps epoch {done} of {self.config.epochs} as its last complete one. Continue it with "
            f"dmlviz.train(<the same arguments>, out={str(writer.path)!r}, resume=True)"
            + (f" or: {command}" if command else "")
        )
        logger.warning(message)
        if isinstance(error, KeyboardInterrupt):
            raise TrainingInterrupted(message, writer.path, done, command) from error
        raise error


#: optimizer options that say how it steps, not what it learned: this device's, not the checkpoint's
IMPLEMENTATION_OPTIONS = ("fused", "foreach", "capturable", "differentiable")


def _keep_implementation(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state dict ``saved`` with the current optimizer's implementation options in its param groups.

    A run resumed on another device (a CPU checkpoint on CUDA, say) would otherwise take the saved groups'
    ``fused=None`` and step with foreach Adam, which refuses the ``found_inf`` guard the loop sets for fused Adam.
    """
    if len(saved.get("param_groups", [])) != len(optimizer.param_groups):
        return saved  # load_state_dict says what does not fit
    groups = [{**group, **{k: current[k] for k in IMPLEMENTATION_OPTIONS if k in current}}
              for group, current in zip(saved["param_groups"], optimizer.param_groups)]
    return {**saved, "param_groups": groups}


def _host_copy(value: Any, copy: bool = True) -> Any:
    """A state dict with its tensors on the host: cloned (``copy``, so training may go on changing the original), or
    moved only where they are elsewhere (a checkpoint then loads with a plain ``torch.load`` on a machine without CUDA)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=copy)
    if isinstance(value, dict):
        return {k: _host_copy(v, copy) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_host_copy(v, copy) for v in value)
    return value


class _Recording:
    """Records epochs: the capture (embedding on the device) in the loop, metrics and files inline or in one background thread.

    Background: at most one epoch is in flight; the next submit (or wait) waits for it and
    re-raises its error. Its checkpoint is a host copy taken with the capture and written after
    the snapshot, so the checkpoint still marks a complete epoch.
    """

    def __init__(self, recorder: Recorder, writer: RunWriter, setup: Setup, *, asynchronous: bool) -> None:
        self.recorder, self.writer, self.setup = recorder, writer, setup
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="dmlviz-record") if asynchronous else None
        self._pending: Future | None = None

    def submit(self, epoch: int, stats: dict[str, float]) -> dict[str, Any] | None:
        """Record ``epoch``; return its metrics row, or (in the background) the previous epoch's."""
        previous = self.wait()
        s = self.setup
        capture = self.recorder.capture(epoch, s.net, s.loss_fn)
        state = {"epoch": epoch, "model": s.net.state_dict(), "loss": s.loss_fn.state_dict(), "optimizer": s.optimizer.state_dict()}
        if self._pool is None:
            return self._finish(capture, stats, _host_copy(state, copy=False))
        self._pending = self._pool.submit(self._finish, capture, stats, _host_copy(state))
        return previous

    def _finish(self, capture: Any, stats: dict[str, float], state: dict[str, Any]) -> dict[str, Any]:
        row = self.recorder.finish(capture, stats)
        _save(self.writer, state)
        return row

    def wait(self) -> dict[str, Any] | None:
        """Wait for the epoch in flight, if any; its row (its error is raised here)."""
        pending, self._pending = self._pending, None
        return None if pending is None else pending.result()

    def close(self) -> None:
        """Stop the background thread (after the epoch in flight)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _settle(recording: _Recording | None) -> None:
    """Let the epoch in flight finish writing before the run is marked; its own error is only logged."""
    if recording is None:
        return
    try:
        recording.wait()
    except BaseException:  # noqa: BLE001 - the error that stopped the run is the one reported
        logger.warning("the epoch being recorded when training stopped was not written", exc_info=True)


def _save(writer: RunWriter, state: dict[str, Any]) -> None:
    """The checkpoint is written last in an epoch: it marks the epoch complete."""
    writer.write_checkpoint(state)
    writer.update(last_epoch=int(state["epoch"]))


def _train_epoch(trainer: Trainer, epoch: int) -> dict[str, float]:
    """One pass over the training split; returns the mean loss, its mean terms and seconds.

    No host sync per batch on CUDA: batch indices go to the device once per epoch, the loss and
    its terms are summed on the device and read once at the end. A NaN or inf loss never takes
    an optimizer step: on the CPU (where checking costs nothing) it raises FloatingPointError at
    that batch, before its backward pass; on CUDA fused Adam skips the step on the device
    (``found_inf``) and the error is raised at the end of the epoch, naming the first such batch.
    """
    s, procs = trainer.setup, trainer.processes
    start = time.perf_counter()
    s.loss_fn.start_epoch(epoch, s.config.epochs, s.net)  # e.g. LSD's teacher: the model as the last epoch left it
    if s.loss_fn.wants_training_embeddings(epoch, s.config.epochs):  # e.g. IAA's class statistics, on its schedule
        s.loss_fn.set_training_embeddings(trainer.source.embed(s.net, s.parts.train, on_device=True), trainer.train_labels)
    s.net.train()
    torch.manual_seed(s.config.seed * 1_000_003 + epoch)  # dropout & co. draw the same numbers when the epoch is resumed
    batches = epoch_batches(s.train_labels, s.config.batch_size, seed=s.config.seed, epoch=epoch, m_per_class=s.m_per_class)
    unit = samples_per_class(len(s.parts.train_classes), s.config.batch_size, s.m_per_class)
    check_shardable(batches, procs, unit)
    mine = [shard(b, procs, unit) for b in batches]
    n = max(1, len(mine))
    device = s.device
    positions = upload(np.concatenate(mine), device) if mine else torch.zeros(0, dtype=torch.int64, device=device)
    labels_all = trainer.train_labels[positions]
    guard_on_device = bool(s.optimizer.defaults.get("fused"))  # see builder.fused_adam
    bad_batch = torch.full((), -1, dtype=torch.int64, device=device)
    total = torch.zeros((), device=device)
    terms: dict[str, torch.Tensor] = {}
    offset = 0
    train_ids = s.parts.train
    for index, inputs in enumerate(trainer.source.train([train_ids[b] for b in mine])):
        labels = labels_all[offset : offset + len(inputs)]
        offset += len(inputs)
        value, _ = trainer.step_module(inputs, labels)
        bad = procs.any((~torch.isfinite(value.detach())).float())
        if guard_on_device:
            s.optimizer.found_inf = bad  # fused Adam: no step (and no step count) where the loss was not finite
            bad_batch = torch.where((bad_batch < 0) & (bad > 0), torch.full_like(bad_batch, index), bad_batch)
        elif bool(bad):
            raise FloatingPointError(
                f"the loss became {float(value.detach())} in batch {index + 1} of {n} of epoch {epoch} "
                "(training stopped there, before that batch's optimizer step)"
            )
        s.optimizer.zero_grad(set_to_none=True)
        value.backward()
        s.optimizer.step()
        total += torch.nan_to_num(value.detach(), nan=0.0, posinf=0.0, neginf=0.0) if guard_on_device else value.detach()
        for name, term in s.loss_fn.term_tensors.items():
            terms[name] = terms.get(name, 0.0) + term
    if guard_on_device:
        s.optimizer.found_inf = None
    names = list(terms)
    values = torch.stack([total, bad_batch.to(total.dtype), *[terms[k].to(total.dtype) for k in names]]).tolist()  # the one sync
    if values[1] >= 0:
        raise FloatingPointError(
            f"the loss became NaN or inf in batch {int(values[1]) + 1} of {n} of epoch {epoch} (that batch's optimizer step was "
            "skipped on the GPU; training stopped at the end of the epoch)"
        )
    stats = {"loss": values[0] / n, **{f"loss_{k}": v / n for k, v in zip(names, values[2:])}}
    stats["seconds"] = time.perf_counter() - start
    return stats
