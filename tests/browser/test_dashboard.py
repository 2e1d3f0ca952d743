"""The explorer dashboard in a real browser: `dmlviz serve`, Debian's Chromium, clicks on the real page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PLOT = ".dmlviz-map .js-plotly-plot"


def _open(page, server, run: str):
    page.goto(f"{server}/voila/render/explorer.ipynb?run={run}", timeout=120_000)
    page.wait_for_selector(PLOT, timeout=120_000)
    page.wait_for_function(f"document.querySelector('{PLOT}').data && document.querySelector('{PLOT}').data[0].x && document.querySelector('{PLOT}').data[0].x.length > 0", timeout=60_000)


def _xs(page):
    return page.evaluate(f"Array.from(document.querySelector('{PLOT}').data[0].x).slice(0, 20)")


def test_map_epochs_neighbours_classes_merge(page, server, browser_runs, shot):
    import dmlviz

    run = dmlviz.load_run(browser_runs / "digits")
    n_points = len(run.snapshot(3))
    _open(page, server, "digits")
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


def test_run_without_images_and_without_centers(page, server, shot):
    _open(page, server, "vectors")
    name = page.evaluate(f"document.querySelector('{PLOT}').data[1].name")
    assert "class means" in name
    shot(page, "explorer-vectors")


def test_unknown_and_escaping_run_names_are_refused(page, server):
    page.goto(f"{server}/voila/render/explorer.ipynb?run=..", timeout=120_000)
    page.wait_for_selector(".dmlviz-run-chooser", timeout=120_000)
    assert "not a plain folder name" in page.locator(".dmlviz-run-chooser").inner_text()
    assert page.locator(PLOT).count() == 0
