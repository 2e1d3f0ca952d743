"""The run folder format: writing (atomic) and reading (Run, Snapshot).

Reading needs only numpy and pandas; the writer (which saves torch checkpoints) is imported
on first use so that dashboards that only read runs do not pay for importing torch.
"""

from typing import Any

from .run import DamagedFileWarning, Run, Snapshot, load_run

__all__ = ["DamagedFileWarning", "Run", "RunExistsError", "RunWriter", "Snapshot", "load_run"]


def __getattr__(name: str) -> Any:
    if name in ("RunWriter", "RunExistsError"):
        from . import writer

        return getattr(writer, name)
    raise AttributeError(f"module 'dmlviz.runs' has no attribute {name!r}")
