"""The run folder format: writing (atomic) and reading (Run, Snapshot)."""

from .run import DamagedFileWarning, Run, Snapshot, load_run
from .writer import RunExistsError, RunWriter

__all__ = ["DamagedFileWarning", "Run", "RunExistsError", "RunWriter", "Snapshot", "load_run"]
