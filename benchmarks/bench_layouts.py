"""Benchmark: dmlviz's warm-started UMAP chain vs umap-learn's AlignedUMAP on the same frames.

Frames: the last ``--epochs`` recorded epochs of a run (default /tmp/proj_run, trained if
missing: mnist5k-pairs, linear head, SoftTriple, 20 epochs, 5,000 probe points, 64-d,
centers [5, 10, 64]), each subsampled to ``--points`` samples. Both methods lay out the same
points: samples + all centers of each epoch (identity relations between consecutive frames
for AlignedUMAP), cosine metric, n_neighbors=15, min_dist=0.1, random_state=0.

Ours is timed end to end through ``Projector(run, "umap").compute()`` on a fresh temporary
copy of the run (so cache writing and the per-epoch k-NN-preservation score are included).
Both run in this one process after a tiny warm-up fit of each (numba functions loaded from
the NUMBA_CACHE_DIR cache / compiled before timing).

Reported (samples only): total seconds and the ratio AlignedUMAP/ours, mean Procrustes
disparity between consecutive frames, mean trustworthiness (sklearn, k=10, cosine, on a fixed
2,000-sample subsample) and mean k-NN preservation. Writes benchmarks/results/layouts.json.

    NUMBA_CACHE_DIR=.cache/numba python benchmarks/bench_layouts.py [--run PATH] [--epochs 20] [--points 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

import torch  # noqa: E402

import dmlviz  # noqa: E402
from dmlviz.projection import Projector, knn_preservation, procrustes_disparity  # noqa: E402
from dmlviz.projection import projector as projector_module  # noqa: E402
from dmlviz.runs import layout as run_layout  # noqa: E402
from dmlviz.runs.files import write_npz  # noqa: E402

DEFAULT_RUN = Path("/tmp/proj_run")
N_NEIGHBORS, MIN_DIST, SEED, TRUST_SUBSAMPLE, TRUST_K = 15, 0.1, 0, 2000, 10
PROBE_ROW_KEYS = ("ids", "labels", "fine_labels", "split", "thumbnails")
EPOCH_ROW_KEYS = ("embeddings", "norms", "assignments")


def ensure_run(path: Path) -> None:
    """Train the reference run at ``path`` if it is not there."""
    if (path / run_layout.RUN_JSON).exists():
        return
    print(f"training the reference run into {path} (about a minute)", flush=True)
    dmlviz.train("mnist5k-pairs", "linear", "softtriple", epochs=20, split="samples", out=str(path), progress=False)


def subsample_run(src: dmlviz.Run, dst: Path, epochs: list[int], rows: np.ndarray | None) -> dmlviz.Run:
    """A copy of ``src`` at ``dst`` with only ``epochs`` and only the probe ``rows`` (None = all)."""
    dst.mkdir(parents=True)
    for name in (run_layout.RUN_JSON, run_layout.METRICS_CSV):
        if (src.path / name).exists():
            shutil.copy2(src.path / name, dst / name)

    def cut(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        if rows is not None:
            for k in keys:
                if k in arrays and arrays[k].ndim >= 1 and arrays[k].shape[0] == n_total:
                    arrays[k] = arrays[k][rows]
        return arrays

    n_total = len(src.probe["labels"])
    write_npz(dst / run_layout.PROBE_NPZ, cut(src.path / run_layout.PROBE_NPZ, PROBE_ROW_KEYS))
    for e in epochs:
        write_npz(dst / run_layout.epoch_file(e), cut(src.path / run_layout.epoch_file(e), EPOCH_ROW_KEYS))
    return dmlviz.load_run(dst)


def frames_of(run: dmlviz.Run, epochs: list[int]) -> tuple[list[np.ndarray], int]:
    """Samples + centers of each epoch as float32 [M, D], and the number of samples N."""
    frames = []
    for e in epochs:
        s = run.snapshot(e)
        frames.append(np.concatenate([s.embeddings, s.centers.reshape(-1, s.embeddings.shape[1])]).astype(np.float32))
    return frames, len(run.snapshot(epochs[0]).embeddings)


def aligned_umap(frames: list[np.ndarray], **kw: object) -> list[np.ndarray]:
    """umap-learn's AlignedUMAP on ``frames`` with identity relations between consecutive frames."""
    from umap import AlignedUMAP

    relations = [{i: i for i in range(len(frames[0]))} for _ in frames[1:]]
    model = AlignedUMAP(n_neighbors=N_NEIGHBORS, min_dist=MIN_DIST, metric="cosine", random_state=SEED, **kw)
    model.fit(frames, relations=relations)
    return [np.asarray(y, dtype=np.float64) for y in model.embeddings_]


def scores(frames: list[np.ndarray], layouts: list[np.ndarray], n: int, sub: np.ndarray) -> dict[str, object]:
    """Consecutive-frame disparity, trustworthiness and k-NN preservation of the samples."""
    from sklearn.manifold import trustworthiness

    finite = [bool(np.isfinite(y[:n]).all()) for y in layouts]
    disp = [procrustes_disparity(a[:n], b[:n]) for a, b in zip(layouts, layouts[1:])]
    trust = [float(trustworthiness(x[:n][sub], y[:n][sub], n_neighbors=TRUST_K, metric="cosine")) for x, y in zip(frames, layouts)]
    knnp = [knn_preservation(x[:n], y[:n], k=TRUST_K) for x, y in zip(frames, layouts)]
    return {
        "all_finite": all(finite),
        "mean_disparity": float(np.mean(disp)) if disp else float("nan"),
        "mean_trustworthiness": float(np.mean(trust)),
        "mean_knn_preservation": float(np.mean(knnp)),
        "disparity_per_step": disp,
        "trustworthiness_per_frame": trust,
        "knn_preservation_per_frame": knnp,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="run folder (default /tmp/proj_run, trained if missing)")
    parser.add_argument("--epochs", type=int, default=20, help="number of frames: the last EPOCHS recorded epochs")
    parser.add_argument("--points", type=int, default=5000, help="samples per frame (random subsample of the probe set)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "layouts.json")
    args = parser.parse_args()

    if args.run == DEFAULT_RUN:
        ensure_run(args.run)
    src = dmlviz.load_run(args.run)
    epochs = src.epochs[-args.epochs :]
    n_total = len(src.probe["labels"])
    rng = np.random.default_rng(SEED)
    rows = None if args.points >= n_total else np.sort(rng.choice(n_total, args.points, replace=False))

    with tempfile.TemporaryDirectory(prefix="bench-layouts-") as tmp:
        tmp = Path(tmp)
        run = subsample_run(src, tmp / "run", epochs, rows)
        frames, n = frames_of(run, epochs)
        sub = np.sort(rng.choice(n, min(TRUST_SUBSAMPLE, n), replace=False))
        print(f"{len(frames)} frames (epochs {epochs[0]}..{epochs[-1]}) x {n} samples + {len(frames[0]) - n} centers, "
              f"{frames[0].shape[1]}-d; torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}", flush=True)

        # warm-up: a tiny fit of each, so that numba's functions are loaded before timing
        tiny_rows = np.sort(rng.choice(n_total, min(300, n_total), replace=False))
        tiny = subsample_run(src, tmp / "tiny", epochs[:2], tiny_rows)
        tiny_frames, _ = frames_of(tiny, epochs[:2])
        t0 = time.perf_counter()
        Projector(tiny, "umap", n_neighbors=N_NEIGHBORS, min_dist=MIN_DIST, seed=SEED).compute(progress=False)
        warmup_ours_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        aligned_umap(tiny_frames, n_epochs=10, force_approximation_algorithm=True)  # NN-descent path too
        aligned_umap(tiny_frames, n_epochs=10)  # the small-data (exact) path
        warmup_theirs_s = time.perf_counter() - t0
        # AlignedUMAP wraps its optimiser in numba.njit inside every fit call, so each fit
        # compiles it again; a second tiny fit after the warm-up measures that per-fit cost.
        t0 = time.perf_counter()
        aligned_umap(tiny_frames, n_epochs=10)
        theirs_tiny_s = time.perf_counter() - t0
        print(f"warm-up (tiny fit of each): ours {warmup_ours_s:.1f} s, AlignedUMAP {warmup_theirs_s:.1f} s; "
              f"a further tiny AlignedUMAP fit: {theirs_tiny_s:.1f} s", flush=True)

        proj = Projector(run, "umap", n_neighbors=N_NEIGHBORS, min_dist=MIN_DIST, seed=SEED)
        t0 = time.perf_counter()
        proj.compute(progress=False)
        ours_s = time.perf_counter() - t0
        ours_layouts = [proj.cached(e).stacked().astype(np.float64) for e in epochs]  # type: ignore[union-attr]
        layout_s = float(sum(proj.cached(e).seconds for e in epochs))  # type: ignore[union-attr]
        print(f"ours: {ours_s:.1f} s ({layout_s:.1f} s in layout fitting)", flush=True)

        t0 = time.perf_counter()
        theirs_layouts = aligned_umap(frames)
        theirs_s = time.perf_counter() - t0
        print(f"AlignedUMAP: {theirs_s:.1f} s", flush=True)

        ours = scores(frames, ours_layouts, n, sub)
        theirs = scores(frames, theirs_layouts, n, sub)

    ratio = theirs_s / ours_s
    summary = {
        "speedup_alignedumap_over_ours": ratio,
        "speedup_without_alignedumap_per_fit_jit": (theirs_s - theirs_tiny_s) / ours_s,
        "goal_speedup_at_least_5": ratio >= 5,
        "disparity_ours": ours["mean_disparity"],
        "disparity_alignedumap": theirs["mean_disparity"],
        "goal_disparity_no_worse": ours["mean_disparity"] <= theirs["mean_disparity"],
        "trustworthiness_ours": ours["mean_trustworthiness"],
        "trustworthiness_alignedumap": theirs["mean_trustworthiness"],
        "goal_trustworthiness_within_0.02": abs(ours["mean_trustworthiness"] - theirs["mean_trustworthiness"]) <= 0.02,
    }
    print(f"{'method':<13}{'seconds':>9}{'disparity':>11}{'trust':>8}{'kNN-pres':>10}")
    for name, secs, res in (("ours", ours_s, ours), ("AlignedUMAP", theirs_s, theirs)):
        print(f"{name:<13}{secs:>9.1f}{res['mean_disparity']:>11.4f}{res['mean_trustworthiness']:>8.4f}{res['mean_knn_preservation']:>10.3f}")
    print(f"AlignedUMAP / ours time = {ratio:.1f}x ({(theirs_s - theirs_tiny_s) / ours_s:.1f}x less its per-fit JIT estimate)")

    import umap

    out = {
        "benchmark": "warm-started UMAP chain (dmlviz Projector) vs umap-learn AlignedUMAP",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "run": str(args.run),
        "epochs": epochs,
        "frames": len(epochs),
        "samples_per_frame": n,
        "centers_per_frame": int(len(frames[0]) - n),
        "dim": int(frames[0].shape[1]),
        "points_laid_out": "samples + centers for both; scores on samples only",
        "params": {"n_neighbors": N_NEIGHBORS, "min_dist": MIN_DIST, "metric": "cosine", "random_state": SEED},
        "ours_params": proj.params,
        "alignedumap_params": {"n_epochs": 200, "alignment_regularisation": 0.01, "alignment_window_size": 3, "relations": "identity"},
        "warmup": {
            "what": f"tiny fit of each before timing ({len(tiny_rows)} samples x 2 frames; AlignedUMAP through NN-descent and the exact path)",
            "ours_s": warmup_ours_s,
            "alignedumap_s": warmup_theirs_s,
            "alignedumap_tiny_fit_after_warmup_s": theirs_tiny_s,
            "note": "AlignedUMAP calls numba.njit on its optimiser inside every fit, so every fit recompiles it; "
            "alignedumap_tiny_fit_after_warmup_s estimates that per-fit cost, included in its timed total",
        },
        "trustworthiness": {"k": TRUST_K, "metric": "cosine", "subsample": int(len(sub))},
        "seconds": {"ours": ours_s, "ours_layout_fitting_only": layout_s, "alignedumap": theirs_s},
        "summary": summary,
        "ours": ours,
        "alignedumap": theirs,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "umap_learn": umap.__version__,
            "numpy": np.__version__,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "algorithm_constants": {
            "UMAP_FIRST_EPOCHS": projector_module.UMAP_FIRST_EPOCHS,
            "UMAP_FIRST_INIT": projector_module.UMAP_FIRST_INIT,
            "UMAP_WARM_EPOCHS": projector_module.UMAP_WARM_EPOCHS,
            "UMAP_WARM_LEARNING_RATE": projector_module.UMAP_WARM_LEARNING_RATE,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
