"""Reading a run folder: :class:`Run`, :class:`Snapshot`, :func:`load_run`.

Works on a run that is still being written: call :meth:`Run.refresh` (or read ``epochs``
again) to see new epochs. A damaged snapshot file is skipped with a warning naming it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shlex
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import layout

logger = logging.getLogger(__name__)


class DamagedFileWarning(UserWarning):
    """A file of a run folder could not be read and was skipped."""


@dataclass
class Snapshot:
    """What was recorded at one epoch for the probe set of N samples.

    embeddings: float32 [N, D], L2-normalised; norms: float32 [N], their norms before that.
    labels, fine_labels (or None), ids (indices into the dataset): int64 [N].
    split: str [N], "train" or "test". thumbnails: uint8 [N, H, W(, 3)] or None.
    centers: float32 [C', K, D] unit vectors (C' = classes that have centers, may be 0; when
    C·K·D is large only the probe's classes are stored, in float16: ``centers_stored``);
    center_classes: int64 [C'], the class of each center row; centers_kind: "learned" or
    "class_means". assignments: int64 [N], index 0..K-1 of the sample's own-class center
    with the highest cosine, -1 if its class has none. effective_k: int64 [C'].
    """

    epoch: int
    embeddings: np.ndarray
    norms: np.ndarray
    labels: np.ndarray
    fine_labels: np.ndarray | None
    ids: np.ndarray
    split: np.ndarray
    thumbnails: np.ndarray | None
    class_names: list[str]
    fine_names: list[str] | None
    centers: np.ndarray
    center_classes: np.ndarray
    centers_kind: str
    assignments: np.ndarray
    effective_k: np.ndarray
    eps: float
    centers_stored: str = "all"

    def __len__(self) -> int:
        return len(self.labels)


_DIVERGED_TEXT = re.compile(r"NaN or inf|became -?(nan|inf)", re.IGNORECASE)


def failure_kind(info: dict[str, Any]) -> str | None:
    """"diverged" or "error" for a failed run's run.json (inferred from the message for runs older than "failure"), else None."""
    if info.get("status") != "failed":
        return None
    kind = info.get("failure")
    if kind in layout.FAILURES:
        return kind
    return "diverged" if _DIVERGED_TEXT.search(str(info.get("error") or "")) else "error"


def _parse_time(text: Any) -> _dt.datetime | None:
    """An ISO time from run.json as an aware datetime (UTC if it names no zone), or None."""
    if not isinstance(text, str):
        return None
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an .npz without pickle; raises on a damaged file."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


class Run:
    """A run folder on disk (see DESIGN.md): config, status, metrics and per-epoch snapshots."""

    def __init__(self, path: str | os.PathLike) -> None:
        """Open the run at ``path``; it must hold a run.json."""
        self.path = Path(path)
        if not (self.path / layout.RUN_JSON).is_file():
            raise FileNotFoundError(f"{self.path} is not a dmlviz run folder: it has no {layout.RUN_JSON}")
        self._info: dict[str, Any] = {}
        self._probe: dict[str, np.ndarray] | None = None
        self._checked: dict[str, tuple[float, int, bool]] = {}
        self.refresh()

    def refresh(self) -> "Run":
        """Read run.json again (status and config of a run that is being written)."""
        self._info = json.loads((self.path / layout.RUN_JSON).read_text())
        return self

    @property
    def name(self) -> str:
        """The run's name (its folder's name)."""
        return self.path.name

    @property
    def info(self) -> dict[str, Any]:
        """Everything in run.json."""
        return self._info

    @property
    def config(self) -> dict[str, Any]:
        """The full training configuration."""
        return self._info.get("config", {})

    #: A "running" run whose heartbeat is older than this many seconds reads as stopped.
    heartbeat_timeout: float = layout.HEARTBEAT_TIMEOUT_SECONDS

    @property
    def recorded_status(self) -> str:
        """The status run.json records: "running", "finished", "failed" or "stopped" (as of the last :meth:`refresh`)."""
        return self._info.get("status", "running")

    @property
    def status(self) -> str:
        """"running", "finished", "failed" or "stopped"; a recorded "running" whose heartbeat went silent reads "stopped".

        A run's writer refreshes its heartbeat every few seconds; a heartbeat older than
        :attr:`heartbeat_timeout` seconds means the process was killed (SIGKILL, power loss).
        Runs written before heartbeats existed keep their recorded status.
        """
        recorded = self.recorded_status
        if recorded == "running" and self._silent_since() is not None:
            return "stopped"
        return recorded

    @property
    def alive(self) -> bool:
        """Whether a process is still writing the run (status "running" with a recent heartbeat)."""
        return self.status == "running"

    @property
    def heartbeat(self) -> _dt.datetime | None:
        """When the writer last said it was alive (UTC), or None (older runs have none)."""
        return _parse_time(self._info.get("heartbeat"))

    def _silent_since(self) -> _dt.datetime | None:
        beat = self.heartbeat
        if beat is None:
            return None
        age = (_dt.datetime.now(_dt.timezone.utc) - beat).total_seconds()
        return beat if age > self.heartbeat_timeout else None

    @property
    def stopped_since(self) -> _dt.datetime | None:
        """When a stopped run stopped (UTC): the Ctrl-C time, or the last heartbeat of a killed run; else None."""
        recorded = self.recorded_status
        if recorded == "stopped":
            return _parse_time(self._info.get("stopped_at")) or self.heartbeat
        if recorded == "running":
            return self._silent_since()
        return None

    @property
    def stop_reason(self) -> str | None:
        """Why a stopped run stopped: the recorded reason (e.g. "interrupted (KeyboardInterrupt)"), "no heartbeat", or None."""
        if self.status != "stopped":
            return None
        return self._info.get("stop_reason") or "no heartbeat"

    @property
    def last_epoch(self) -> int | None:
        """The last complete epoch (its checkpoint written), or None before epoch 0 completed."""
        last = self._info.get("last_epoch")
        return None if last is None else int(last)

    @property
    def error(self) -> str | None:
        """Why a failed run failed."""
        return self._info.get("error")

    @property
    def failure(self) -> str | None:
        """For a failed run: "diverged" (NaN/inf) or "error" (another exception, see :attr:`error_type`); else None."""
        return failure_kind(self._info)

    @property
    def error_type(self) -> str | None:
        """The exception type of a failed run (e.g. "OutOfMemoryError", "TrainingDivergedError"), if recorded."""
        return self._info.get("error_type") if self.recorded_status == "failed" else None

    def resume_command(self) -> str | None:
        """A ``dmlviz train ... --resume`` command line that continues this run, or None if it used a custom dataset or model.

        The command repeats the run's settings (resume refuses other ones). From Python, call
        ``dmlviz.train`` with the same arguments and ``resume=True``.
        """
        cfg = self.config
        dataset, model, loss = cfg.get("dataset"), cfg.get("model"), cfg.get("loss")
        if not all(isinstance(x, str) and not x.startswith("custom:") for x in (dataset, model, loss)):
            return None
        args = ["dmlviz", "train", "--out", str(self.path), "--resume", "--dataset", dataset, "--model", model, "--loss", loss]
        options = [("epochs", "--epochs"), ("batch_size", "--batch-size"), ("lr", "--lr"), ("center_lr", "--center-lr"), ("backbone_lr", "--backbone-lr"),
                   ("embedding_dim", "--embedding-dim"), ("split", "--split"), ("test_fraction", "--test-fraction"),
                   ("m_per_class", "--m-per-class"), ("probe_size", "--probe-size"), ("eps", "--eps"), ("nmi", "--nmi"), ("nmi_every", "--nmi-every"), ("seed", "--seed")]
        for key, flag in options:
            if cfg.get(key) is not None:
                args += [flag, str(cfg[key])]
        if cfg.get("data_root") is not None:
            args += ["--data-root", str(cfg["data_root"])]
        for key, value in (cfg.get("data_params") or {}).items():
            if key in ("image_size", "resize"):
                args += [f"--{key.replace('_', '-')}", str(value)]
        for key, value in (cfg.get("model_params") or {}).items():
            args += ["--model-param", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
        for key, value in (cfg.get("loss_params") or {}).items():
            args += ["--param", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
        return " ".join(shlex.quote(a) for a in args)

    def describe_status(self) -> str:
        """One line saying what happened to the run: running, finished, stopped (when, at which epoch, how to resume) or failed (how)."""
        status = self.status
        total = self.config.get("epochs")
        last = self.last_epoch
        at = f"epoch {last if last is not None else '–'} of {total}"
        if status == "running":
            return f"running, at {at}"
        if status == "finished":
            return f"finished ({total} epochs)"
        resume = self.resume_command()
        how = f"resume with: {resume}" if resume else f"resume with dmlviz.train(<the same arguments>, out={str(self.path)!r}, resume=True)"
        if status == "stopped":
            since = self.stopped_since
            when = since.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if since else "an unknown time"
            if self.recorded_status == "running":
                return f"stopped since {when} (no heartbeat: its process is gone); stopped at {at}; {how}"
            return f"stopped at {at} ({self.stop_reason}, {when}); {how}"
        if status == "failed":
            if self.failure == "diverged":
                return (f"failed: diverged (NaN/inf) after {at}; resume with a lower lr or center_lr or changed loss "
                        f"parameters (allowed after a divergence): {self.error}")
            return f"failed with {self.error_type or 'an error'} after {at}: {self.error}; {how}"
        return status

    @property
    def epochs(self) -> list[int]:
        """Epochs whose snapshot is complete and readable, ascending (0 = before training)."""
        found = []
        for entry in os.scandir(self.path):
            epoch = layout.parse_epoch_file(entry.name)
            if epoch is not None and self._readable(Path(entry.path)):
                found.append(epoch)
        return sorted(found)

    def _readable(self, path: Path) -> bool:
        stat = path.stat()
        key = (stat.st_mtime, stat.st_size)
        cached = self._checked.get(path.name)
        if cached is not None and cached[:2] == key:
            return cached[2]
        try:
            with zipfile.ZipFile(path) as archive:
                ok = archive.testzip() is None
        except (zipfile.BadZipFile, OSError, EOFError):
            ok = False
        if not ok:
            warnings.warn(f"skipping damaged snapshot {path}: it is not a complete .npz file", DamagedFileWarning, stacklevel=3)
        self._checked[path.name] = (*key, ok)
        return ok

    @property
    def probe(self) -> dict[str, np.ndarray]:
        """The probe set: ids, labels, fine_labels (if known), split codes, thumbnails (if images)."""
        if self._probe is None:
            self._probe = _read_npz(self.path / layout.PROBE_NPZ)
        return self._probe

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per recorded epoch (epoch 0 = before training)."""
        path = self.path / layout.METRICS_CSV
        if not path.exists():
            return pd.DataFrame({"epoch": pd.Series([], dtype="int64")})
        return pd.read_csv(path)

    def chance_levels(self, metrics: pd.DataFrame | None = None) -> dict[str, float]:
        """What an embedding that knows nothing would score: {"recall@1": ..., "nmi": ...}, those that are known.

        Both as recorded on the whole test split (metrics.csv's ``recall@1_chance`` and ``nmi_chance``; the
        test labels do not change, so the last recorded value); for a run recorded without them, Recall@1's
        from the probe's test rows. ``metrics``: the run's table if already read.
        """
        table = self.metrics if metrics is None else metrics
        levels = {}
        for name, column in (("recall@1", "recall@1_chance"), ("nmi", "nmi_chance")):
            if column in table and table[column].notna().any():
                levels[name] = float(table[column].dropna().iloc[-1])
        if "recall@1" not in levels and (self.path / layout.PROBE_NPZ).exists():
            from dmlviz.eval import recall_at_1_chance

            chance = recall_at_1_chance(self.probe["labels"][self.probe["split"] == 1])
            if chance == chance:
                levels["recall@1"] = chance
        return levels

    def snapshot(self, epoch: int) -> Snapshot:
        """The snapshot of ``epoch``; raises KeyError naming the recorded epochs if it is missing."""
        path = self.path / layout.epoch_file(int(epoch))
        if not path.exists():
            raise KeyError(f"run {self.name!r} has no epoch {epoch}; recorded epochs: {self.epochs}")
        try:
            data = _read_npz(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            warnings.warn(f"skipping damaged snapshot {path}: {error}", DamagedFileWarning, stacklevel=2)
            raise KeyError(f"snapshot {path} is damaged; readable epochs: {self.epochs}") from None
        probe = self.probe
        fine = probe.get("fine_labels")
        thumbs = probe.get("thumbnails")
        return Snapshot(
            epoch=int(epoch),
            embeddings=data["embeddings"],
            norms=data["norms"],
            labels=probe["labels"],
            fine_labels=fine if fine is not None and fine.size else None,
            ids=probe["ids"],
            split=np.asarray(layout.SPLIT_NAMES)[probe["split"]],
            thumbnails=thumbs if thumbs is not None and thumbs.size else None,
            class_names=[str(c) for c in probe["class_names"]],
            fine_names=[str(c) for c in probe["fine_names"]] if "fine_names" in probe else None,
            centers=data["centers"].astype(np.float32, copy=False),  # float16 when stored compactly
            center_classes=data["center_classes"],
            centers_kind=str(data["centers_kind"]),
            assignments=data["assignments"],
            effective_k=data["effective_k"],
            eps=float(data["eps"]),
            centers_stored=str(data["centers_stored"]) if "centers_stored" in data else "all",
        )

    def array_names(self, epoch: int) -> list[str]:
        """The names of the arrays an epoch's snapshot holds."""
        with np.load(self.path / layout.epoch_file(int(epoch)), allow_pickle=False) as data:
            return list(data.files)

    def arrays(self, epoch: int, *keys: str) -> dict[str, np.ndarray]:
        """Only the named arrays of an epoch's snapshot (e.g. "centers", "effective_k"), read lazily."""
        path = self.path / layout.epoch_file(int(epoch))
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in keys}

    def checkpoint_path(self) -> Path:
        """Where the latest checkpoint is (load with ``torch.load(..., weights_only=True)``)."""
        return self.path / layout.CHECKPOINT

    def __repr__(self) -> str:
        epochs = self.epochs
        last = epochs[-1] if epochs else None
        return f"Run({str(self.path)!r}, status={self.status!r}, last epoch={last})"


def load_run(path: str | os.PathLike) -> Run:
    """Open the run folder at ``path``."""
    return Run(path)
