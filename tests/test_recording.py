"""dmlviz.Recorder: a run folder written from any loop, read by the explorer like a trained one; bad input named."""

import json

import numpy as np
import pytest
import torch

import dmlviz
from dmlviz.losses import build


def _data(n_classes=5, per=30, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per)
    split = np.where(np.arange(len(labels)) % 3 == 0, "test", "train")
    return labels, split, lambda epoch: rng.normal(size=(len(labels), dim)) + labels[:, None] * 0.4 * (epoch + 1)


class Proxies(torch.nn.Module):
    """A loss holding its proxies as pytorch-metric-learning's losses do."""

    def __init__(self, classes, dim):
        super().__init__()
        self.proxies = torch.nn.Parameter(torch.randn(classes, dim))


def test_a_recorded_run_reads_like_a_trained_one(tmp_path):
    labels, split, embed = _data()
    path = tmp_path / "mine"
    with dmlviz.Recorder(path, labels=labels, split=split, fine_labels=labels * 2 + (np.arange(len(labels)) % 2),
                         config={"loss": "my-proxy-loss", "lr": 1e-3}) as rec:
        assert json.loads((path / "run.json").read_text())["status"] == "running"  # the explorer follows it live
        for epoch in range(3):
            row = rec.log(epoch, torch.as_tensor(embed(epoch)), centers=Proxies(5, 8), metrics={"loss": 1.0 / (epoch + 1)})
            assert row["loss"] == 1.0 / (epoch + 1) and 0 <= row["recall@1"] <= 1 and "map@r" in row and "submode_score" in row
    run = dmlviz.load_run(path)
    assert run.info["status"] == "finished" and run.epochs == [0, 1, 2] and run.config["loss"] == "my-proxy-loss"
    snap = run.snapshot(2)
    assert snap.centers.shape == (5, 1, 8) and snap.centers_kind == "learned" and len(snap) == len(labels)
    np.testing.assert_allclose(np.linalg.norm(snap.embeddings, axis=1), 1, atol=1e-5)
    assert (run.probe["split"] == np.where(split == "test", 1, 0)).all()
    assert run.metrics["recall@1"].iloc[-1] > run.metrics["recall@1"].iloc[0]  # the classes separate over the epochs
    from dmlviz.widgets import Explorer

    explorer = Explorer(run, watch=0)
    assert explorer.state.epochs == [0, 1, 2]


def test_centers_from_a_dmlviz_loss_or_an_array_and_class_means_without(tmp_path):
    labels, split, embed = _data()
    loss = build("softtriple", num_classes=5, embedding_dim=8, centers_per_class=3)
    with dmlviz.Recorder(tmp_path / "a", labels=labels, split=split) as rec:
        rec.log(0, embed(0), centers=loss)
        rec.log(1, embed(1), centers=np.random.default_rng(1).normal(size=(5, 2, 8)))
        rec.log(2, embed(2))
    run = dmlviz.load_run(tmp_path / "a")
    assert run.snapshot(0).centers.shape == (5, 3, 8) and run.snapshot(1).centers.shape == (5, 2, 8)
    assert run.snapshot(2).centers_kind == "class_means" and run.metrics["effective_k"].iloc[0] <= 3


def test_bad_input_is_named_and_nothing_written_is_lost(tmp_path):
    labels, split, embed = _data()
    with pytest.raises(ValueError, match=r"labels must be non-negative integers of shape \[N\]"):
        dmlviz.Recorder(tmp_path / "x", labels=np.array([[0, 1]]))
    with pytest.raises(ValueError, match="split must have one entry per sample"):
        dmlviz.Recorder(tmp_path / "y", labels=labels, split=split[:10])
    with pytest.raises(ValueError, match="split holds"):
        dmlviz.Recorder(tmp_path / "z", labels=labels, split=np.full(len(labels), "val"))
    rec = dmlviz.Recorder(tmp_path / "r", labels=labels, split=split)
    with pytest.raises(ValueError, match=r"embeddings must be \[N, D\] with N = 150"):
        rec.log(0, embed(0)[:100])
    bad = embed(0)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="contain NaN or inf"):
        rec.log(0, bad)
    rec.log(0, embed(0))
    with pytest.raises(ValueError, match="epoch 0 was already logged"):
        rec.log(0, embed(1))
    with pytest.raises(ValueError, match="earlier epochs had D = 8"):
        rec.log(1, np.zeros((150, 4)))
    with pytest.raises(ValueError, match="has 0 parameters shaped"):
        rec.log(1, embed(1), centers=torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="center_param='weights' is not a parameter"):
        rec.log(1, embed(1), centers=Proxies(5, 8), center_param="weights")
    with pytest.raises(ValueError, match=r"metrics\['acc'\] must be a number"):
        rec.log(1, embed(1), metrics={"acc": "high"})
    rec.close()
    run = dmlviz.load_run(tmp_path / "r")
    assert run.epochs == [0] and run.info["status"] == "finished"  # the failed calls wrote nothing
    with pytest.raises(RuntimeError, match="is closed"):
        rec.log(1, embed(1))
    with pytest.raises(FileExistsError, match="already holds a run"):
        dmlviz.Recorder(tmp_path / "r", labels=labels)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a dmlviz run"):
        dmlviz.Recorder(tmp_path / "other", labels=labels)


def test_an_error_inside_the_with_block_marks_the_run_failed(tmp_path):
    labels, split, embed = _data()
    with pytest.raises(KeyError):
        with dmlviz.Recorder(tmp_path / "f", labels=labels, split=split) as rec:
            rec.log(0, embed(0))
            raise KeyError("my loop broke")
    run = dmlviz.load_run(tmp_path / "f")
    assert run.info["status"] == "failed" and run.epochs == [0]


def test_the_explorer_follows_a_run_while_it_is_recorded(tmp_path):
    import time

    from dmlviz.widgets import Explorer

    labels, split, embed = _data()
    rec = dmlviz.Recorder(tmp_path / "live", labels=labels, split=split)
    rec.log(0, embed(0))
    explorer = Explorer(tmp_path / "live", watch=0.2)
    assert explorer.state.epochs == [0]
    rec.log(1, embed(1))
    deadline = time.time() + 20
    while explorer.state.epochs != [0, 1] and time.time() < deadline:
        time.sleep(0.1)
    assert explorer.state.epochs == [0, 1]  # the new epoch appeared
    rec.close()
    explorer.close()


def test_chance_levels_are_recorded_from_the_whole_test_split(tmp_path):
    labels = np.concatenate([np.repeat(np.arange(3), 20), np.repeat([3], 40)])  # unequal classes: 20, 20, 20, 40
    split = np.where(np.arange(len(labels)) % 2 == 0, "test", "train")
    rng = np.random.default_rng(1)
    with dmlviz.Recorder(tmp_path / "chance", labels=labels, split=split) as rec:
        row = rec.log(0, rng.normal(size=(len(labels), 8)))
    counts = np.array([10, 10, 10, 20])  # the test split's classes
    assert row["recall@1_chance"] == pytest.approx((counts * (counts - 1)).sum() / (50 * 49))  # a random other test sample
    assert 0 <= row["nmi_chance"] < 0.2
    table = dmlviz.load_run(tmp_path / "chance").metrics
    assert table["recall@1_chance"].iloc[0] == pytest.approx(row["recall@1_chance"])
