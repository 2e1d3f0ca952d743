"""The dashboards in a real browser: `dmlviz serve`, Debian's Chromium, clicks on the real page."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from conftest import assert_renderer_fits, check_distances, figures_fit

from dmlviz.widgets.deferred_code import AFTER_LIMIT_MS
from dmlviz.widgets.state import FIRST_DRAW_LIMIT

pytestmark = pytest.mark.browser

PLOT = ".dmlviz-map .js-plotly-plot"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


def record(line: str) -> None:
    """Keep a measured figure in test-output/timings.txt (not committed) and print it (pytest -s)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT / "timings.txt", "a") as out:
        out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    print(line)


def _open(page, server, run: str, drawn=None) -> float | None:
    """Open the explorer on ``run``; with ``drawn``, wait until the map's points are drawn and
    return the seconds from the map appearing on the page to its points being drawn."""
    page.goto(f"{server}/voila/render/explorer.ipynb?run={run}", timeout=120_000)
    page.wait_for_selector(".dmlviz-map", timeout=120_000)
    seconds = drawn.wait(page, PLOT, timeout=60)[0] if drawn else None
    page.wait_for_selector(PLOT, timeout=120_000)
    page.wait_for_function(f"document.querySelector('{PLOT}').data && document.querySelector('{PLOT}').data[0].x && document.querySelector('{PLOT}').data[0].x.length > 0", timeout=60_000)
    return seconds


def _xs(page):
    return page.evaluate(f"Array.from(document.querySelector('{PLOT}').data[0].x).slice(0, 20)")


def test_map_epochs_neighbours_classes_merge(page, page_log, server, browser_runs, shot, drawn):
    import dmlviz

    run = dmlviz.load_run(browser_runs / "digits")
    n_points = len(run.snapshot(3))
    seconds = _open(page, server, "digits", drawn)
    record(f"voila explorer (digits, {n_points} points): map drawn {seconds:.2f} s after it appeared; {drawn.pixels(page, PLOT)} drawn pixels")
    assert page.evaluate(f"document.querySelector('{PLOT}').data[0].x.length") == n_points
    assert page.evaluate(f"document.querySelector('{PLOT}').data[1].x.length") == 5 * 3  # 5 classes × K=3 centers
    shot(page, "explorer-loaded")

    # the epoch slider moves the points
    before = _xs(page)
    handle = page.locator(".dmlviz-epoch .noUi-handle").first
    handle.focus()
    page.keyboard.press("Home")
    page.wait_for_function(
        "([sel, before]) => JSON.stringify(Array.from(document.querySelector(sel).data[0].x).slice(0, 20)) !== JSON.stringify(before)",
        arg=[PLOT, before], timeout=30_000,
    )
    assert _xs(page) != before
    shot(page, "explorer-epoch0")

    # clicking a point fills the neighbours panel
    xy = page.evaluate(
        """(sel) => { const gd = document.querySelector(sel); const fl = gd._fullLayout; const r = gd.getBoundingClientRect();
            const x = gd.data[0].x[0], y = gd.data[0].y[0];
            return [r.left + fl._size.l + fl.xaxis.l2p(x), r.top + fl._size.t + fl.yaxis.l2p(y)]; }""",
        PLOT,
    )
    page.mouse.click(xy[0], xy[1])
    page.wait_for_selector(".dmlviz-neighbor-list .dmlviz-tile", timeout=30_000)
    assert page.locator(".dmlviz-neighbor-list .dmlviz-tile").count() == 8
    assert page.locator(".dmlviz-neighbor-list img").count() == 8  # thumbnails, this run has images
    shot(page, "explorer-neighbours")

    # choosing a class shows its centers' galleries
    page.locator(".lm-TabBar-tab", has_text="Class inspector").click()
    page.locator(".dmlviz-class-select select").select_option(label="2|7")
    page.wait_for_selector(".dmlviz-center-gallery", timeout=30_000)
    assert page.locator(".dmlviz-center-gallery").count() == 3
    assert "class 2|7" in page.locator(".dmlviz-class-summary").inner_text()
    shot(page, "explorer-class")

    # the merge timeline is drawn: one heatmap row per class, one column per epoch
    z = page.evaluate("document.querySelector('.dmlviz-merge-timeline .js-plotly-plot').data[0].z")
    assert len(z) == 5 and len(z[0]) == 4
    assert page.locator(".dmlviz-metrics .js-plotly-plot").count() == 1

    # the Distances tab draws the positive and negative pairs' histograms at the epoch shown (0), and follows the epoch slider
    first = check_distances(page)
    assert first["epoch"] == 0, first["summary"]
    shot(page, "explorer-distances")
    handle.focus()
    page.keyboard.press("End")  # the last epoch, 3
    page.wait_for_function(
        "([sel, before]) => { const s = document.querySelector(sel); return s && s.innerText.trim() !== before.trim(); }",
        arg=[".dmlviz-distances .dmlviz-distance-summary", first["summary"]], timeout=30_000,
    )
    last = check_distances(page)
    assert last["epoch"] == 3 and last["summary"] != first["summary"], last["summary"]
    assert f"epoch 0: {first['auc']:.3f}" in last["summary"]  # compared with the first epoch
    shot(page, "explorer-distances-epoch3")

    # nothing was fetched from outside this machine, and nothing failed
    record(f"voila explorer: {page_log.requests} requests, {len(page_log.external)} to other hosts, {len(page_log.errors)} console errors")
    assert page_log.external == []
    assert page_log.errors == []
    # serving wrote no run of its own: the notebook that trains one (bring_your_own) is not run ahead of a page
    assert not (browser_runs / "bring-your-own").exists()


MODULES = "/voila/templates/dmlviz/static/modules/"


def test_run_without_images_and_without_centers(page, page_log, server, shot, drawn):
    _open(page, server, "vectors", drawn)
    name = page.evaluate(f"document.querySelector('{PLOT}').data[1].name")
    assert "class means" in name
    shot(page, "explorer-vectors")
    assert page_log.external == [] and page_log.errors == []
    # plotly's module came as a file the server serves (widgets/deferred_code.py), not in the widget state
    assert len({url for url in page_log.urls if MODULES in url}) == 1


def test_a_module_file_that_does_not_load_is_sent_by_the_kernel(page, page_log, server, drawn):
    """The page asks the kernel for a module's text when its file does not load (here: the server answers 404)."""
    refused = []

    def refuse(route):
        refused.append(route.request.url)
        route.fulfill(status=404, body="")

    page.route(f"**{MODULES}**", refuse)
    _open(page, server, "vectors", drawn)
    assert len(refused) == 1
    assert _xs(page)  # plotly's figures work: the module came from the kernel
    assert page_log.external == []
    assert [e for e in page_log.errors if "404" not in e] == []  # the browser reports the refused file, nothing else


@pytest.fixture(scope="module")
def method_runs(browser_runs):
    """Two runs in the served folder: CCP (its proxies are seeded from samples when epoch 1 begins) and Multi-Similarity + IAA."""
    import dmlviz

    common = dict(epochs=2, batch_size=64, embedding_dim=16, split="samples", progress=False)
    dmlviz.train("digits-pairs", "linear", "ccp", proxies_per_class=3, out=browser_runs / "ccp", **common)
    dmlviz.train("digits-pairs", "linear", "multisimilarity", augmenter="iaa", iaa_start=0.5, out=browser_runs / "iaa", **common)
    return browser_runs


def _data_length(page, trace: int) -> int:
    return page.evaluate(f"(document.querySelector('{PLOT}').data[{trace}].x || []).length")


def test_ccp_reseeding_is_drawn_and_its_covering_radius_shown(page, page_log, server, method_runs, shot, drawn):
    _open(page, server, "ccp", drawn)
    handle = page.locator(".dmlviz-epoch .noUi-handle").first
    handle.focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")  # epoch 1: began by seeding the proxies from samples
    page.wait_for_selector(".dmlviz-reseed", timeout=30_000)
    assert "seeded from samples when training began" in page.locator(".dmlviz-reseed").inner_text()
    page.wait_for_function(f"(document.querySelector('{PLOT}').data[5].x || []).length === 5 * 3", timeout=30_000)
    shot(page, "explorer-ccp-seeded")
    page.locator(".lm-TabBar-tab", has_text="Class inspector").click()
    page.locator(".dmlviz-class-select select").select_option(label="2|7")
    page.wait_for_function("(document.querySelector('.dmlviz-class-summary') || {innerText: ''}).innerText.includes('covering radius')",
                           timeout=30_000)
    shot(page, "explorer-ccp-class")
    assert page_log.external == [] and page_log.errors == []


def test_iaa_synthetic_points_are_drawn_on_request(page, page_log, server, method_runs, shot, drawn):
    _open(page, server, "iaa", drawn)  # the last epoch (2) augments: iaa_start 0.5 of 2 epochs
    assert _data_length(page, 4) == 0  # off until asked for
    page.locator(".dmlviz-synthetic-toggle input").check()
    page.wait_for_function(f"(document.querySelector('{PLOT}').data[4].x || []).length > 0", timeout=30_000)
    assert "(IAA, 3 per source" in page.locator(".dmlviz-synthetic").inner_text()
    shot(page, "explorer-iaa-synthetic")
    assert page_log.external == [] and page_log.errors == []


def test_unknown_and_escaping_run_names_are_refused(page, server):
    page.goto(f"{server}/voila/render/explorer.ipynb?run=..", timeout=120_000)
    page.wait_for_selector(".dmlviz-run-chooser", timeout=120_000)
    assert "not a plain folder name" in page.locator(".dmlviz-run-chooser").inner_text()
    assert page.locator(PLOT).count() == 0


def test_lesson_draws_its_maps_and_fetches_nothing_from_outside(page, page_log, lesson_server, shot, drawn):
    page.goto(f"{lesson_server}/voila/render/softtriple_lesson.ipynb", timeout=180_000)
    page.wait_for_selector(".dmlviz-map", timeout=180_000)
    maps = page.locator(".dmlviz-map")
    page.wait_for_function("document.querySelectorAll('.dmlviz-map').length >= 3", timeout=120_000)
    for index in range(maps.count()):
        plot = f":nth-match(.dmlviz-map .js-plotly-plot, {index + 1})"
        seconds, pixels = drawn.wait(page, plot, timeout=60)
        record(f"voila lesson map {index + 1}: drawn {seconds:.2f} s after the page's maps appeared ({pixels} pixels)")
    page.wait_for_selector(".dmlviz-lesson-table", timeout=120_000)
    page.wait_for_timeout(1000)
    shot(page, "lesson")
    # every cell ran without error (Voila shows a failing cell's traceback on loopback)
    assert "Traceback" not in page.inner_text("body")
    assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    assert page.locator(".dmlviz-merge-timeline").count() == 2 and page.locator(".dmlviz-class-inspector").count() == 1
    record(f"voila lesson: {page_log.requests} requests, {len(page_log.external)} to other hosts, {len(page_log.errors)} console errors")
    assert page_log.external == []
    assert page_log.errors == []


def test_pages_ask_for_the_token_when_one_is_set(browser_runs, page, page_log, serving):
    import urllib.request

    with serving(browser_runs, "--token", "s3cret", "--no-preheat", log_name="serve-token") as (base, _):
        # without the token the page is not rendered: Voila sends the browser to its login page
        answer = urllib.request.urlopen(f"{base}/voila/render/explorer.ipynb?run=vectors", timeout=60)
        assert "/login" in answer.geturl() and b"dmlviz" not in answer.read()
        page.goto(f"{base}/voila/render/explorer.ipynb?run=vectors&token=s3cret", timeout=120_000)
        page.wait_for_selector(PLOT, timeout=120_000)
        assert page_log.errors == [] and page_log.external == []


CANVAS = ".dmlviz-point-canvas canvas"


def _shot_whole(page, shot, name: str, selector: str = ".dmlviz-compare") -> None:
    """A screenshot of the whole of ``selector``: Voila's page scrolls inside a container, so a full-page shot shows only
    the viewport; the viewport is made as tall as the content for the shot (same width, so nothing is laid out anew)."""
    size = page.viewport_size
    height = page.evaluate(
        "(sel) => { const e = document.querySelector(sel);"
        " let node = e, top = 0; while (node) { top += node.offsetTop || 0; node = node.offsetParent; }"
        " return Math.ceil(top + e.getBoundingClientRect().height + 40); }",
        selector,
    )
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height, 6000))})
    try:
        page.evaluate("(sel) => document.querySelector(sel).scrollIntoView({block: 'start'})", selector)
        page.wait_for_timeout(300)
        shot(page, name)
    finally:
        page.set_viewport_size(size)


def _lasso(page, plots: str, index: int = 0) -> None:
    """Drag a lasso with the mouse: an octagon around the centre of the plot area of figure ``index`` of ``plots``
    (a CSS selector; plotly's dragmode is "lasso")."""
    import math

    page.locator(plots).nth(index).scroll_into_view_if_needed()
    left, top, width, height = page.evaluate(
        """([sel, i]) => { const gd = document.querySelectorAll(sel)[i]; const s = gd._fullLayout._size; const r = gd.getBoundingClientRect();
            return [r.left + s.l, r.top + s.t, s.w, s.h]; }""",
        [plots, index],
    )
    cx, cy = left + width / 2, top + height / 2
    corners = [(cx + 0.3 * width * math.cos(a), cy + 0.3 * height * math.sin(a)) for a in (i * math.pi / 4 for i in range(9))]
    page.mouse.move(*corners[0])
    page.mouse.down()
    for x, y in corners[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def test_compare_maps_share_a_lasso_selection(page, page_log, server, served_compare_runs, shot, drawn):
    """The comparison dashboard: one map per run drawn, the metrics table with its ★, a lasso in the first map selects the same samples in all."""
    import re

    n = len(served_compare_runs)
    page.goto(f"{server}/voila/render/compare.ipynb?runs={','.join(served_compare_runs)}", timeout=120_000)
    page.wait_for_selector(".dmlviz-compare", timeout=120_000)
    page.wait_for_function(f"document.querySelectorAll('{COMPARE_PLOT}').length === {n}", timeout=60_000)
    for index in range(n):
        seconds, pixels = drawn.wait(page, f":nth-match({COMPARE_PLOT}, {index + 1})", timeout=60)
        record(f"voila compare map {index + 1} of {n} (240 points): drawn {seconds:.2f} s after the maps appeared ({pixels} pixels)")
    first, widths, fitted = figures_fit(page, COMPARE_PLOT)
    record(f"voila compare: figure/cell widths {first} when drawn, {widths} {fitted:.2f} s later")
    assert all(figure <= cell + 2 for figure, cell in widths), f"figures wider than their maps' cells (figure, cell px): {widths}"
    lengths = page.evaluate(f"Array.from(document.querySelectorAll('{COMPARE_PLOT}')).map((gd) => gd.data[0].x.length)")
    assert lengths == [240] * n, lengths
    table = page.locator(".dmlviz-compare-table").first.inner_text()
    assert "★" in table, table
    for name in served_compare_runs:
        assert name in table, table
    assert "Traceback" not in page.inner_text("body")
    _shot_whole(page, shot, "compare-loaded")

    # a lasso in the first map: every map draws the same samples as selected, and says how many. While the kernel
    # is still answering the page's first draws (3 maps), ipywidgets holds a figure's next update and merges what
    # comes meanwhile: a lasso's "selected" event could be overwritten by the hovers after it and never reach the
    # kernel (about half the lassos made 2 s after the maps appeared; none of 4 made after 8 s). The hover handler
    # now answers at once, which made it rarer; the test lets the page settle, and a lost lasso is retried, recorded.
    page.wait_for_timeout(8000)
    reached = False
    for attempt in range(3):
        _lasso(page, COMPARE_PLOT, 0)
        try:
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.dmlviz-compare .dmlviz-map .dmlviz-selection')).some((e) => e.innerText.includes('selected'))",
                timeout=10_000)
            reached = True
            break
        except Exception:
            record(f"voila compare: lasso {attempt + 1} did not reach the kernel within 10 s")
            page.mouse.dblclick(10, 10)
    if not reached:
        # the bug of issue 9's note: plotly emitted plotly_selected but its widget sent nothing. Since
        # figure.py re-sends a drawn selection itself, every page load here got its first lasso through
        # (before: 3 of 14 did); kept as xfail with a screenshot should it come back
        shot(page, "compare-lasso-lost")
        pytest.xfail("the lasso never reached the kernel (a figure's widget updates held by ipywidgets; known, open)")
    try:
        selected = page.wait_for_function(
            """([sel, n]) => { const gds = Array.from(document.querySelectorAll(sel)); if (gds.length !== n) return null;
                const lens = gds.map((gd) => (gd.data[0].selectedpoints || []).length);
                const notes = Array.from(document.querySelectorAll('.dmlviz-compare .dmlviz-map .dmlviz-selection')).map((e) => e.innerText);
                return lens[0] > 0 && lens.every((l) => l === lens[0]) && notes.length === n && notes.every((t) => t.includes('selected'))
                    ? lens : null; }""",
            arg=[COMPARE_PLOT, n], timeout=30_000,
        ).json_value()
    except Exception:
        shot(page, "compare-lasso-not-shared")
        print("selected points per map:", page.evaluate(f"""() => Array.from(document.querySelectorAll('{COMPARE_PLOT}')).map((gd) => (gd.data[0].selectedpoints || []).length)"""),
              page.locator(".dmlviz-compare .dmlviz-map .dmlviz-selection").all_inner_texts())
        raise
    notes = page.locator(".dmlviz-compare .dmlviz-map .dmlviz-selection").all_inner_texts()
    counts = [int(re.search(r"(\d+) selected", note).group(1)) for note in notes]
    assert counts == selected, (counts, selected, notes)
    assert 0 < selected[0] < 240, selected  # the lasso took some points, not all
    same = page.evaluate(
        f"""() => {{ const gds = Array.from(document.querySelectorAll('{COMPARE_PLOT}'));
            const ids = gds.map((gd) => JSON.stringify(Array.from(gd.data[0].selectedpoints).sort((a, b) => a - b)));
            return ids.every((s) => s === ids[0]); }}"""
    )
    assert same, "the maps show different samples as selected"
    record(f"voila compare: the lasso in map 1 selected {selected[0]} samples, shown in all {n} maps")
    page.wait_for_timeout(500)
    _shot_whole(page, shot, "compare-lasso")
    record(f"voila compare: {page_log.requests} requests, {len(page_log.external)} to other hosts, {len(page_log.errors)} console errors")
    assert page_log.external == []
    assert page_log.errors == []


def _canvas_png(page) -> bytes:
    return page.locator(CANVAS).first.screenshot(animations="disabled")


def _ink(png: bytes) -> int:
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - 255).max(axis=2) > 40).sum())


#: the camera of the page's jupyter-scatter view (regl-scatterplot's API sits on a div of the widget)
CAMERA = """() => { const h = [...document.querySelectorAll('.dmlviz-point-canvas div')].find((d) => d.api && typeof d.api.get === 'function');
    return h ? {target: Array.from(h.api.get('cameraTarget')), distance: h.api.get('cameraDistance')} : null; }"""


def _point_and_click(page, x: float, y: float) -> None:
    """Move the pointer onto (x, y) as a hand does, let the page see it there, then click.

    A click from far away in one jump (Playwright's pointer starts at 0, 0) can be read by
    jupyter-scatter's camera as a drag from the last place it saw the pointer when the move and
    the press land in one animation frame: the view pans by the whole jump and the canvas shows
    nothing. That happened in about 1 of 3 page loads on a busy machine.
    """
    page.mouse.move(x, y, steps=8)
    page.wait_for_timeout(150)
    page.mouse.click(x, y)


def _sample_spots(png: bytes, box: dict) -> list[tuple[float, float]]:
    """Page coordinates of 8×8 canvas cells that hold a few drawn pixels: samples (3 px), not centers (solid 6–11 px discs)."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    ink = np.abs(pixels - 255).max(axis=2) > 40
    h, w = ink.shape
    cells = ink[: h // 8 * 8, : w // 8 * 8].reshape(h // 8, 8, w // 8, 8).sum(axis=(1, 3))
    # a cell next to a heavily inked one may hold a center's edge: keep cells whose neighbourhood is light
    padded = np.pad(cells, 1)
    heaviest_around = np.max([padded[1 + dr: 1 + dr + cells.shape[0], 1 + dc: 1 + dc + cells.shape[1]]
                              for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
    rows, cols = np.nonzero((cells >= 4) & (cells <= 20) & (heaviest_around <= 24))
    order = np.argsort(-cells[rows, cols], kind="stable")
    sx, sy = box["width"] / w, box["height"] / h
    return [(box["x"] + (cols[i] * 8 + 4) * sx, box["y"] + (rows[i] * 8 + 4) * sy) for i in order]


def _code_keys() -> tuple[str, str]:
    """The page's keys of jupyter-scatter's and plotly's front-end modules (see widgets/deferred_code.py)."""
    from dmlviz.widgets.deferred_code import deferred
    from dmlviz.widgets.figure import plotly_code
    from dmlviz.widgets.point_canvas import scatter_module

    return deferred(scatter_module())["_dmlviz_code_key"], plotly_code()._dmlviz_code_key


def test_a_large_map_is_drawn_by_jupyter_scatter(page, page_log, server, shot):
    """25,000 points: the WebGL canvas draws them, the epoch slider redraws, a click selects a sample, nothing leaves 127.0.0.1."""
    told, redrawn = [], []  # the page tells the kernel when the canvas has drawn its points (deferred_code), which then starts the side views' work
    redrawn_report = re.compile(r'"type":\s*"dmlviz-redrawn",\s*"version":\s*(\d+),\s*"how":\s*"(\w+)"')

    def sent(payload: str | bytes) -> None:
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        if "dmlviz-drawn" in text:
            told.append(1)
        redrawn.extend((int(v), how) for v, how in redrawn_report.findall(text))  # and each epoch's new points once drawn

    page.on("websocket", lambda ws: ws.on("framesent", sent))
    page.goto(f"{server}/voila/render/explorer.ipynb?run=large", timeout=120_000)
    page.wait_for_selector(CANVAS, timeout=120_000)
    start = time.monotonic()
    while _ink(_canvas_png(page)) < 2000:
        assert time.monotonic() - start < 60, "the canvas drew no points"
        page.wait_for_timeout(200)
    points_at = time.monotonic()
    record(f"voila explorer (25,000 points, jupyter-scatter): points drawn {points_at - start:.2f} s after the canvas appeared")
    assert page.locator(".dmlviz-point-count").inner_text() == "25,000 points"
    assert page.locator(PLOT).count() == 0  # the plotly figure is not on the page
    assert "Drawn by jupyter-scatter" in page.locator(".dmlviz-map-caption").inner_text()
    # jupyter-scatter's shared renderer is as large as the map's canvas, not the window (deferred_code.fitSharedRenderer)
    assert_renderer_fits(page, ".dmlviz-point-canvas canvas")
    shot(page, "explorer-large-map")
    # plotly's module (one long task to evaluate) is imported only once the canvas has drawn its points,
    # and the plotly figures beside the map are drawn after it (widgets/deferred_code.py)
    page.wait_for_selector(".dmlviz-explorer .js-plotly-plot", state="attached", timeout=60_000)  # some are in hidden tabs
    marks = {name: (time, detail) for name, time, detail in page.evaluate(
        "() => performance.getEntriesByType('mark').filter((m) => m.name.startsWith('dmlviz:')).map((m) => [m.name, m.startTime, m.detail])")}
    scatter_key, plotly_key = _code_keys()
    waited, how = marks[f"dmlviz:waited {plotly_key}"]
    start, imported = marks[f"dmlviz:import {plotly_key}"][0], marks[f"dmlviz:imported {plotly_key}"][0]
    drawn = marks[f"dmlviz:drawn {scatter_key}"][0]
    record(f"voila explorer (25,000 points): plotly's module waited for the canvas ({how}), imported "
           f"{(start - drawn) / 1000:+.2f} s after the canvas was drawn, in {(imported - start) / 1000:.2f} s")
    assert waited <= start < imported
    if how == "drawn":
        assert drawn <= start
    else:  # a page too busy to draw the canvas within the limit: plotly waited that long, no longer
        assert how == "limit" and waited - marks[f"dmlviz:waiting {plotly_key}"][0] >= AFTER_LIMIT_MS - 50, marks
    # the worst queries' nearest neighbours were held back until the page said the points were drawn (widgets/state.py)
    page.wait_for_function("() => document.querySelectorAll('.dmlviz-worst-queries option').length > 0", timeout=30_000)
    assert told, "the page did not tell the kernel that the canvas was drawn"
    record(f"voila explorer (25,000 points): worst queries listed {time.monotonic() - points_at:.2f} s after the points were drawn "
           f"(they start when the page reports the points drawn; {FIRST_DRAW_LIMIT:.0f} s if the kernel never heard it)")
    # the page evaluates plotly and draws its figures after the points: clicks in the meantime wait for an idle page
    for _ in range(2):
        page.evaluate("() => new Promise((resolve) => requestIdleCallback(resolve, { timeout: 20000 }))")

    before = _canvas_png(page)
    handle = page.locator(".dmlviz-epoch .noUi-handle").first
    handle.focus()
    page.keyboard.press("Home")  # epoch 0
    start = time.monotonic()
    while _canvas_png(page) == before:
        assert time.monotonic() - start < 30, "the epoch slider did not redraw the canvas"
        page.wait_for_timeout(100)
    # the page reports the new points drawn (deferred_code.on_redrawn): the views beside the map wait for it (state.after_the_map)
    while not redrawn and time.monotonic() - start < 30:
        page.wait_for_timeout(100)
    assert redrawn and redrawn[-1][1] == "drawn" and redrawn[-1][0] >= 2, redrawn

    # jupyter-scatter animates the move to the new epoch: look for samples once the canvas holds still
    still, last, start = 0, _canvas_png(page), time.monotonic()
    while still < 2 and time.monotonic() - start < 20:
        page.wait_for_timeout(250)
        now = _canvas_png(page)
        still, last = (still + 1 if now == last else 0), now
    box = page.locator(CANVAS).first.bounding_box()
    spots = _sample_spots(last, box)
    assert spots, "no drawn sample to click"
    for i, (x, y) in enumerate(spots[:: max(1, len(spots) // 12)][:12]):  # spread over the map
        _point_and_click(page, x, y)
        try:  # the first answer may wait for a busy kernel; a miss (or a center's edge) tries the next spot
            page.wait_for_selector(".dmlviz-query", timeout=15_000 if i == 0 else 4_000)
            break
        except PlaywrightTimeout:
            continue
    if not page.locator(".dmlviz-query").count():
        shot(page, "explorer-large-map-no-click")  # for a failure's report
        (OUTPUT / "screenshots" / "explorer-large-map-no-click-canvas.png").write_bytes(_canvas_png(page))
    camera = page.evaluate(CAMERA)
    assert page.locator(".dmlviz-query").count(), f"no click selected a sample (tried {spots[:12]}; camera {camera}; console errors: {page_log.errors})"
    assert _ink(_canvas_png(page)) > 2000, f"the map went blank after the click (camera {page.evaluate(CAMERA)})"
    page.wait_for_function("() => document.querySelectorAll('.dmlviz-neighbor-list .dmlviz-tile').length > 0", timeout=20_000)
    shot(page, "explorer-large-map-clicked")
    assert page_log.external == [] and page_log.errors == []
    assert not [url for url in page_log.urls if "jupyterlab-plotly" in url]  # the unused extension's 4.8 MB (serve.py)
    # jupyter-scatter's and plotly's modules came as files the server serves, not in the widget state (deferred_code.py)
    assert len({url.split("?")[0] for url in page_log.urls if MODULES in url}) == 2


COMPARE_PLOT = ".dmlviz-compare .dmlviz-map .js-plotly-plot"


PLAYGROUND = ".dmlviz-playground .js-plotly-plot"


def test_the_playground_plays_live_in_the_page(page, page_log, server, shot):
    page.goto(f"{server}/voila/render/playground.ipynb", timeout=120_000)
    page.wait_for_selector(".dmlviz-playground", timeout=120_000)
    page.wait_for_function(f"(document.querySelector('{PLAYGROUND}') || {{}}).data && document.querySelector('{PLAYGROUND}').data[1].x"
                           " && document.querySelector('{PLAYGROUND}').data[1].x.length > 0".replace("{PLAYGROUND}", PLAYGROUND), timeout=60_000)
    before = page.evaluate(f"Array.from(document.querySelector('{PLAYGROUND}').data[1].x).slice(0, 50)")
    assert page.evaluate(f"document.querySelector('{PLAYGROUND}').data[1].x.length") == 1000
    page.locator(".dmlviz-play").click()
    page.wait_for_function("document.querySelector('.dmlviz-playground-stats').innerText.includes('frames/s sent')", timeout=30_000)
    time.sleep(2)
    after = page.evaluate(f"Array.from(document.querySelector('{PLAYGROUND}').data[1].x).slice(0, 50)")
    assert after != before  # the drawn points moved
    stats = page.locator(".dmlviz-playground-stats").inner_text()
    step = int(stats.split("step ")[1].split(" ")[0])
    assert step > 10, stats
    shot(page, "playground-playing")
    page.locator(".dmlviz-play").click()  # pause
    page.locator(".dmlviz-preset select").select_option(label="Hard triplet mining (collapse)")
    page.wait_for_function("document.querySelector('.dmlviz-lesson') && document.querySelector('.dmlviz-lesson').innerText.includes('collapses')",
                           timeout=30_000)
    page.wait_for_function("document.querySelector('.dmlviz-playground-stats').innerText.includes('mining=hard')", timeout=30_000)
    assert page_log.external == [] and page_log.errors == []
