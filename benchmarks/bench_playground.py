"""The playground's frame rate in Debian's Chromium: frames drawn per second while it plays, at 1,000 points.

Run: python benchmarks/bench_playground.py [--seconds 10] [--points 1000] [--dims 2 3]
Serves an empty runs folder with `dmlviz serve`, opens playground.ipynb, sets the number of points
and the dimension, presses play, and counts in the page the frames plotly has drawn: a frame is
counted when the samples' trace holds new coordinates at an animation frame (requestAnimationFrame
polling), so it measures what the user sees, not what the kernel sent. The kernel's own rate (frames
sent) is read from the page's stats line. Goal (issue 10): >= 10 frames/s at 1,000 points.
Writes benchmarks/results/playground_chromium.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import tempfile
import time
from pathlib import Path

from serving import serve

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--enable-unsafe-swiftshader"]
PLOT = ".dmlviz-playground .js-plotly-plot"
COUNTER = """(sel) => {
  window.__frames = 0; window.__last = null; window.__stop = false;
  const tick = () => {
    const gd = document.querySelector(sel);
    const x = gd && gd.data && gd.data[1] && gd.data[1].x;
    if (x && x !== window.__last) { if (window.__last !== null) window.__frames += 1; window.__last = x; }
    if (!window.__stop) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""




def _measure(page, base: str, points: int, dim: int, seconds: float) -> dict:
    page.goto(f"{base}/voila/render/playground.ipynb", timeout=180_000)
    page.wait_for_function(f"(() => {{ const g = document.querySelector('{PLOT}'); return !!(g && g.data && g.data[1].x && g.data[1].x.length); }})()",
                           timeout=180_000)
    if dim == 3:
        page.locator(".dmlviz-playground .widget-toggle-button", has_text="sphere").click()
        page.wait_for_function(f"(() => {{ const g = document.querySelector('{PLOT}'); return !!(g && g.data && g.data[1].z && g.data[1].z.length); }})()",
                               timeout=60_000)
    points_box = page.locator(".dmlviz-playground .widget-text", has_text="points").locator("input")
    points_box.fill(str(points))
    points_box.press("Enter")
    page.wait_for_function(f"document.querySelector('{PLOT}').data[1].x.length === {points}", timeout=60_000)
    page.locator(".dmlviz-play").click()
    page.wait_for_function("document.querySelector('.dmlviz-playground-stats').innerText.includes('frames/s sent')", timeout=60_000)
    time.sleep(1.0)  # past the first frames
    page.evaluate(COUNTER, PLOT)
    time.sleep(seconds)
    drawn = page.evaluate("window.__frames")
    page.evaluate("window.__stop = true")
    stats = page.locator(".dmlviz-playground-stats").inner_text()
    sent = float(re.search(r"([\d.]+) frames/s sent", stats).group(1))
    page.locator(".dmlviz-play").click()
    return {"points": points, "dim": dim, "seconds": seconds, "frames_drawn": drawn, "drawn_fps": round(drawn / seconds, 2),
            "kernel_sent_fps": sent}


def main() -> None:
    """Measure and write the results JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "playground_chromium.json"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as runs:
        proc, base = serve(Path(runs))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
                results = []
                for dim in args.dims:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    results.append(_measure(page, base, args.points, dim, args.seconds))
                    print(results[-1], flush=True)
                    page.close()
                browser.close()
        finally:
            proc.terminate()
    out = {"benchmark": "playground frames drawn in Chromium while playing (requestAnimationFrame count of new sample coordinates)",
           "goal": ">= 10 frames/s at 1,000 points", "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, "
           "headless Chromium with SwiftShader (no GPU)", "command": "python benchmarks/bench_playground.py", "results": results}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
