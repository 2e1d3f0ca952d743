"""Benchmark: dmlviz retrieval_metrics vs pytorch-metric-learning's AccuracyCalculator.

20,000 x 128 embeddings around 100 class means; same three metrics (P@1, R-precision,
MAP@R), k="max_bin_count", cosine k-NN in torch on CPU. Runs alternate, best of 3 each.
Writes benchmarks/results/retrieval.json.

    python benchmarks/bench_retrieval.py
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytorch_metric_learning  # noqa: E402
from pytorch_metric_learning.distances import CosineSimilarity  # noqa: E402
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator  # noqa: E402
from pytorch_metric_learning.utils.inference import CustomKNN  # noqa: E402

from dmlviz.eval.retrieval import retrieval_metrics  # noqa: E402

N, D, C, REPEATS, SEED = 20_000, 128, 100, 3, 0
PAIRS = {"precision@1": "precision_at_1", "r_precision": "r_precision", "map@r": "mean_average_precision_at_r"}


def make_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    means = rng.normal(size=(C, D))
    y = rng.integers(0, C, size=N)
    x = (means[y] + 1.5 * rng.normal(size=(N, D))).astype(np.float32)
    return x, y


def main() -> None:
    x, y = make_data()
    calc = AccuracyCalculator(
        include=tuple(PAIRS.values()),
        k="max_bin_count",
        knn_func=CustomKNN(CosineSimilarity()),
        device=torch.device("cpu"),
    )

    def ours() -> dict[str, float]:
        return retrieval_metrics(x, y, ks=(1,), device="cpu")

    def theirs() -> dict[str, float]:
        return calc.get_accuracy(x, y)

    ours(), theirs()  # warm-up
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    results: dict[str, dict[str, float]] = {}
    for _ in range(REPEATS):
        for name, fn in (("ours", ours), ("theirs", theirs)):
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)

    best = {name: min(ts) for name, ts in times.items()}
    ratio = best["ours"] / best["theirs"]
    max_diff = max(abs(results["ours"][a] - results["theirs"][b]) for a, b in PAIRS.items())

    print(f"retrieval metrics, N={N} D={D} classes={C}, torch threads={torch.get_num_threads()}")
    print(f"{'impl':<8}{'best s':>10}{'all runs s':>30}")
    for name in ("ours", "theirs"):
        runs = ", ".join(f"{t:.3f}" for t in times[name])
        print(f"{name:<8}{best[name]:>10.3f}{runs:>30}")
    print(f"ratio ours/theirs = {ratio:.3f}   max |metric diff| = {max_diff:.2e}")
    for a, b in PAIRS.items():
        print(f"  {a:<12} ours {results['ours'][a]:.6f}  pml {results['theirs'][b]:.6f}")

    out = {
        "benchmark": "retrieval_metrics vs pytorch-metric-learning AccuracyCalculator",
        "n": N,
        "dim": D,
        "classes": C,
        "repeats": REPEATS,
        "best_s": best,
        "runs_s": times,
        "ratio_ours_over_theirs": ratio,
        "max_abs_metric_diff": max_diff,
        "metrics_ours": results["ours"],
        "metrics_pml": results["theirs"],
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pytorch_metric_learning": pytorch_metric_learning.__version__,
            "numpy": np.__version__,
        },
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch_threads": torch.get_num_threads()},
    }
    path = ROOT / "benchmarks" / "results" / "retrieval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
