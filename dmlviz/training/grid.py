"""A grid of runs for a comparison: one run per loss on the same data, split, seed and probe, resumable."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..runs import Run, load_run
from .config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossSpec:
    """One entry of ``--losses``: a loss name, an optional regularizer and augmenter, and loss parameters.

    Written ``name[+regularizer][+augmenter][:key=value;key=value]``, e.g. ``softtriple:centers_per_class=3``,
    ``multisimilarity+das``
    or ``triplet+mdr:mining=distance;margin=0.2;scale=mean_distance`` (values read as JSON when they parse).
    """

    loss: str
    regularizer: str | None
    params: dict[str, Any]
    text: str
    augmenter: str | None = None

    @property
    def slug(self) -> str:
        """A folder-name-safe form of the spec, e.g. ``triplet+mdr-mining=distance-margin=0.2``."""
        return re.sub(r"[^A-Za-z0-9+=._-]+", "-", self.text).strip("-")


def parse_loss_spec(text: str) -> LossSpec:
    """The LossSpec written as ``text`` (see :class:`LossSpec`); errors name the part that is wrong."""
    from ..losses import AUGMENTERS, LOSSES, REGULARIZERS

    original = text.strip()
    head, _, tail = original.partition(":")
    name, *extras = (part.strip() for part in head.split("+"))
    if name not in LOSSES:
        raise ValueError(f"--losses entry {original!r}: unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    regularizer = augmenter = None
    for extra in extras:
        if extra in REGULARIZERS and regularizer is None:
            regularizer = extra
        elif extra in AUGMENTERS and augmenter is None:
            augmenter = extra
        else:
            raise ValueError(f"--losses entry {original!r}: unknown regularizer {extra!r} (or a second one); known: "
                             f"regularizers {', '.join(sorted(REGULARIZERS))}, augmenters {', '.join(sorted(AUGMENTERS))}")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in tail.split(";"))):
        if "=" not in item:
            raise ValueError(f"--losses entry {original!r}: parameter {item!r} must be KEY=VALUE, e.g. margin=0.2")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return LossSpec(name, regularizer, params, original, augmenter)


def parse_losses(text: str) -> list[LossSpec]:
    """Comma-separated loss specs (at least two, no repeats)."""
    specs = [parse_loss_spec(part) for part in text.split(",") if part.strip()]
    if len(specs) < 2:
        raise ValueError(f"--losses needs at least two losses to compare, e.g. softmax,softtriple; got {text!r}")
    slugs = [s.slug for s in specs]
    repeated = sorted({s for s in slugs if slugs.count(s) > 1})
    if repeated:
        raise ValueError(f"--losses names {repeated} more than once")
    return specs


def grid_folder(runs_dir: str | Path, name: str, spec: LossSpec) -> Path:
    """Where the run of ``spec`` in the comparison ``name`` lives: ``runs_dir/<name>-<spec slug>``."""
    return Path(runs_dir) / f"{name}-{spec.slug}"


def train_grid(
    specs: list[LossSpec], base: TrainConfig, runs_dir: str | Path, name: str,
    train: Callable[[TrainConfig], Run] | None = None,
) -> list[Run]:
    """Train one run per spec from ``base`` (same data, split, seed, probe) into ``runs_dir``.

    A finished run with at least ``base.epochs`` epochs is kept as it is; any other run already
    there (stopped, failed, shorter) is resumed, which refuses settings that differ from its own.
    """
    if train is None:
        from .trainer import train as train_fn

        train = train_fn
    runs = []
    for spec in specs:
        out = grid_folder(runs_dir, name, spec)
        config = base.replace(loss=spec.loss, regularizer=spec.regularizer, augmenter=spec.augmenter, loss_params=dict(spec.params), out=out, resume=False, overwrite=False)
        if (out / "run.json").is_file():
            existing = load_run(out)
            if existing.status == "finished" and existing.last_epoch is not None and existing.last_epoch >= base.epochs:
                logger.info("%s exists (finished, %s epochs): kept", out, existing.last_epoch)
                runs.append(existing)
                continue
            config = config.replace(resume=True)
        runs.append(train(config))
    return runs
