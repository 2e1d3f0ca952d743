"""Dashboard speed in Debian's Chromium: page request → interactive map, epoch switch, click → neighbours.

Run: python benchmarks/bench_dashboard.py [--run runs/mnist5k-pairs-softtriple] [--repeats 5]
Trains the demo SoftTriple run (5,000 probe points) if it is missing, caches its PCA layouts,
serves it with `dmlviz serve` (preheated kernels, then without), and drives the page with
Playwright. Writes benchmarks/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from serving import serve

READY = "(sel) => { const gd = document.querySelector(sel); return !!(gd && gd.data && gd.data[0].x && gd.data[0].x.length > 0); }"
PLOT = ".dmlviz-map .js-plotly-plot"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--enable-unsafe-swiftshader"]


def _serve(runs_dir: Path, preheat: bool) -> tuple[subprocess.Popen, str]:
    return serve(runs_dir, *([] if preheat else ["--no-preheat"]))


def _measure(page, url: str, switches: int) -> dict:
    start = time.perf_counter()
    page.goto(url, timeout=180_000)
    page.wait_for_function(READY, arg=PLOT, timeout=180_000)
    load = time.perf_counter() - start
    epoch_times = []
    handle = page.locator(".dmlviz-epoch .noUi-handle").first
    handle.focus()
    for _ in range(switches):
        before = page.evaluate("(sel) => Array.from(document.querySelector(sel).data[0].x.slice(0, 5))", PLOT)
        t = time.perf_counter()
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("([sel, b]) => JSON.stringify(Array.from(document.querySelector(sel).data[0].x.slice(0, 5))) !== JSON.stringify(b)", arg=[PLOT, before], timeout=60_000)
        epoch_times.append(time.perf_counter() - t)
    click_times = []
    for i in range(switches):
        xy = page.evaluate(
            """([sel, i]) => { const gd = document.querySelector(sel); const fl = gd._fullLayout; const r = gd.getBoundingClientRect();
                return [r.left + fl._size.l + fl.xaxis.l2p(gd.data[0].x[i]), r.top + fl._size.t + fl.yaxis.l2p(gd.data[0].y[i])]; }""",
            [PLOT, 997 * (i + 1) % 4999],
        )
        marker = page.evaluate("() => { const q = document.querySelector('.dmlviz-query'); return q ? q.textContent : ''; }")
        t = time.perf_counter()
        page.mouse.move(xy[0], xy[1])
        page.mouse.click(xy[0], xy[1])
        try:
            page.wait_for_function("(m) => { const q = document.querySelector('.dmlviz-query'); return q && q.textContent !== m && document.querySelectorAll('.dmlviz-neighbor-list .dmlviz-tile').length > 0; }", arg=marker, timeout=20_000)
            click_times.append(time.perf_counter() - t)
        except Exception:  # the click landed on a marker that is not a sample (a center, the current selection)
            print("a click selected no new sample; not counted", file=sys.stderr)
    return {"load_s": load, "epoch_switch_s": epoch_times, "click_to_neighbours_s": click_times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="runs/mnist5k-pairs-softtriple")
    parser.add_argument("--repeats", type=int, default=3, help="page loads per mode")
    parser.add_argument("--switches", type=int, default=5)
    args = parser.parse_args()
    run_path = Path(args.run)
    if not (run_path / "run.json").exists():
        from dmlviz.demo import demo_runs

        demo_runs(run_path.parent)
    from dmlviz.projection import Projector
    from dmlviz.runs import load_run

    run = load_run(run_path)
    Projector(run, "pca").compute()
    from playwright.sync_api import sync_playwright

    results = {"run": str(run_path), "points": len(run.snapshot(run.epochs[-1])), "epochs": len(run.epochs), "modes": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for preheat in (True, False):
            proc, base = _serve(run_path.parent, preheat)
            try:
                time.sleep(25 if preheat else 0)  # let the preheated kernel finish starting
                loads = []
                for _ in range(args.repeats):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    loads.append(_measure(page, f"{base}/voila/render/explorer.ipynb?run={run_path.name}", args.switches))
                    page.close()
                    if preheat:
                        time.sleep(25)  # Voila refills its pool of one preheated kernel
            finally:
                proc.terminate()
                proc.wait()
            mode = "preheated" if preheat else "cold kernel"
            results["modes"][mode] = {
                "load_s_median": statistics.median(r["load_s"] for r in loads),
                "epoch_switch_s_median": statistics.median(t for r in loads for t in r["epoch_switch_s"]),
                "click_to_neighbours_s_median": statistics.median(t for r in loads for t in r["click_to_neighbours_s"]),
                "raw": loads,
            }
        browser.close()
    print(f"{'mode':<14}{'page → map (s)':>16}{'epoch switch (s)':>18}{'click → neighbours (s)':>24}   goals 5 / 0.3 / 0.5")
    for mode, r in results["modes"].items():
        print(f"{mode:<14}{r['load_s_median']:>16.2f}{r['epoch_switch_s_median']:>18.3f}{r['click_to_neighbours_s_median']:>24.3f}")
    out = Path(__file__).parent / "results" / "dashboard.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
