"""The demo: SoftMax (one center per class) beside SoftTriple (several), and SoftTriple's centers merging.

Three runs, each on data whose hidden sub-modes are known:

- ``softmax`` and ``softtriple`` (the paper's τ = 0.2): mnist5k-pairs, where class c holds the
  digits c and c + 5; do SoftTriple's centers split a class along its two digits?
- ``merging``: synthetic data with 3 Gaussian modes per class, K = 8 and τ = 1.5; do the centers
  merge down to the true number of modes? At the paper's τ = 0.2 they stop at modes + 1
  (the centers no mode needs collapse into one spare group between the modes, where the
  regularizer is at rest; see benchmarks/merging/RESULTS.md); τ around 1–1.5 removes it.

Every claim is measured against a baseline the trained run must beat: the untrained epoch 0,
random centers with the same K on the trained embedding, SoftMax, and no regularizer (τ = 0).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .runs import Run, load_run

logger = logging.getLogger(__name__)

#: Shared settings of the mnist5k-pairs runs: a constrained (linear) head keeps the two digits of a class apart.
DEMO_SETTINGS: dict[str, Any] = dict(
    dataset="mnist5k-pairs", model="linear", embedding_dim=64, split="samples", batch_size=128, lr=1e-3, seed=0, epochs=30
)
#: The merging run's data: 4 classes of 3 hidden Gaussian modes (600 training samples: 4 optimizer steps per epoch).
MERGE_DATA: dict[str, Any] = dict(classes=4, modes_per_class=3, dim=16, separation=4.0, noise=1.0, samples_per_mode=100, seed=0)
#: The demo runs: name → folder name and training settings.
DEMO_RUNS: dict[str, dict[str, Any]] = {
    "softmax": dict(folder="mnist5k-pairs-softmax", loss="softmax"),
    "softtriple": dict(folder="mnist5k-pairs-softtriple", loss="softtriple", centers_per_class=10, tau=0.2),
    "merging": dict(
        folder="synthetic3-softtriple-merging", dataset="synthetic", loss="softtriple", centers_per_class=8, tau=1.5,
        epochs=100,
    ),
}


def run_folder(runs_dir: str | Path, name: str) -> Path:
    """Where the demo run ``name`` lives under ``runs_dir``."""
    return Path(runs_dir) / DEMO_RUNS[name]["folder"]


def demo_settings(name: str, epochs: int | None = None) -> dict[str, Any]:
    """The ``dmlviz.train`` keyword arguments of demo run ``name`` (``epochs`` overrides its own)."""
    from .data import synthetic

    spec = {k: v for k, v in DEMO_RUNS[name].items() if k != "folder"}
    settings = {**DEMO_SETTINGS, **spec}
    if settings["dataset"] == "synthetic":
        settings["dataset"] = synthetic(**MERGE_DATA)
    if epochs is not None:
        settings["epochs"] = epochs
    return settings


def demo_runs(
    runs_dir: str | Path = "runs", epochs: int | None = None, progress: bool = True, layouts: bool = False, **overrides: Any
) -> dict[str, Run]:
    """Train the demo runs into ``runs_dir`` unless they are already finished there; return them by name.

    ``epochs`` (default: each run's own, 30 and 100) shortens them, for quick checks.
    ``layouts=True`` also computes (or finds cached) the UMAP layouts of every epoch, so the
    lesson's maps open without waiting.
    """
    from .training import train

    runs = {}
    for name in DEMO_RUNS:
        out = run_folder(runs_dir, name)
        settings = {**demo_settings(name, epochs), **overrides}
        if (out / "run.json").exists():
            existing = load_run(out)
            if existing.status == "finished" and existing.config.get("epochs") == settings["epochs"]:
                logger.info("demo run %s is already trained", out)
                runs[name] = existing
                continue
            runs[name] = train(**settings, out=out, resume=True, progress=progress)
        else:
            runs[name] = train(**settings, out=out, progress=progress)
    if layouts:
        from .projection import Projector

        for name, run in runs.items():
            projector = Projector(run, "umap")
            if projector.missing():
                logger.info("laying out %s with UMAP", run.name)
                projector.compute()
    return runs


def random_center_submode(run: Run, epoch: int, draws: int = 5, seed: int = 0) -> float:
    """Sub-mode score of random centers (same K) on the run's embedding at ``epoch`` (held-out samples), mean of ``draws``."""
    from .eval import assign_to_centers, submode_score

    snap = run.snapshot(epoch)
    if snap.fine_labels is None or not snap.centers.size:
        return float("nan")
    rng = np.random.default_rng(seed)
    held = snap.split == "test"
    scores = []
    for _ in range(draws):
        centers = rng.normal(size=snap.centers.shape)
        a = assign_to_centers(snap.embeddings, snap.labels, centers, snap.center_classes)
        scores.append(submode_score(snap.labels[held], snap.fine_labels[held], a[held]))
    return float(np.mean(scores))


def true_modes(run: Run) -> list[int]:
    """Number of distinct fine labels (hidden modes) of each class that has centers, from the probe."""
    snap = run.snapshot(run.epochs[0])
    if snap.fine_labels is None:
        return []
    return [len(np.unique(snap.fine_labels[snap.labels == c])) for c in snap.center_classes]


def summarize(run: Run) -> dict[str, Any]:
    """What the demo claims for a run, beside its baselines: Recall@1, NMI, sub-mode score, effective K."""
    metrics = run.metrics
    first_row, last = metrics.iloc[0], metrics.iloc[-1]
    epochs = run.epochs
    first_snap, last_snap = run.snapshot(epochs[0]), run.snapshot(epochs[-1])

    def value(row: Any, column: str) -> float:
        return float(row[column]) if column in row and row[column] == row[column] else float("nan")

    return {
        "run": run.name,
        "loss": run.config.get("loss"),
        "dataset": run.config.get("dataset"),
        "tau": (run.config.get("loss_params") or {}).get("tau"),
        "epochs": int(last["epoch"]),
        "recall@1": value(last, "recall@1"),
        "recall@1_epoch0": value(first_row, "recall@1"),
        "nmi": value(last, "nmi"),
        "submode_score": value(last, "submode_score"),
        "submode_score_epoch0": value(first_row, "submode_score"),
        "submode_score_random_centers": random_center_submode(run, epochs[-1]),
        "effective_k_first": first_snap.effective_k.tolist(),
        "effective_k_last": last_snap.effective_k.tolist(),
        "true_modes": true_modes(run),
    }


def format_summary(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` rows."""
    header = (
        f"{'run':<32}{'epochs':>7}{'R@1':>7}{'(ep. 0)':>8}{'sub-mode':>10}{'(ep. 0)':>8}{'(random)':>9}"
        "   effective K per class: first → last (true modes)"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['run']:<32}{r['epochs']:>7}{r['recall@1']:>7.3f}{r['recall@1_epoch0']:>8.3f}{r['submode_score']:>10.3f}"
            f"{r['submode_score_epoch0']:>8.3f}{r['submode_score_random_centers']:>9.3f}   "
            f"{r['effective_k_first']} → {r['effective_k_last']} ({r['true_modes']})"
        )
    lines.append(
        "sub-mode score: how well a class's centers split it along its hidden modes, on held-out samples "
        "(0 = chance, 1 = one center per mode); (random) = random centers with the same K on the trained embedding"
    )
    return "\n".join(lines)
