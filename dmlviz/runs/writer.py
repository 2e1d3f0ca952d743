"""Writing a run folder: run.json, metrics.csv, probe.npz, epoch snapshots, the checkpoint."""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import layout
from .files import TEMP_PREFIX, write_bytes, write_json, write_npz

logger = logging.getLogger(__name__)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RunExistsError(FileExistsError):
    """The output folder already holds a run (or other files) and neither resume nor overwrite was asked."""


class RunWriter:
    """Writes one run folder; every file goes to a temporary name first and is renamed into place."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.info: dict[str, Any] = {}

    # -- opening ---------------------------------------------------------------------------
    def start(self, config: dict[str, Any], versions: dict[str, str], *, resume: bool, overwrite: bool) -> int:
        """Create the run, or reopen it for ``resume``; return the last complete epoch (-1 if none)."""
        run_json = self.path / layout.RUN_JSON
        if run_json.exists():
            existing = json.loads(run_json.read_text())
            if resume:
                self._check_same(existing.get("config", {}), config)
                self.info = existing
                last = self._last_complete_epoch()
                self._discard_after(last)
                self.info.update(status="running", error=None, updated=_now())
                self.info["config"]["epochs"] = config["epochs"]
                write_json(run_json, self.info)
                return last
            if not overwrite:
                raise RunExistsError(
                    f"out={str(self.path)!r} already holds a run (status {existing.get('status')!r}, loss "
                    f"{existing.get('config', {}).get('loss')!r}); pass resume=True to continue it, "
                    "overwrite=True to replace it, or choose another out folder"
                )
            self._clear()
        elif self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise RunExistsError(
                    f"out={str(self.path)!r} is not empty and is not a dmlviz run; choose a new or empty folder "
                    "(or overwrite=True to clear it)"
                )
            self._clear()
        self.path.mkdir(parents=True, exist_ok=True)
        self.info = {
            "schema": layout.SCHEMA,
            "name": self.path.name,
            "status": "running",
            "error": None,
            "created": _now(),
            "updated": _now(),
            "last_epoch": None,
            "config": config,
            "versions": versions,
        }
        write_json(run_json, self.info)
        return -1

    @staticmethod
    def _check_same(old: dict[str, Any], new: dict[str, Any]) -> None:
        ignore = {"epochs", "device", "resume", "overwrite", "progress", "num_workers"}
        differing = sorted(k for k in set(old) | set(new) if k not in ignore and old.get(k) != new.get(k))
        if differing:
            detail = "; ".join(f"{k}: run has {old.get(k)!r}, asked {new.get(k)!r}" for k in differing)
            raise ValueError(f"cannot resume: the run was made with different settings ({detail})")

    def _last_complete_epoch(self) -> int:
        """The epoch of the checkpoint (written last in each epoch), or -1 when there is none."""
        ckpt = self.path / layout.CHECKPOINT
        if not ckpt.exists():
            return -1
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        return int(state["epoch"])

    def _discard_after(self, last: int) -> None:
        """Remove snapshots and metric rows of epochs after ``last`` (an epoch cut short)."""
        for entry in os.scandir(self.path):
            epoch = layout.parse_epoch_file(entry.name)
            if (epoch is not None and epoch > last) or entry.name.startswith(TEMP_PREFIX):
                logger.info("resume: removing %s (after the last complete epoch %d)", entry.name, last)
                os.unlink(entry.path)
        metrics = self.path / layout.METRICS_CSV
        if metrics.exists():
            table = pd.read_csv(metrics)
            self._write_metrics(table[table["epoch"] <= last])
        if last < 0:
            (self.path / layout.PROBE_NPZ).unlink(missing_ok=True)

    def _clear(self) -> None:
        logger.warning("overwrite: clearing %s", self.path)
        shutil.rmtree(self.path)

    # -- writing ---------------------------------------------------------------------------
    def write_probe(self, arrays: dict[str, np.ndarray]) -> None:
        """Write probe.npz (ids, labels, fine labels, split codes, class names, thumbnails)."""
        write_npz(self.path / layout.PROBE_NPZ, arrays, compress=True)

    def has_probe(self) -> bool:
        """Whether probe.npz exists (a resumed run keeps its probe set)."""
        return (self.path / layout.PROBE_NPZ).exists()

    def write_epoch(self, epoch: int, arrays: dict[str, np.ndarray]) -> None:
        """Write epoch_NNNN.npz."""
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
        """Update fields of run.json (status, last_epoch, error, ...)."""
        if "status" in fields and fields["status"] not in layout.STATUSES:
            raise ValueError(f"status must be one of {layout.STATUSES}, got {fields['status']!r}")
        self.info.update(fields, updated=_now())
        write_json(self.path / layout.RUN_JSON, self.info)
