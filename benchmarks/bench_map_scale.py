"""Maps of 100,000 points in Debian's Chromium: page request → points drawn, epoch switch, click → neighbours.

Above 20,000 points the map is drawn by jupyter-scatter (dmlviz.widgets.point_canvas). Each figure
is measured two ways: by screenshots in a loop (the browser as a user's screen shows it; each
figure includes up to one screenshot's time, and a screenshot waits for any long task the page
is running), and by the page itself, which reads the map's 2-D canvas once per animation frame
(``points_on_page_s``, ``epoch_switch_on_page_s``: from navigation start, or from the key press,
to the first frame that holds the points or differs; see WATCH).

Goals (issue 8): page → points <= 5 s, epoch switch <= 0.5 s, with cached layouts.
Trains (once) a run whose probe holds 100,000 samples — synthetic data, 1,000 classes × 2
modes, 16-d, linear head, SoftTriple K=2, 3 epochs — caches its PCA layouts, serves it with
`dmlviz serve` (a preheated kernel) and drives the explorer page with Playwright.

Run: python benchmarks/bench_map_scale.py [--runs-dir /tmp/dmlviz-bench-100k] [--points 100000]
Writes benchmarks/results/map_scale.json. With --against REV it serves REV's code too (a temporary
git worktree, dmlviz imported from it) and alternates page loads between the two servers, so a
change is measured as a ratio within one run: benchmarks/results/map_scale_against.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_dashboard import ARGS  # noqa: E402
from serving import revision_tree, serve  # noqa: E402

CANVAS = ".dmlviz-point-canvas canvas"

# The page's own view of the map canvas, next to the screenshots. A screenshot needs a frame from
# the page's main thread, so one asked for while the page runs a long task (evaluating plotly's
# 5 MB module takes 1.5-2.5 s here, and it starts when the map's points are drawn) comes back
# only after it: the screenshot loop can see the points up to that long later than they were
# drawn. jupyter-scatter copies each frame into the map's 2-D canvas, which the page can read:
# this script checks it once per animation frame (at most one frame late), with the same
# criterion as `_drawn` (at least 1% of the pixels not white, seen over the white page): `pointsAt`, the page clock
# (ms since navigation start) of the first frame that holds points; after `arm()`, `changedAt`,
# the first frame whose pixels differ from the armed frame's, and `keyAt`, the last key press.
WATCH = r"""
(() => {
  const w = (window.__dmlvizCanvas = { pointsAt: null, keyAt: null, changedAt: null, armed: null });
  const look = () => {
    const canvas = document.querySelector(".dmlviz-point-canvas canvas");
    if (!canvas || !canvas.width || !canvas.height) return null;
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0, seen = 0, hash = 0;
    for (let i = 0; i < data.length; i += 4 * 3) {  // every third pixel
      const alpha = data[i + 3] / 255;  // as the page shows it: over white (a canvas starts transparent)
      const luma = alpha * (0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]) + (1 - alpha) * 255;
      if (luma < 240) inked += 1;
      seen += 1;
      hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2] + 17 * data[i + 3]) | 0;
    }
    return { points: inked / seen > 0.01, hash };
  };
  const step = () => {
    if (w.pointsAt === null || w.armed !== null) {
      const now = performance.now();
      const seen = look();
      if (seen && w.pointsAt === null && seen.points) w.pointsAt = now;
      if (seen && w.armed !== null && w.changedAt === null) {
        if (w.armed === undefined) w.armed = seen.hash;
        else if (seen.hash !== w.armed) { w.changedAt = now; w.armed = null; }
      }
    }
    requestAnimationFrame(step);
  };
  w.arm = () => { w.changedAt = null; w.armed = undefined; };
  document.addEventListener("keydown", (e) => { w.keyAt = e.timeStamp; }, true);
  requestAnimationFrame(step);
  // where a switch goes: when each large message reaches the page, and each copy of jupyter-scatter's frame into the map
  w.messages = []; w.copies = [];
  const Socket = window.WebSocket;
  window.WebSocket = function (...args) {
    const socket = new Socket(...args);
    socket.addEventListener("message", (e) => {
      const size = typeof e.data === "string" ? e.data.length : (e.data.byteLength ?? e.data.size ?? 0);
      if (size > 100000) w.messages.push(performance.now());
    });
    return socket;
  };
  window.WebSocket.prototype = Socket.prototype;
  Object.assign(window.WebSocket, Socket);
  const drawImage = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    const start = performance.now(), result = drawImage.apply(this, args);
    if (this.canvas.closest && this.canvas.closest(".dmlviz-point-canvas")) w.copies.push([start, performance.now()]);
    return result;
  };
})();
"""


# One switch taken apart, on the page clock (s after the key press): the first large message (> 100 kB: the new points)
# reaching the page (so the kernel's redraw and the server), and the copy of jupyter-scatter's frame into the map canvas
# that the change was seen in (its start, and how long it took: the WebGL renderer's work for the frame, which waits for
# it; in SwiftShader that is the CPU drawing 100,000 points).
SWITCH_PARTS = """() => {
  const w = window.__dmlvizCanvas, key = w.keyAt, changed = w.changedAt;
  const message = w.messages.find((t) => t > key);
  const copy = w.copies.filter(([start, end]) => start > key && end <= changed).pop();
  return { points_message_s: message === undefined ? null : (message - key) / 1000,
           frame_copy_start_s: copy ? (copy[0] - key) / 1000 : null, frame_copy_s: copy ? (copy[1] - copy[0]) / 1000 : null };
}"""


def _changed(page, box, before: bytes, limit: float = 30.0) -> float:
    """Seconds until the canvas region's pixels differ from ``before`` (screenshots in a loop)."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if page.screenshot(clip=box) != before:
            return time.perf_counter() - start
    raise TimeoutError("the map did not change")


def _drawn(png: bytes) -> bool:
    """Whether a screenshot of the canvas shows points (at least 1% of its pixels not white)."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return (pixels < 240).mean() > 0.01


def _measure(page, url: str, switches: int, pause: float = 0.8) -> dict:
    """Page → first points on the canvas; page → settled (every view drawn, the page idle); then, on the settled page,
    epoch switches (slider key press → pixels change) and click → neighbours."""
    start = time.perf_counter()
    page.add_init_script(WATCH)
    page.goto(url, timeout=180_000)
    page.wait_for_selector(CANVAS, timeout=180_000)
    box = page.locator(CANVAS).first.bounding_box()
    while not _drawn(page.screenshot(clip=box)):
        if time.perf_counter() - start > 180:
            raise TimeoutError("no points were drawn")
    load = time.perf_counter() - start
    page.wait_for_function("() => window.__dmlvizCanvas.pointsAt !== null", timeout=60_000)
    on_page = page.evaluate("() => window.__dmlvizCanvas.pointsAt") / 1000
    # the page settles: the views beside the map drawn (plotly's figures), the main thread idle
    page.wait_for_selector(".dmlviz-explorer .js-plotly-plot", state="attached", timeout=180_000)
    for _ in range(2):
        page.evaluate("() => new Promise((resolve) => requestIdleCallback(resolve, { timeout: 30000 }))")
    settled = time.perf_counter() - start
    page.wait_for_timeout(500)
    shots = []
    for _ in range(5):  # what one screenshot of the canvas costs: the resolution of the figures below
        t = time.perf_counter()
        page.screenshot(clip=box)
        shots.append(time.perf_counter() - t)
    handle = page.locator(".dmlviz-epoch .noUi-handle").first
    epoch_times, epoch_on_page, parts = [], [], []
    for i in range(switches):
        handle.focus()
        before = page.screenshot(clip=box)
        page.evaluate("() => window.__dmlvizCanvas.arm()")
        page.wait_for_function("() => window.__dmlvizCanvas.armed !== undefined", timeout=10_000)  # the armed frame is read
        t = time.perf_counter()
        page.keyboard.press("ArrowLeft" if (i // 3) % 2 == 0 else "ArrowRight")  # 3 → 2 → 1 → 0 → 1 → 2 → 3: new epochs, then seen ones
        epoch_times.append(time.perf_counter() - t + _changed(page, box, before))
        page.wait_for_function("() => window.__dmlvizCanvas.changedAt !== null", timeout=30_000)
        epoch_on_page.append(page.evaluate("() => (window.__dmlvizCanvas.changedAt - window.__dmlvizCanvas.keyAt) / 1000"))
        parts.append(page.evaluate(SWITCH_PARTS))
        page.wait_for_timeout(pause * 1000)
    click_times = []
    for i in range(switches):
        x, y = box["x"] + box["width"] * (0.35 + 0.06 * i), box["y"] + box["height"] * 0.5
        marker = page.evaluate("() => { const q = document.querySelector('.dmlviz-query'); return q ? q.textContent : ''; }")
        page.mouse.move(x, y, steps=8)  # as a hand moves: a click from afar in one jump can pan jupyter-scatter's camera away
        page.wait_for_timeout(150)
        t = time.perf_counter()
        page.mouse.click(x, y)
        try:
            page.wait_for_function("(m) => { const q = document.querySelector('.dmlviz-query'); return q && q.textContent !== m; }", arg=marker, timeout=10_000)
            click_times.append(time.perf_counter() - t)
        except Exception:  # the click hit no point
            print("a click selected no sample; not counted", file=sys.stderr)
    return {"load_s": load, "points_on_page_s": on_page, "settled_s": settled, "epoch_switch_s": epoch_times,
            "epoch_switch_on_page_s": epoch_on_page, "epoch_switch_parts": parts, "click_to_neighbours_s": click_times, "screenshot_s": statistics.median(shots)}


def _run(runs_dir: Path, points: int) -> Path:
    import dmlviz
    from dmlviz.data import synthetic
    from dmlviz.projection import Projector

    path = runs_dir / f"synthetic{points // 1000}k"
    if not (path / "run.json").exists() or dmlviz.load_run(path).status != "finished":
        data = synthetic(classes=points // 100, modes_per_class=2, dim=16, samples_per_mode=50, seed=0)
        dmlviz.train(data, loss="softtriple", centers_per_class=2, embedding_dim=16, epochs=3, batch_size=512, split="samples",
                     probe_size=points, out=path, progress=False, overwrite=True)
    start = time.perf_counter()
    Projector(dmlviz.load_run(path), "pca").compute()
    print(f"PCA layouts of {len(dmlviz.load_run(path).epochs)} epochs ready in {time.perf_counter() - start:.1f} s")
    return path


def _median(values: list) -> float | None:
    """The median of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _summary(loads: list[dict]) -> dict:
    return {
        "load_s_median": statistics.median(r["load_s"] for r in loads),
        "points_on_page_s_median": statistics.median(r["points_on_page_s"] for r in loads),
        "settled_s_median": statistics.median(r["settled_s"] for r in loads),
        "epoch_switch_s_median": statistics.median(t for r in loads for t in r["epoch_switch_s"]),
        "epoch_switch_on_page_s_median": statistics.median(t for r in loads for t in r["epoch_switch_on_page_s"]),
        **{f"epoch_switch_{part}_median": _median([p[part] for r in loads for p in r.get("epoch_switch_parts", [])])
           for part in ("points_message_s", "frame_copy_start_s", "frame_copy_s")},
        "click_to_neighbours_s_median": statistics.median(t for r in loads for t in r["click_to_neighbours_s"]) if any(r["click_to_neighbours_s"] for r in loads) else None,
        "screenshot_s_median": statistics.median(r["screenshot_s"] for r in loads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="/tmp/dmlviz-bench-100k")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--switches", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.8, help="seconds between an epoch switch's frame and the next key press")
    parser.add_argument("--warmup", type=int, default=1, help="page loads per server before the measured ones (not counted)")
    parser.add_argument("--against", default=None, metavar="REV",
                        help="also serve git revision REV's code (a temporary worktree) and alternate page loads between the two "
                             "(the machine is noisy: a ratio measured in one run); writes map_scale_against.json")
    parser.add_argument("--screenshot", default=None, help="save a screenshot of the last page here")
    parser.add_argument("--out", default=None, help="results file name in benchmarks/results (default map_scale.json, "
                                                    "or map_scale_against.json with --against)")
    args = parser.parse_args()
    runs_dir = Path(args.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = _run(runs_dir, args.points)
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:
        arms = {"this": None}
        if args.against:
            tree, against_rev = stack.enter_context(revision_tree(args.against))
            arms["against"] = str(tree)
        loads: dict[str, list[dict]] = {arm: [] for arm in arms}
        servers = {arm: serve(runs_dir, env={"PYTHONPATH": code} if code else None) for arm, code in arms.items()}  # dmlviz from that checkout
        try:
            time.sleep(60 if args.against else 25)  # the preheated kernels import dmlviz
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                for arm in list(arms) * args.warmup:  # not counted: a run's first page load is the slowest (caches, the fresh browser)
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    result = _measure(page, f"{servers[arm][1]}/voila/render/explorer.ipynb?run={path.name}", 0)
                    print(f"{arm} (warm-up, not counted): page → points {result['load_s']:.2f} s", flush=True)
                    page.close()
                    time.sleep(25)
                for i in range(args.repeats):
                    for arm in (list(arms) if i % 2 == 0 else list(arms)[::-1]):
                        page = browser.new_page(viewport={"width": 1400, "height": 1000})
                        result = _measure(page, f"{servers[arm][1]}/voila/render/explorer.ipynb?run={path.name}", args.switches, args.pause)
                        result["points_drawn"] = args.points if page.locator(CANVAS).count() else None
                        loads[arm].append(result)
                        print(f"{arm}: page → points {result['load_s']:.2f} s (on the page {result['points_on_page_s']:.2f} s), settled {result['settled_s']:.2f} s", flush=True)
                        if args.screenshot and arm == "this" and i == args.repeats - 1:
                            page.wait_for_timeout(1500)
                            page.screenshot(path=args.screenshot, full_page=True)
                        page.close()
                        time.sleep(25)  # Voila refills its pool of one preheated kernel
                browser.close()
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait()
    results = {"points": args.points, "warmup_loads": args.warmup, "points_drawn": loads["this"][-1]["points_drawn"], **_summary(loads["this"]),
               "goals": {"load_s": 5.0, "epoch_switch_s": 0.5}, "raw": loads["this"]}
    print(f"{args.points:,} points ({results['points_drawn']:,} drawn): page → points {results['load_s_median']:.2f} s "
          f"(on the page {results['points_on_page_s_median']:.2f} s), epoch switch {results['epoch_switch_s_median']:.3f} s "
          f"(on the page {results['epoch_switch_on_page_s_median']:.3f} s; one screenshot: {results['screenshot_s_median']:.3f} s), "
          f"click → neighbours {results['click_to_neighbours_s_median']:.3f} s")
    if results["epoch_switch_frame_copy_s_median"] is not None:
        print(f"an epoch switch, on the page: the new points arrive {results['epoch_switch_points_message_s_median']:.3f} s after the key; "
              f"the frame holding them is copied from {results['epoch_switch_frame_copy_start_s_median']:.3f} s, "
              f"taking {results['epoch_switch_frame_copy_s_median']:.3f} s")
    name = "map_scale.json"
    if args.against:
        against = _summary(loads["against"])
        results = {"points": args.points, "warmup_loads": args.warmup, "against": against_rev, "this": {**_summary(loads["this"]), "raw": loads["this"]},
                   "against_code": {**against, "raw": loads["against"]},
                   "load_ratio_this_over_against": results["load_s_median"] / against["load_s_median"],
                   "epoch_switch_ratio_this_over_against": results["epoch_switch_s_median"] / against["epoch_switch_s_median"],
                   "points_on_page_ratio_this_over_against": results["points_on_page_s_median"] / against["points_on_page_s_median"],
                   "epoch_switch_on_page_ratio_this_over_against": results["epoch_switch_on_page_s_median"] / against["epoch_switch_on_page_s_median"]}
        print(f"against {against_rev}: page → points {against['load_s_median']:.2f} s (ratio {results['load_ratio_this_over_against']:.2f}; "
              f"on the page {against['points_on_page_s_median']:.2f} s, ratio {results['points_on_page_ratio_this_over_against']:.2f}), "
              f"epoch switch {against['epoch_switch_s_median']:.3f} s (ratio {results['epoch_switch_ratio_this_over_against']:.2f}; "
              f"on the page {against['epoch_switch_on_page_s_median']:.3f} s, ratio {results['epoch_switch_on_page_ratio_this_over_against']:.2f})")
        name = "map_scale_against.json"
    name = args.out or name
    (Path(__file__).parent / "results" / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
