"""Writing a run folder: run.json, metrics.csv, probe.npz, epoch snapshots, the checkpoint."""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from . import layout
from .files import TEMP_PREFIX, write_bytes, write_json, write_npz
from .run import failure_kind

logger = logging.getLogger(__name__)


def _now(timespec: str = "seconds") -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec=timespec)


def _beat_time() -> str:
    return _now("milliseconds")



class RunExistsError(FileExistsError):
    """The output folder already holds a run (or other files) and neither resume nor overwrite was asked."""


class RunWriter:
    """Writes one run folder; every file goes to a temporary name first and is renamed into place."""

    #: Settings that may differ on resume: the length of the run, where and on how many processes it runs
    #: (the global batch is the same) and how NMI is computed (no effect on training).
    RESUMABLE_ANYWAY = frozenset({"epochs", "device", "amp", "nmi", "nmi_every", "world_size"})
    #: Settings that may also change when resuming a run that diverged (to get past a NaN).
    CHANGEABLE_AFTER_DIVERGENCE = frozenset({"lr", "center_lr", "backbone_lr", "loss_params"})
    CHANGEABLE_AFTER_FAILURE = CHANGEABLE_AFTER_DIVERGENCE  # the former name

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.info: dict[str, Any] = {}
        self._lock = threading.RLock()  # run.json is written by the training thread and the heartbeat thread
        self._heartbeat: tuple[threading.Thread, threading.Event] | None = None

    # -- opening ---------------------------------------------------------------------------
    def start(
        self,
        config: dict[str, Any],
        versions: dict[str, str],
        *,
        resume: bool,
        overwrite: bool,
        restore: Callable[[dict[str, Any]], None] | None = None,
    ) -> int:
        """Create the run, or reopen it for ``resume``; return the last complete epoch (-1 if none).

        On resume, ``restore`` is called with the checkpoint before anything is written, so a
        checkpoint that does not fit the new model or loss leaves the folder as it was.
        ``overwrite`` replaces a dmlviz run (its own files only); a folder that holds other
        things and no dmlviz run is never written into.
        """
        existing = self._existing_run()
        if resume:
            if existing is None:
                raise FileNotFoundError(
                    f"resume=True needs out= pointing at an existing run; {str(self.path)!r} has no dmlviz "
                    f"{layout.RUN_JSON} (schema {layout.SCHEMA!r})"
                )
            return self._reopen(existing, config, restore)
        if existing is not None:
            if not overwrite:
                raise RunExistsError(
                    f"out={str(self.path)!r} already holds a run (status {existing.get('status')!r}, loss "
                    f"{existing.get('config', {}).get('loss')!r}); pass resume=True to continue it, "
                    "overwrite=True to replace it, or choose another out folder"
                )
            self._clear()
        elif self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise RunExistsError(
                f"out={str(self.path)!r} is not empty and is not a dmlviz run (it has no {layout.RUN_JSON} of schema "
                f"{layout.SCHEMA!r}), so dmlviz neither writes into it nor clears it, even with overwrite=True; "
                "choose a new or empty folder"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        now = _now()
        self.info = {
            "schema": layout.SCHEMA,
            "name": self.path.name,
            "status": "running",
            "error": None,
            "created": now,
            "updated": now,
            "heartbeat": _beat_time(),
            "last_epoch": None,
            "config": config,
            "versions": versions,
        }
        write_json(self.path / layout.RUN_JSON, self.info)
        return -1

    def _existing_run(self) -> dict[str, Any] | None:
        """The run.json of a dmlviz run in the folder, or None (no run.json, or not one of ours)."""
        try:
            info = json.loads((self.path / layout.RUN_JSON).read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) and info.get("schema") == layout.SCHEMA else None

    def _reopen(self, existing: dict[str, Any], config: dict[str, Any], restore: Callable[[dict[str, Any]], None] | None) -> int:
        changes = self._check_same(existing, config)
        state = self._read_checkpoint()
        if state is not None and restore is not None:
            restore(state)
        last = -1 if state is None else int(state["epoch"])
        self.info = existing
        self._discard_after(last)
        for key in (*sorted(self.RESUMABLE_ANYWAY), *changes):
            if key in config:
                self.info["config"][key] = config[key]
        if changes:
            self.info.setdefault("resumed_with", []).append(
                {"epoch": last + 1, "changes": {k: {"from": old, "to": new} for k, (old, new) in changes.items()}}
            )
        for key in ("failure", "error_type", "stopped_at", "stop_reason"):
            self.info.pop(key, None)
        now = _now()
        self.info.update(status="running", error=None, last_epoch=last if last >= 0 else None, updated=now, heartbeat=_beat_time())
        write_json(self.path / layout.RUN_JSON, self.info)
        return last

    def _check_same(self, existing: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Raise unless ``new`` may resume the run; return the allowed changes {key: (old, new)}."""
        old = existing.get("config", {})
        diverged = failure_kind(existing) == "diverged"
        differing = sorted(k for k in set(old) | set(new) if k not in self.RESUMABLE_ANYWAY and old.get(k) != new.get(k))
        refused = [k for k in differing if not (diverged and k in self.CHANGEABLE_AFTER_DIVERGENCE)]
        if refused:
            detail = "; ".join(f"{k}: run has {old.get(k)!r}, asked {new.get(k)!r}" for k in refused)
            status = existing.get("status")
            if status == "failed":
                what = f"failed with {existing.get('error_type') or 'an error'}, not a divergence"
            else:
                what = f"is {status!r}, not a run that diverged"
            changeable = [k for k in refused if k in self.CHANGEABLE_AFTER_DIVERGENCE]
            why = (
                f"; this run {what}, so it resumes only with the settings it was made with"
                if changeable and not diverged else ""
            )
            raise ValueError(
                f"cannot resume: the run was made with different settings ({detail}); a resumed run may change "
                "epochs and device, and after a run that diverged (NaN/inf) also lr, center_lr and the loss "
                f"parameters{why}. Pass the run's own values (run.json \"config\"), or train a new run with "
                "overwrite=True or another out folder"
            )
        return {k: (old.get(k), new.get(k)) for k in differing}

    def _read_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint (written last in each epoch, so it names the last complete one), or None."""
        ckpt = self.path / layout.CHECKPOINT
        if not ckpt.exists():
            return None
        return torch.load(ckpt, map_location="cpu", weights_only=True)

    def _discard_after(self, last: int) -> None:
        """Remove snapshots and metric rows of epochs after ``last`` (an epoch cut short)."""
        for entry in os.scandir(self.path):
            epoch = layout.parse_epoch_file(entry.name)
            if (epoch is not None and epoch > last) or entry.name.startswith(TEMP_PREFIX):
                logger.info("resume: removing %s (after the last complete epoch %d)", entry.name, last)
                os.unlink(entry.path)
        self._drop_layouts(last + 1)
        metrics = self.path / layout.METRICS_CSV
        if metrics.exists():
            table = pd.read_csv(metrics)
            self._write_metrics(table[table["epoch"] <= last])
        if last < 0:
            (self.path / layout.PROBE_NPZ).unlink(missing_ok=True)

    def _drop_layouts(self, first: int) -> None:
        """Delete cached 2-D layouts (projections/*/epoch_NNNN.npz) of epochs >= ``first``: they show old snapshots.

        Layouts chain from earlier epochs, so every later one goes too; readers recompute them.
        """
        root = self.path / layout.PROJECTIONS
        try:
            folders = [e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return
        for folder in folders:
            try:
                entries = list(os.scandir(folder.path))
            except FileNotFoundError:
                continue
            for entry in entries:
                epoch = layout.parse_epoch_file(entry.name)
                if epoch is not None and epoch >= first:
                    logger.info("removing the cached layout %s/%s (epoch %d is re-recorded)", folder.name, entry.name, epoch)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    def _clear(self) -> None:
        """Delete the run's own files but run.json (which start() replaces next); keep anything else."""
        logger.warning("overwrite: deleting the run in %s", self.path)
        for entry in os.scandir(self.path):
            ours = entry.name in (layout.METRICS_CSV, layout.PROBE_NPZ, layout.CHECKPOINT)
            ours = ours or layout.parse_epoch_file(entry.name) is not None or entry.name.startswith(TEMP_PREFIX)
            if entry.name == layout.PROJECTIONS and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            elif ours and not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)

    # -- writing ---------------------------------------------------------------------------
    def write_probe(self, arrays: dict[str, np.ndarray]) -> None:
        """Write probe.npz (ids, labels, fine labels, split codes, class names, thumbnails)."""
        write_npz(self.path / layout.PROBE_NPZ, arrays, compress=True)

    def has_probe(self) -> bool:
        """Whether probe.npz exists (a resumed run keeps its probe set)."""
        return (self.path / layout.PROBE_NPZ).exists()

    def write_epoch(self, epoch: int, arrays: dict[str, np.ndarray]) -> None:
        """Write epoch_NNNN.npz, first deleting cached layouts of this epoch and later ones (they show an older snapshot)."""
        self._drop_layouts(epoch)
        write_npz(self.path / layout.epoch_file(epoch), arrays)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Add (or replace) the row of ``row['epoch']`` in metrics.csv."""
        path = self.path / layout.METRICS_CSV
        table = pd.read_csv(path) if path.exists() else pd.DataFrame()
        if len(table):
            table = table[table["epoch"] != row["epoch"]]
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True).sort_values("epoch")
        self._write_metrics(table)

    def _write_metrics(self, table: pd.DataFrame) -> None:
        buffer = io.StringIO()
        table.to_csv(buffer, index=False)
        write_bytes(self.path / layout.METRICS_CSV, buffer.getvalue().encode())

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        """Write checkpoint.pt (tensors and plain containers only, loadable with weights_only=True)."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_bytes(self.path / layout.CHECKPOINT, buffer.getvalue())

    def update(self, **fields: Any) -> None:
        """Update fields of run.json (status, last_epoch, error, ...); a status other than "running" ends the heartbeat."""
        if "status" in fields and fields["status"] not in layout.STATUSES:
            raise ValueError(f"status must be one of {layout.STATUSES}, got {fields['status']!r}")
        if fields.get("status", "running") != "running":
            self.stop_heartbeat()
        with self._lock:
            now = _now()
            self.info.update(fields, updated=now)
            if self.info.get("status") == "running":
                self.info["heartbeat"] = _beat_time()
            write_json(self.path / layout.RUN_JSON, self.info)

    def mark_stopped(self, reason: str) -> None:
        """Record that the run was stopped early (e.g. Ctrl-C): status "stopped", when and why; resume=True continues it."""
        self.update(status="stopped", stopped_at=_now(), stop_reason=reason, error=None)

    def mark_failed(self, error: BaseException, *, diverged: bool) -> None:
        """Record a failure: "failure" is "diverged" (NaN/inf) or "error" (with the exception's type in "error_type")."""
        self.update(
            status="failed",
            failure="diverged" if diverged else "error",
            error_type=type(error).__name__,
            error=str(error) or type(error).__name__,
        )

    # -- heartbeat -------------------------------------------------------------------------
    def start_heartbeat(self, every: float | None = None) -> None:
        """Refresh run.json "heartbeat" every ``every`` seconds (default ``layout.HEARTBEAT_SECONDS``) from a daemon thread, until the run ends.

        Readers take a "running" run whose heartbeat is older than
        ``layout.HEARTBEAT_TIMEOUT_SECONDS`` for stopped (its process was killed).
        """
        if self._heartbeat is not None:
            return
        every = layout.HEARTBEAT_SECONDS if every is None else float(every)
        if not every > 0:
            raise ValueError(f"every must be a number of seconds > 0, got {every!r}")
        stop = threading.Event()
        thread = threading.Thread(target=self._beat, args=(stop, every), daemon=True, name="dmlviz-heartbeat")
        self._heartbeat = (thread, stop)
        thread.start()

    def stop_heartbeat(self) -> None:
        """Stop the heartbeat thread (if any) and wait for it; no heartbeat is written after this returns."""
        beating, self._heartbeat = self._heartbeat, None
        if beating is not None:
            thread, stop = beating
            stop.set()
            if thread is not threading.current_thread():
                thread.join()

    def _beat(self, stop: threading.Event, every: float) -> None:
        warned = False
        while not stop.wait(every):
            with self._lock:
                if stop.is_set() or self.info.get("status") != "running":
                    return
                self.info["heartbeat"] = _beat_time()
                try:
                    write_json(self.path / layout.RUN_JSON, self.info)
                    warned = False
                except OSError as error:  # e.g. the folder was removed or the disk is full; try again next beat
                    if not warned:
                        logger.warning("cannot write the heartbeat of %s: %s", self.path, error)
                    warned = True
