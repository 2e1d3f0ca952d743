"""Seconds per epoch of the demo (mnist5k-pairs, linear 64-d head): training and recording, per loss.

Run: python benchmarks/bench_epoch.py [--epochs 10] [--device auto]
Writes benchmarks/results/epoch_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import dmlviz
from dmlviz.demo import DEMO_RUNS, demo_settings
from dmlviz.training import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "threads": torch.get_num_threads(), "epochs": args.epochs, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in DEMO_RUNS:
            start = time.perf_counter()
            run = dmlviz.train(**demo_settings(name, args.epochs), out=Path(tmp) / name, device=device, progress=False)
            wall = time.perf_counter() - start
            m = run.metrics.iloc[1:]
            results["runs"][name] = {
                "train_seconds_per_epoch": float(m["seconds"].median()),
                "record_seconds_per_epoch": float(m["record_seconds"].median()),
                "wall_seconds_total": wall,
            }
    print(f"{'loss':<12}{'train s/epoch':>15}{'record s/epoch':>16}{'total s':>10}   device {results['device']}")
    for name, r in results["runs"].items():
        print(f"{name:<12}{r['train_seconds_per_epoch']:>15.3f}{r['record_seconds_per_epoch']:>16.3f}{r['wall_seconds_total']:>10.1f}")
    out = Path(__file__).parent / "results" / f"epoch_{device.type}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
