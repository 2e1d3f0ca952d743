"""`dmlviz serve` for the browser benchmarks: a free loopback port, waited for until it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(runs_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `dmlviz serve RUNS_DIR ARGS` (with ``env`` added to the environment); (the process, its base URL) once it
    answers (at most 2 minutes)."""
    port = free_port()
    runs_dir = Path(runs_dir).resolve()
    # started in the runs folder: with -m the current folder comes first on sys.path, so started in a checkout the
    # server would import that checkout's dmlviz whatever PYTHONPATH says (only its kernels followed PYTHONPATH)
    proc = subprocess.Popen([sys.executable, "-m", "dmlviz.cli", "serve", str(runs_dir), "--port", str(port), *args], cwd=runs_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(base + "/voila/tree", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    return proc, base
