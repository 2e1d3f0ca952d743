"""Tests for train(nmi=..., nmi_every=...): which epochs get NMI, NaN elsewhere, the choice in run.json."""

import json
import math

import pytest

import dmlviz
from dmlviz.cli import main

COMMON = dict(model="linear", loss="softtriple", batch_size=32, embedding_dim=8, split="samples", centers_per_class=2, progress=False)


def test_auto_resolves_to_exact_kmeans_on_small_data(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, epochs=1, out=tmp_path / "a", **COMMON)
    assert run.config["nmi"] == "kmeans" and run.config["nmi_every"] == 1
    assert json.loads((run.path / "run.json").read_text())["config"]["nmi"] == "kmeans"
    assert all(math.isfinite(v) for v in run.metrics["nmi"])
    chance = run.metrics["nmi_chance"]  # the test labels' own level, beside every NMI: the same each epoch
    assert chance.nunique() == 1 and 0 <= chance.iloc[0] < 1


def test_nmi_off_leaves_nan(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, epochs=1, nmi="off", out=tmp_path / "off", **COMMON)
    assert run.config["nmi"] == "off"
    assert run.metrics["nmi"].isna().all() and math.isfinite(run.metrics.iloc[-1]["recall@1"])
    assert run.metrics["nmi_chance"].isna().all()


def test_nmi_every_two_computes_on_even_epochs_only(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, epochs=3, nmi="minibatch", nmi_every=2, out=tmp_path / "every", **COMMON)
    assert run.config["nmi"] == "minibatch" and run.config["nmi_every"] == 2
    computed = {int(e): math.isfinite(v) for e, v in zip(run.metrics["epoch"], run.metrics["nmi"])}
    assert computed == {0: True, 1: False, 2: True, 3: False}


@pytest.mark.parametrize("kwargs, message", [
    (dict(nmi="faiss"), "nmi must be 'auto', 'kmeans', 'minibatch' or 'off', got 'faiss'"),
    (dict(nmi_every=0), "nmi_every must be an integer >= 1, got 0"),
])
def test_bad_nmi_options_are_refused(small_synthetic, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dmlviz.train(small_synthetic, epochs=1, out=tmp_path / "bad", **{**COMMON, **kwargs})


def test_cli_nmi_flags(small_synthetic, tmp_path, capsys):
    code = main(["train", "--dataset", "synthetic", "--epochs", "1", "--nmi", "off", "--nmi-every", "3", "--embedding-dim", "4",
                 "--probe-size", "50", "--out", str(tmp_path / "cli"), "--no-progress", "--device", "cpu"])
    assert code == 0
    config = json.loads((tmp_path / "cli" / "run.json").read_text())["config"]
    assert config["nmi"] == "off" and config["nmi_every"] == 3
    assert "--nmi off --nmi-every 3" in dmlviz.load_run(tmp_path / "cli").resume_command()
