"""The demo: SoftMax (one center per class) beside SoftTriple (several) on mnist5k-pairs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .runs import Run, load_run

logger = logging.getLogger(__name__)

#: Shared settings of the demo runs: a constrained (linear) head keeps the two digits of a class apart.
DEMO_SETTINGS: dict[str, Any] = dict(
    dataset="mnist5k-pairs", model="linear", embedding_dim=64, split="samples", batch_size=128, lr=1e-3, seed=0
)
#: The two demo runs: name → loss and its parameters.
DEMO_RUNS: dict[str, dict[str, Any]] = {
    "softmax": dict(loss="softmax"),
    "softtriple": dict(loss="softtriple", centers_per_class=10, tau=0.2),
}


def demo_runs(
    runs_dir: str | Path = "runs", epochs: int = 30, progress: bool = True, layouts: bool = False, **overrides: Any
) -> dict[str, Run]:
    """Train the demo runs into ``runs_dir`` unless they are already finished there; return them by name.

    ``layouts=True`` also computes (or finds cached) the UMAP layouts of every epoch, so the
    lesson's maps open without waiting.
    """
    from .training import train

    runs = {}
    for name, spec in DEMO_RUNS.items():
        out = Path(runs_dir) / f"mnist5k-pairs-{name}"
        settings = {**DEMO_SETTINGS, **spec, **overrides, "epochs": epochs}
        if (out / "run.json").exists():
            existing = load_run(out)
            if existing.status == "finished" and existing.config.get("epochs") == epochs:
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


def summarize(run: Run) -> dict[str, Any]:
    """Test Recall@1, NMI, center purity and effective K per class at the first and last epoch."""
    metrics = run.metrics
    last = metrics.iloc[-1]
    epochs = run.epochs
    first_snap, last_snap = run.snapshot(epochs[0]), run.snapshot(epochs[-1])
    return {
        "run": run.name,
        "loss": run.config.get("loss"),
        "epochs": int(last["epoch"]),
        "recall@1": float(last["recall@1"]),
        "nmi": float(last["nmi"]),
        "purity": float(last["purity"]) if "purity" in metrics else float("nan"),
        "effective_k_first": first_snap.effective_k.tolist(),
        "effective_k_last": last_snap.effective_k.tolist(),
    }


def format_summary(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` rows."""
    header = f"{'loss':<12}{'epochs':>7}{'R@1':>8}{'NMI':>8}{'purity':>8}   effective K per class (first → last epoch)"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['loss']:<12}{r['epochs']:>7}{r['recall@1']:>8.3f}{r['nmi']:>8.3f}{r['purity']:>8.3f}   "
            f"{r['effective_k_first']} → {r['effective_k_last']}"
        )
    return "\n".join(lines)
