"""Shared fixtures: small datasets and one small trained run reused across tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))


@pytest.fixture(scope="session")
def small_synthetic():
    """4 classes × 2 modes in 16-d, 40 samples per mode (320 samples)."""
    from dmlviz.data import synthetic

    return synthetic(classes=4, modes_per_class=2, dim=16, samples_per_mode=40, seed=1)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, small_synthetic):
    """A finished 3-epoch SoftTriple run on the small synthetic data (split by samples)."""
    import dmlviz

    out = tmp_path_factory.mktemp("runs") / "small"
    return dmlviz.train(
        small_synthetic, "linear", "softtriple", epochs=3, batch_size=32, embedding_dim=8, split="samples",
        centers_per_class=3, out=out, progress=False, seed=0,
    )


def make_rng(seed: int = 0) -> np.random.Generator:
    """A seeded numpy generator."""
    return np.random.default_rng(seed)


@pytest.fixture
def interrupted_then_resumed(monkeypatch):
    """run(data, epoch, **train_args): train, interrupted (Ctrl-C) when ``epoch`` starts, then resumed to the end; the resumed Run."""
    import dmlviz
    from dmlviz.training import trainer

    def run(data, epoch: int, **train_args):
        original, calls = trainer._train_epoch, []

        def cut(t, e):
            calls.append(e)
            if e == epoch and calls.count(epoch) == 1:
                raise KeyboardInterrupt
            return original(t, e)

        monkeypatch.setattr(trainer, "_train_epoch", cut)
        with pytest.raises(KeyboardInterrupt):
            dmlviz.train(data, **train_args)
        monkeypatch.setattr(trainer, "_train_epoch", original)
        return dmlviz.train(data, resume=True, **train_args)

    return run
