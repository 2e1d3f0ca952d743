"""Browser fixtures: small runs, `dmlviz serve` on a free port, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dmlviz.serve import MODULES_ENV

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--enable-unsafe-swiftshader",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
#: the folder the test servers' kernels write module files to (dmlviz.serve.modules_dir is the user's cache)
SERVED_MODULES = OUTPUT.parent / "served-modules"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_runs(tmp_path_factory):
    """A runs folder: an image run (digits-pairs, SoftTriple K=3), a run without images (synthetic, triplet) and a 25,000-point run."""
    import dmlviz
    from dmlviz.data import synthetic

    root = tmp_path_factory.mktemp("browser-runs")
    dmlviz.train("digits-pairs", "linear", "softtriple", epochs=3, batch_size=64, embedding_dim=16, split="samples",
                 centers_per_class=3, out=root / "digits", progress=False)
    dmlviz.train(synthetic(classes=4, modes_per_class=2, dim=8, samples_per_mode=30), "linear", "triplet", epochs=2,
                 batch_size=32, embedding_dim=8, split="samples", out=root / "vectors", progress=False)
    # 25,000 probe points: above 20,000 the map is drawn by jupyter-scatter
    dmlviz.train(synthetic(classes=50, modes_per_class=2, dim=8, samples_per_mode=250, seed=2), "linear", "softtriple", epochs=1,
                 batch_size=512, embedding_dim=8, split="samples", test_fraction=0.1, centers_per_class=2, probe_size=25_000,
                 out=root / "large", progress=False)
    return root


#: the comparison's runs: (loss, its options), all on the same data, split, seed and probe
COMPARE_LOSSES = (("softmax", {}), ("softtriple", {"centers_per_class": 3}), ("proxyanchor", {}))


@pytest.fixture(scope="session")
def compare_runs(tmp_path_factory):
    """Three 2-epoch runs to compare (softmax, SoftTriple K=3, ProxyAnchor) on one small synthetic set (240 probe points), folders cmp-LOSS."""
    import dmlviz
    from dmlviz.data import synthetic

    root = tmp_path_factory.mktemp("compare-runs")
    data = synthetic(classes=4, modes_per_class=2, dim=8, samples_per_mode=30, seed=3)
    return [dmlviz.train(data, "linear", loss, epochs=2, batch_size=32, embedding_dim=8, split="samples", seed=0,
                         out=root / f"cmp-{loss}", progress=False, **options) for loss, options in COMPARE_LOSSES]


@pytest.fixture(scope="session")
def served_compare_runs(browser_runs, compare_runs):
    """The comparison's runs copied into the folder that `server` serves (it lists runs when a page asks); their names."""
    import shutil

    for run in compare_runs:
        shutil.copytree(run.path, browser_runs / run.path.name, dirs_exist_ok=True)
    return [run.path.name for run in compare_runs]


@contextlib.contextmanager
def _serving(runs_dir: Path, *args: str, env: dict | None = None, log_name: str = "serve"):
    """`dmlviz serve RUNS_DIR ARGS` on a free loopback port; yields (base URL, the process's log path)."""
    port = _free_port()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    log_path = OUTPUT.parent / f"{log_name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dmlviz.cli", "serve", str(runs_dir), "--port", str(port), *args],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", MODULES_ENV: str(SERVED_MODULES), **(env or {})})
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for(base + "/voila/tree", proc, log_path, 120, ok_statuses=(200, 403))
            yield base, log_path
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a server process; kill it if it has not ended within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_for(url: str, proc: subprocess.Popen, log_path: Path, seconds: float, ok_statuses=(200,)) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError as error:  # answered: e.g. 403 where a token is required
            if error.code in ok_statuses:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}; see {log_path}")
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s; see {log_path}")


@pytest.fixture(scope="session")
def server(browser_runs):
    """`dmlviz serve` on a free loopback port; yields its base URL."""
    with _serving(browser_runs) as (base, _):
        yield base


@pytest.fixture
def serving():
    """serving(runs_dir, *args, env=None, log_name=...): a context manager running `dmlviz serve` (yields base URL, log path)."""
    return _serving


@pytest.fixture(scope="session")
def lesson_server(tmp_path_factory):
    """`dmlviz serve --no-preheat` over the lesson's demo runs, trained for 2 epochs (the lesson page then trains nothing).

    Not preheated: the one page asked of it then gets a kernel of its own at once, instead of one of four kernels that
    start and run their notebooks together at start-up (on 2 cores: the lesson's three plots at 18 s from the server's start
    against 33 s). Preheating is what `server` serves, and tests/test_serve.py checks which notebooks it leaves cold.
    """
    from dmlviz.demo import demo_runs

    root = tmp_path_factory.mktemp("lesson-runs")
    demo_runs(root, epochs=2, progress=False)
    with _serving(root, "--no-preheat", env={"DMLVIZ_DEMO_EPOCHS": "2"}, log_name="serve-lesson") as (base, _):
        yield base


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (never a downloaded browser)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page, 1400×1000."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shot():
    """save(page, name): a full-page screenshot under test-output/screenshots (not committed)."""

    def save(page, name: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class PageLog:
    """What a page did: console errors and uncaught exceptions, requests to hosts other than this machine."""

    errors: list = field(default_factory=list)
    external: list = field(default_factory=list)
    requests: int = 0
    urls: list = field(default_factory=list)

    def attach(self, page) -> "PageLog":
        page.on("console", lambda message: self.errors.append(f"console: {message.text}") if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("request", self._on_request)
        return self

    def _on_request(self, request) -> None:
        self.requests += 1
        self.urls.append(request.url)
        url = urlsplit(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            self.external.append(request.url)


@pytest.fixture
def page_log(page):
    """The console errors, page errors and outside requests of ``page`` (attach before opening anything)."""
    return PageLog().attach(page)


def drawn_pixels(page, plot: str) -> int:
    """How many pixels of the WebGL layer of plotly figure ``plot`` (a selector) are not white.

    The figure's SVG layers (axes, centers, hover) are hidden for the screenshot, so what is
    counted is what plotly's scattergl drew, as the page composites it."""
    locator = page.locator(plot).first
    hide = "(gd, hidden) => gd.querySelectorAll('.main-svg').forEach((svg) => { svg.style.visibility = hidden ? 'hidden' : ''; })"
    locator.evaluate(hide, True)
    try:
        png = locator.screenshot(animations="disabled")
    finally:
        locator.evaluate(hide, False)
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - 255).max(axis=2) > 40).sum())


def wait_drawn(page, plot: str, minimum: int = 200, timeout: float = 60.0) -> tuple[float, int]:
    """Poll until figure ``plot`` has at least ``minimum`` drawn WebGL pixels; (seconds waited, pixels)."""
    start = time.monotonic()
    count = 0
    while time.monotonic() - start < timeout:
        if page.locator(plot).count():
            count = drawn_pixels(page, plot)
            if count >= minimum:
                return time.monotonic() - start, count
        page.wait_for_timeout(100)
    raise AssertionError(f"{plot}: only {count} drawn pixels after {timeout:.0f} s")


@pytest.fixture
def drawn():
    """drawn.pixels(page, plot) and drawn.wait(page, plot): WebGL pixels a plotly figure drew (see drawn_pixels)."""
    from types import SimpleNamespace

    return SimpleNamespace(pixels=drawn_pixels, wait=wait_drawn)


DISTANCES = ".dmlviz-distances"


def check_distances(page, root: str = "", timeout: float = 30_000) -> dict:
    """Click the explorer's "Distances" tab (inside ``root``, a selector) and wait until its figure has drawn
    the two histograms (bars drawn); fail if the figure is wider than its tab. Return the summary's
    {epoch, overlap, auc}, its text, the traces' bar counts and the figure's and the tab's widths."""
    import re

    scope = page.locator(root).first if root else page
    scope.locator(".lm-TabBar-tab", has_text="Distances").first.click()
    view = f"{root} {DISTANCES}".strip()
    page.wait_for_selector(f"{view} .dmlviz-distance-summary", timeout=timeout)
    lines = page.wait_for_function(
        """(view) => { const gd = document.querySelector(view + ' .js-plotly-plot');
            if (!gd || !gd.data || !gd.data[1].x || !gd.data[1].x.length) return null;
            const bars = Array.from(gd.querySelectorAll('.barlayer .trace')).map((t) => t.querySelectorAll('path').length);
            return bars.filter((n) => n >= 5).length >= 2 ? bars : null; }""",
        arg=view, timeout=timeout,
    ).json_value()
    # the figure must fit the tab it was made hidden in (plotly's default there would be 700 px)
    measure = ("(view) => { const gd = document.querySelector(view + ' .js-plotly-plot');"
               " return [gd.querySelector('.main-svg').getBoundingClientRect().width, document.querySelector(view).getBoundingClientRect().width]; }")
    width, inner = page.evaluate(measure, view)
    for _ in range(10):
        if width <= inner + 2:
            break
        page.wait_for_timeout(100)
        width, inner = page.evaluate(measure, view)
    assert width <= inner + 2, f"the Distances figure is {width:.0f} px wide in a {inner:.0f} px tab: it overflows"
    summary = page.locator(f"{view} .dmlviz-distance-summary").first.inner_text()
    assert "overlap of the two histograms" in summary and "separation AUC" in summary, summary
    epoch = re.search(r"^epoch (\d+)", summary.strip())
    overlap = re.search(r"overlap of the two histograms\s+(\d\.\d+)", summary)
    auc = re.search(r"separation AUC\s+(\d\.\d+)", summary)
    assert epoch and overlap and auc, summary
    assert 0.0 <= float(overlap.group(1)) <= 1.0 and 0.0 <= float(auc.group(1)) <= 1.0, summary
    return dict(epoch=int(epoch.group(1)), overlap=float(overlap.group(1)), auc=float(auc.group(1)), summary=summary,
                lines=lines, width=width, tab_width=inner)


def figures_fit(page, plots: str, container: str = ".dmlviz-map", seconds: float = 5.0) -> tuple[list, list, float]:
    """The widths of every plotly figure matching ``plots`` (a CSS selector) and of its ``container`` (its closest ancestor
    matching it), polled for up to ``seconds`` until each figure fits its container: (widths at first, widths at last, seconds
    waited), each a list of [figure px, container px]. A figure drawn while its container had no width takes plotly's default
    700 px, which then overflows a narrower container."""
    measure = ("([plots, container]) => Array.from(document.querySelectorAll(plots)).map((gd) =>"
               " [Math.round(gd.querySelector('.main-svg').getBoundingClientRect().width), Math.round(gd.closest(container).getBoundingClientRect().width)])")
    first = widths = page.evaluate(measure, [plots, container])
    started = time.monotonic()
    while not all(figure <= box + 2 for figure, box in widths) and time.monotonic() - started < seconds:
        page.wait_for_timeout(100)
        widths = page.evaluate(measure, [plots, container])
    return first, widths, time.monotonic() - started


def assert_renderer_fits(page, canvas: str) -> None:
    """jupyter-scatter's shared renderer is exactly as large as the map's ``canvas`` (a selector), not the window
    (widgets/deferred_code.py, ``fitSharedRenderer``)."""
    sizes = page.evaluate("""(selector) => { const r = window.jupyterScatter.renderer.canvas; const c = document.querySelector(selector);
        return { renderer: [r.width, r.height], canvas: [c.width, c.height], window: [innerWidth * devicePixelRatio, innerHeight * devicePixelRatio] }; }""",
                          canvas)
    assert sizes["renderer"] == sizes["canvas"] and sizes["renderer"][0] < sizes["window"][0], sizes
