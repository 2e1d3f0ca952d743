"""Benchmark: NMI's exact path (KMeans, n_init=3) vs its scalable path (MiniBatchKMeans, <= 1,000 whole classes).

6,000 x 128 L2-normalised embeddings around 1,000 class means (6 per class, noise 0.6), and
a larger 20,000 x 128 set with 4,000 classes where the scalable path also subsamples classes.
One run each. Writes benchmarks/results/nmi.json.

    python benchmarks/bench_nmi.py
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmlviz.eval import nmi  # noqa: E402

logger = logging.getLogger("bench_nmi")


def blobs(classes: int, per_class: int, dim: int = 128, noise: float = 0.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings [classes * per_class, dim] around random class means, and their labels [classes * per_class]."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), per_class)
    return (rng.normal(size=(classes, dim))[y] + noise * rng.normal(size=(len(y), dim))).astype(np.float32), y


def main() -> None:
    """Time both paths on each size, log and write the figures."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "cases": []}
    for classes, per_class in ((1000, 6), (4000, 5)):
        x, y = blobs(classes, per_class)
        case = {"samples": len(y), "dim": x.shape[1], "classes": classes}
        for method in ("kmeans", "minibatch"):
            start = time.perf_counter()
            value = nmi(x, y, method=method)
            case[method] = {"seconds": round(time.perf_counter() - start, 3), "nmi": round(value, 4)}
        case["speedup"] = round(case["kmeans"]["seconds"] / case["minibatch"]["seconds"], 2)
        logger.info("%s", case)
        results["cases"].append(case)
    out = ROOT / "benchmarks" / "results" / "nmi.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    logger.info("written to %s", out)


if __name__ == "__main__":
    main()
