"""The kernel's part of an epoch switch on the 100,000-point explorer, this code against another revision.

What the kernel does between the slider's new value and the map's points leaving for the page:
``ExplorerState.epoch = e`` with the explorer built (the map's redraw: snapshot, layout, colours,
center placement, the canvas's colour codes and positions). Views beside the map are left out:
they follow the page's report that the points are drawn (``state.after_the_map``), so here their
scheduled updates never run. The same run as ``bench_map_scale.py`` (trained once, 1,000 classes,
16-d, PCA layouts cached).

Each process builds the explorer and walks epochs 3 → 2 → 1 → 0 → 1 → 2 → 3 (three epochs it has not
shown, then three it has); processes alternate between this tree and REV's (a temporary git
worktree), so the ratio is measured within one run on a noisy machine.

Run: python benchmarks/bench_epoch_redraw.py --against REV [--processes 6]
Writes benchmarks/results/epoch_redraw_against.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serving import revision_tree  # noqa: E402

WALK = [2, 1, 0, 1, 2, 3]  # from the last epoch (3): three first visits, then three revisits

CHILD = r"""
import json, sys, time
import dmlviz
from dmlviz.widgets import state as state_module
from dmlviz.widgets.explorer import Explorer

class Loop:  # a kernel's loop that never runs what is scheduled on it: the views beside the map stay out
    def call_later(self, *args): pass
    def call_soon(self, *args): pass

state_module.kernel_loop = lambda: Loop()
explorer = Explorer(sys.argv[1])
times = []
for epoch in json.loads(sys.argv[2]):
    start = time.perf_counter()
    explorer.state.epoch = epoch
    times.append(time.perf_counter() - start)
print(json.dumps({"code": dmlviz.__file__, "times": times}))
"""


def main() -> None:
    """Alternate processes between this tree and REV's; print and write the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, metavar="REV", help="git revision to compare with (a temporary worktree)")
    parser.add_argument("--processes", type=int, default=6, help="processes per side")
    parser.add_argument("--runs-dir", default="/tmp/dmlviz-bench-100k")
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    if args.processes < 1:
        raise SystemExit(f"--processes must be at least 1, got {args.processes}")
    from bench_map_scale import _run

    runs_dir = Path(args.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = _run(runs_dir, args.points)
    repo = Path(__file__).resolve().parents[1]
    times: dict[str, list[list[float]]] = {"this": [], "against": []}
    with revision_tree(args.against) as (tree, against_rev):
        for i in range(args.processes):
            for arm in (("this", "against") if i % 2 == 0 else ("against", "this")):
                code = tree if arm == "against" else repo
                # run outside both trees: with -c the current folder comes before PYTHONPATH on sys.path
                out = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(WALK)], cwd=tree.parent,
                                     env={**os.environ, "PYTHONPATH": str(code)}, check=True, capture_output=True, text=True).stdout
                reply = json.loads(out.strip().splitlines()[-1])
                if not Path(reply["code"]).resolve().is_relative_to(code.resolve()):
                    raise SystemExit(f"the {arm} side imported dmlviz from {reply['code']}, not from {code}")
                times[arm].append(reply["times"])
                print(f"{arm}: " + " ".join(f"{t * 1000:.0f}" for t in reply["times"]) + " ms", flush=True)

    def summary(walks: list[list[float]]) -> dict:
        return {"first_visit_s_median": statistics.median(t for w in walks for t in w[:3]),
                "revisit_s_median": statistics.median(t for w in walks for t in w[3:]), "raw_s": walks}

    this, against = summary(times["this"]), summary(times["against"])
    result = {"points": args.points, "walk": WALK, "processes_per_side": args.processes, "against": against_rev,
              "this": this, "against_code": against,
              "first_visit_ratio_this_over_against": this["first_visit_s_median"] / against["first_visit_s_median"],
              "revisit_ratio_this_over_against": this["revisit_s_median"] / against["revisit_s_median"]}
    print(f"kernel's epoch redraw, {args.points:,} points: first visit {this['first_visit_s_median'] * 1000:.0f} ms against "
          f"{against['first_visit_s_median'] * 1000:.0f} ms ({against_rev}; ratio {result['first_visit_ratio_this_over_against']:.2f}), "
          f"revisit {this['revisit_s_median'] * 1000:.0f} ms against {against['revisit_s_median'] * 1000:.0f} ms "
          f"(ratio {result['revisit_ratio_this_over_against']:.2f})")
    out = Path(__file__).parent / "results" / "epoch_redraw_against.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
