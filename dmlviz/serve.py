"""Serving the dashboards: Voila on 127.0.0.1 over the package's notebooks, reading runs under one folder."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

NOTEBOOKS = Path(__file__).parent / "notebooks"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dashboard_url(host: str, port: int, notebook: str = "explorer.ipynb", run: str | None = None) -> str:
    """The address of a dashboard page (optionally opening ``run`` in the explorer)."""
    shown = f"[{host}]" if ":" in host else host
    query = f"?run={run}" if run else ""
    return f"http://{shown}:{port}/voila/render/{notebook}{query}"


def _lesson_ready(runs_dir: Path) -> bool:
    """Whether the lesson's demo runs are trained (so preheating the lesson trains nothing)."""
    from .demo import DEMO_RUNS, run_folder

    for name in DEMO_RUNS:
        info = run_folder(runs_dir, name) / "run.json"
        if not info.is_file() or '"finished"' not in info.read_text():
            return False
    return True


def voila_command(port: int, host: str = "127.0.0.1", preheat: bool = True, runs_dir: Path | None = None) -> list[str]:
    """The Voila command line that serves the package's notebooks.

    With ``preheat`` a kernel per notebook is kept ready; the lesson is kept ready only when
    its demo runs exist, since running it otherwise trains them in ``runs_dir``.
    """
    command = [
        sys.executable, "-m", "voila", str(NOTEBOOKS),
        "--no-browser", f"--port={int(port)}", f"--Voila.ip={host}",
        "--show_tracebacks=True", "--Voila.port_retries=0",
    ]
    if preheat:
        command += ["--preheat_kernel=True", "--pool_size=1"]
        if runs_dir is None or not _lesson_ready(Path(runs_dir)):
            command.append('--VoilaKernelManager.preheat_denylist=["softtriple_lesson.ipynb"]')
    return command


def serve_env(runs_dir: str | os.PathLike) -> dict[str, str]:
    """Environment for the Voila server and its kernels: where the runs are, a persistent numba cache."""
    env = dict(os.environ)
    env["DMLVIZ_RUNS_DIR"] = str(Path(runs_dir).resolve())
    env.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "dmlviz" / "numba"))
    return env


def serve(runs_dir: str | os.PathLike, port: int = 8866, host: str = "127.0.0.1", preheat: bool = True, notebook: str = "explorer.ipynb") -> int:
    """Replace this process with Voila serving the dashboards (returns only if that fails)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder {str(root)!r} does not exist; train a run first, e.g. dmlviz train --out {root}/my-run")
    if host not in LOOPBACK:
        logger.warning("serving on %s: anyone who can reach this address can read the runs in %s", host, root.resolve())
    print(f"dmlviz: serving runs in {root.resolve()}\n  explorer: {dashboard_url(host, port)}\n  lesson:   {dashboard_url(host, port, 'softtriple_lesson.ipynb')}", flush=True)
    command = voila_command(port, host, preheat, root)
    # Become the Voila process, so that signals (Ctrl-C, a test's terminate) reach the server itself.
    os.execve(command[0], command, serve_env(root))
