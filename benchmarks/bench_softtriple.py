"""Benchmark: dmlviz SoftTriple vs pytorch-metric-learning SoftTripleLoss + SparseCentersRegularizer.

B=256 embeddings of D=128, C=100 classes, K=10 centers per class, the paper's defaults
(la=20, gamma=0.1, margin=0.01, tau=0.2). One step = forward + backward (gradients w.r.t.
the embeddings and the centers). Same inputs and centers for both, same process, calls
interleaved (order alternating), warm-up first, then the median of many repeats.
Writes benchmarks/results/softtriple_<device>.json.

    python benchmarks/bench_softtriple.py [--device cpu|cuda] [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytorch_metric_learning  # noqa: E402
from pytorch_metric_learning.losses import SoftTripleLoss  # noqa: E402
from pytorch_metric_learning.regularizers import SparseCentersRegularizer  # noqa: E402

from dmlviz.losses import SoftTriple  # noqa: E402

B, D, C, K = 256, 128, 100, 10
LA, GAMMA, MARGIN, TAU = 20.0, 0.1, 0.01, 0.2
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    torch.manual_seed(SEED)
    theirs = SoftTripleLoss(
        C, D, centers_per_class=K, la=LA, gamma=GAMMA, margin=MARGIN,
        weight_regularizer=SparseCentersRegularizer(C, K), weight_reg_weight=TAU,
    ).to(device)
    ours = SoftTriple(C, D, centers_per_class=K, la=LA, gamma=GAMMA, tau=TAU, margin=MARGIN).to(device)
    with torch.no_grad():
        ours.weight.copy_(theirs.fc)
    x = torch.randn(B, D, device=device, requires_grad=True)
    y = torch.randint(0, C, (B,), device=device)

    def step(loss: torch.nn.Module, centers: torch.nn.Parameter) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        value = loss(x, y)
        grads = torch.autograd.grad(value, [x, centers])
        return value, grads

    runs = {"ours": lambda: step(ours, ours.weight), "theirs": lambda: step(theirs, theirs.fc)}

    # agreement on this very input (the regularizer's eps differs: 1e-5 vs finfo.tiny)
    v_ours, (gx_ours, gw_ours) = runs["ours"]()
    v_pml, (gx_pml, gw_pml) = runs["theirs"]()
    diffs = {
        "loss": abs(v_ours.item() - v_pml.item()),
        "grad_embeddings": float((gx_ours - gx_pml).abs().max()),
        "grad_centers": float((gw_ours - gw_pml).abs().max()),
    }

    for _ in range(args.warmup):
        for fn in runs.values():
            fn()
    sync()

    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    order = ["ours", "theirs"]
    for i in range(args.repeats):
        for name in order if i % 2 == 0 else order[::-1]:
            sync()
            t0 = time.perf_counter()
            runs[name]()
            sync()
            times[name].append((time.perf_counter() - t0) * 1e3)

    stats = {
        name: {
            "median_ms": statistics.median(ts),
            "min_ms": min(ts),
            "p25_ms": statistics.quantiles(ts, n=4)[0],
            "p75_ms": statistics.quantiles(ts, n=4)[2],
        }
        for name, ts in times.items()
    }
    ratio = stats["ours"]["median_ms"] / stats["theirs"]["median_ms"]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()

    print(f"SoftTriple forward+backward, B={B} D={D} C={C} K={K}, la={LA} gamma={GAMMA} margin={MARGIN} tau={TAU}")
    print(f"device={args.device} ({device_name}), torch threads={torch.get_num_threads()}, "
          f"warm-up={args.warmup}, repeats={args.repeats}")
    print(f"{'impl':<8}{'median ms':>11}{'min ms':>10}{'p25 ms':>10}{'p75 ms':>10}")
    for name, s in stats.items():
        print(f"{name:<8}{s['median_ms']:>11.3f}{s['min_ms']:>10.3f}{s['p25_ms']:>10.3f}{s['p75_ms']:>10.3f}")
    print(f"ratio ours/theirs (median) = {ratio:.3f}")
    print("max |ours - pml|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))

    out = {
        "benchmark": "SoftTriple forward+backward vs pytorch-metric-learning SoftTripleLoss + SparseCentersRegularizer",
        "device": args.device,
        "device_name": device_name,
        "batch": B,
        "dim": D,
        "classes": C,
        "centers_per_class": K,
        "params": {"la": LA, "gamma": GAMMA, "margin": MARGIN, "tau": TAU},
        "warmup": args.warmup,
        "repeats": args.repeats,
        "stats_ms": stats,
        "ratio_ours_over_theirs": ratio,
        "max_abs_diff": diffs,
        "runs_ms": times,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pytorch_metric_learning": pytorch_metric_learning.__version__,
        },
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch_threads": torch.get_num_threads()},
    }
    path = ROOT / "benchmarks" / "results" / f"softtriple_{args.device}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
