"""Browser fixtures: small runs, `dmlviz serve` on a free port, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--enable-unsafe-swiftshader",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_runs(tmp_path_factory):
    """A runs folder: an image run (digits-pairs, SoftTriple K=3) and a run without images (synthetic, triplet)."""
    import dmlviz
    from dmlviz.data import synthetic

    root = tmp_path_factory.mktemp("browser-runs")
    dmlviz.train("digits-pairs", "linear", "softtriple", epochs=3, batch_size=64, embedding_dim=16, split="samples",
                 centers_per_class=3, out=root / "digits", progress=False)
    dmlviz.train(synthetic(classes=4, modes_per_class=2, dim=8, samples_per_mode=30), "linear", "triplet", epochs=2,
                 batch_size=32, embedding_dim=8, split="samples", out=root / "vectors", progress=False)
    return root


@pytest.fixture(scope="session")
def server(browser_runs):
    """`dmlviz serve` on a free loopback port; yields its base URL."""
    port = _free_port()
    log = open(OUTPUT.parent / "serve.log", "w") if OUTPUT.parent.mkdir(parents=True, exist_ok=True) is None else None
    proc = subprocess.Popen([sys.executable, "-m", "dmlviz.cli", "serve", str(browser_runs), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(base + "/voila/tree", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"dmlviz serve exited with {proc.returncode}; see {log.name}")
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("dmlviz serve did not answer within 120 s")
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


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
