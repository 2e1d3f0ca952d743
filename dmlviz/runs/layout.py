"""Names of the files in a run folder, shared by the writer and the reader."""

from __future__ import annotations

SCHEMA = "dmlviz.run/1"
RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
PROBE_NPZ = "probe.npz"
CHECKPOINT = "checkpoint.pt"
PROJECTIONS = "projections"
SPLIT_NAMES = ("train", "test")
#: "stopped": interrupted (Ctrl-C) before its last epoch; resume=True continues it.
STATUSES = ("running", "finished", "failed", "stopped")
#: Why a failed run failed: "diverged" (NaN/inf; resume may change lr, center_lr, loss parameters)
#: or "error" (any other exception, its type in run.json "error_type").
FAILURES = ("diverged", "error")
#: A running writer refreshes run.json "heartbeat" this often (seconds) ...
HEARTBEAT_SECONDS = 5.0
#: ... and a "running" run whose heartbeat is older than this reads as stopped (its process is gone).
HEARTBEAT_TIMEOUT_SECONDS = 30.0


def epoch_file(epoch: int) -> str:
    """File name of the snapshot of ``epoch``: epoch_0007.npz."""
    return f"epoch_{epoch:04d}.npz"


def parse_epoch_file(name: str) -> int | None:
    """The epoch number of a snapshot file name, or None if the name is not one."""
    if name.startswith("epoch_") and name.endswith(".npz"):
        digits = name[len("epoch_") : -len(".npz")]
        if digits.isdigit():
            return int(digits)
    return None
