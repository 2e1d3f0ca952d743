"""Serving the dashboards: Voila on 127.0.0.1 over dmlviz's notebooks, reading runs under one folder.

The notebooks live in the repository's top-level ``notebooks/`` folder; a checkout (or an
editable install) serves them from there, an installed wheel from the copy it puts in
``<prefix>/share/dmlviz/notebooks`` (pyproject's data-files): one copy in the repository.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

def notebooks_dir() -> Path:
    """The folder holding dmlviz's notebooks: the checkout's ``notebooks/``, else the installed copy."""
    for candidate in (Path(__file__).resolve().parents[1] / "notebooks", Path(sys.prefix) / "share" / "dmlviz" / "notebooks"):
        if (candidate / "explorer.ipynb").is_file():
            return candidate
    raise FileNotFoundError(
        f"dmlviz's notebooks are neither in {Path(__file__).resolve().parents[1] / 'notebooks'} (a checkout) nor in "
        f"{Path(sys.prefix) / 'share' / 'dmlviz' / 'notebooks'} (an installed wheel); reinstall dmlviz"
    )


NOTEBOOKS = notebooks_dir()
# dmlviz's Voila template (share/voila/templates/dmlviz): Voila's lab template with nothing fetched
# from outside this server (Voila's own links Font Awesome on a public CDN).
SHARE = Path(__file__).parent / "share"
TEMPLATE = "dmlviz"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# JupyterLab extensions a dmlviz page never uses, kept off its pages: jupyterlab-plotly renders
# plotly's static figures (a mime type); dmlviz's figures are widgets whose front-end code comes
# with them (widgets/figure.py), and the extension alone makes each page fetch and parse a 4.8 MB
# chunk holding a second copy of plotly.js.
UNUSED_EXTENSIONS = '["jupyterlab-plotly"]'


#: notebooks never run ahead of a page: bring_your_own.ipynb trains a model and writes its run
#: (``bring-your-own``, overwritten) into the served folder, which a server must not do on its own.
NOT_PREHEATED = ("bring_your_own.ipynb",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def dashboard_url(
    host: str, port: int, notebook: str = "explorer.ipynb", run: str | None = None, token: str | None = None, runs: list[str] | None = None
) -> str:
    """The address of a dashboard page (optionally opening ``run`` in the explorer, or ``runs`` in the comparison, with a login token)."""
    shown = f"[{host}]" if ":" in host else host
    query = [f"run={quote(run, safe='')}"] if run else []
    query += [f"runs={quote(','.join(runs), safe=',')}"] if runs else []
    query += [f"token={quote(token, safe='')}"] if token else []
    return f"http://{shown}:{port}/voila/render/{notebook}" + (f"?{'&'.join(query)}" if query else "")


def _lesson_ready(runs_dir: Path) -> bool:
    """Whether the lesson's demo runs are trained (so preheating the lesson trains nothing)."""
    from .demo import DEMO_RUNS, run_folder

    for name in DEMO_RUNS:
        info = run_folder(runs_dir, name) / "run.json"
        if not info.is_file() or '"finished"' not in info.read_text():
            return False
    return True


def voila_command(port: int, host: str = "127.0.0.1", preheat: bool = True, runs_dir: Path | None = None, token: bool = False) -> list[str]:
    """The Voila command line that serves the package's notebooks.

    With ``preheat`` a kernel per notebook is kept ready, except for :data:`NOT_PREHEATED`
    (notebooks that write runs); the lesson is kept ready only when its demo runs exist, since
    running it otherwise trains them in ``runs_dir``. On a loopback
    address pages open without a token and show tracebacks; on any other address (or with
    ``token``) Voila asks for a token, which it reads from ``JUPYTER_TOKEN`` in the environment
    (see :func:`serve_env`: not on the command line, where other users of the machine see it), and
    an error shows no traceback.
    """
    local = is_loopback(host)
    command = [
        sys.executable, "-m", "voila", str(NOTEBOOKS),
        "--no-browser", f"--port={int(port)}", f"--Voila.ip={host}",
        f"--show_tracebacks={local}", "--Voila.port_retries=0", f"--template={TEMPLATE}",
        f"--VoilaConfiguration.extension_denylist={UNUSED_EXTENSIONS}",
    ]
    if token or not local:
        command.append("--Voila.auto_token=True")  # the identity provider's token: JUPYTER_TOKEN, else a generated one
    if preheat:
        command += ["--preheat_kernel=True", "--pool_size=1"]
        kept_cold = list(NOT_PREHEATED)
        if runs_dir is None or not _lesson_ready(Path(runs_dir)):
            kept_cold.append("softtriple_lesson.ipynb")
        command.append(f"--VoilaKernelManager.preheat_denylist={json.dumps(kept_cold)}")
    return command


#: the environment variable that tells a kernel where to write module files (read by widgets/deferred_code.py, which
#: names it too: importing the widgets here would make `dmlviz serve` import plotly; a test checks the two agree)
MODULES_ENV = "DMLVIZ_MODULES_DIR"


def modules_dir() -> Path:
    """The folder whose ``voila/templates/dmlviz/static/modules`` the server serves big front-end modules from (widgets/deferred_code.py)."""
    return Path.home() / ".cache" / "dmlviz" / "served"


def serve_env(runs_dir: str | os.PathLike, token: str | None = None) -> dict[str, str]:
    """Environment for the Voila server and its kernels: where the runs are, a persistent numba cache,
    dmlviz's Voila template on the Jupyter path, the folder of module files its kernels write and it
    serves (``DMLVIZ_MODULES_DIR``, also on the Jupyter path), and the login token (if any)."""
    env = dict(os.environ)
    env["DMLVIZ_RUNS_DIR"] = str(Path(runs_dir).resolve())
    env.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "dmlviz" / "numba"))
    env.setdefault(MODULES_ENV, str(modules_dir()))
    extra = [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p and p not in (str(SHARE), env[MODULES_ENV])]
    env["JUPYTER_PATH"] = os.pathsep.join([str(SHARE), env[MODULES_ENV], *extra])
    env.pop("JUPYTER_TOKEN", None)
    if token:
        env["JUPYTER_TOKEN"] = token
    return env


def serve(runs_dir: str | os.PathLike, port: int = 8866, host: str = "127.0.0.1", preheat: bool = True, notebook: str = "explorer.ipynb",
          token: str | None = None, compare: list[str] | None = None) -> int:
    """Replace this process with Voila serving the dashboards (returns only if that fails).

    On a loopback address pages open without a token unless ``token`` is given; on any other
    address a token is required: ``token``, or one generated here and printed in the addresses.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder {str(root)!r} does not exist; train a run first, e.g. dmlviz train --out {root}/my-run")
    if token is not None and not token.strip():
        raise ValueError("the token must not be empty")
    if not is_loopback(host):
        token = token or secrets.token_urlsafe(24)
        logger.warning("serving on %s: anyone who can reach this address and has the token can read the runs in %s", host, root.resolve())
    urls = [dashboard_url(host, port, token=token), dashboard_url(host, port, "softtriple_lesson.ipynb", token=token),
            dashboard_url(host, port, "compare.ipynb", token=token, runs=compare), dashboard_url(host, port, "playground.ipynb", token=token)]
    print(f"dmlviz: serving runs in {root.resolve()}\n  explorer:   {urls[0]}\n  lesson:     {urls[1]}\n  compare:    {urls[2]}\n"
          f"  playground: {urls[3]}", flush=True)
    command = voila_command(port, host, preheat, root, token=bool(token))
    # Become the Voila process, so that signals (Ctrl-C, a test's terminate) reach the server itself.
    os.execve(command[0], command, serve_env(root, token))
