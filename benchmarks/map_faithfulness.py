"""How faithful the maps of the demo runs are: map-ownership agreement and k-NN preservation, PCA and UMAP.

Run: python benchmarks/map_faithfulness.py [--runs-dir runs]
Trains the demo runs there if they are missing (as `make demo` does), lays out every epoch
with PCA and UMAP (cached in the runs), and prints, per run and method, the figures of the
first and last epoch and the lowest agreement over all epochs. Writes
benchmarks/results/map_faithfulness.json.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np


def main() -> None:
    """Print and save the faithfulness figures of the demo runs' maps."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from dmlviz.demo import demo_runs
    from dmlviz.projection import Projector

    results = {}
    for name, run in demo_runs(args.runs_dir, progress=False).items():
        for method in ("pca", "umap"):
            projector = Projector(run, method)
            projector.compute(progress=False)
            layouts = [projector.cached(e) for e in run.epochs]
            first, last = layouts[0], layouts[-1]
            agreement = [lay.ownership for lay in layouts if lay.ownership == lay.ownership]
            row = {
                "agreement_first": first.ownership,
                "agreement_last": last.ownership,
                "agreement_min": float(np.min(agreement)) if agreement else float("nan"),
                "knn_preservation_first": first.quality,
                "knn_preservation_last": last.quality,
                "epochs": [run.epochs[0], run.epochs[-1]],
            }
            results[f"{run.name}/{method}"] = row
            print(
                f"{run.name:32s} {method:4s} map-ownership agreement epoch {run.epochs[0]}: {row['agreement_first']:.3f}, "
                f"epoch {run.epochs[-1]}: {row['agreement_last']:.3f} (lowest {row['agreement_min']:.3f}); "
                f"k-NN preservation {row['knn_preservation_first']:.3f} → {row['knn_preservation_last']:.3f}",
                flush=True,
            )
    out = Path(__file__).parent / "results" / "map_faithfulness.json"
    out.parent.mkdir(exist_ok=True)
    clean = {key: {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for key, row in results.items()}
    out.write_text(json.dumps(clean, indent=1) + "\n")


if __name__ == "__main__":
    main()
