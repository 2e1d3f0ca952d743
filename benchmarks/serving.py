"""`dmlviz serve` for the browser benchmarks: a free loopback port, waited for until it answers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator


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


@contextlib.contextmanager
def revision_tree(rev: str) -> Iterator[tuple[Path, str]]:
    """A temporary git worktree of this repository at ``rev`` -> (its folder, the commit's short id); removed afterwards.

    Its parent folder is a scratch folder outside every checkout: a process started there with
    ``PYTHONPATH=<folder>`` imports that revision's dmlviz.
    """
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "against"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
        try:
            short = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", rev],  # a commit, not a name like HEAD
                                   check=True, capture_output=True, text=True).stdout.strip()
            yield tree, short
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False)
