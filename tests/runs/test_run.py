import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import dmlviz
from dmlviz.runs import DamagedFileWarning, RunExistsError, RunWriter, load_run
from dmlviz.runs.files import write_npz


def test_run_folder_has_the_documented_files(small_run):
    names = set(os.listdir(small_run.path))
    assert {"run.json", "metrics.csv", "probe.npz", "checkpoint.pt", "epoch_0000.npz", "epoch_0003.npz"} <= names
    assert not [n for n in names if n.startswith(".tmp-")]
    info = json.loads((small_run.path / "run.json").read_text())
    assert info["schema"] == "dmlviz.run/1" and info["status"] == "finished" and info["last_epoch"] == 3
    assert info["config"]["loss_params"] == {"centers_per_class": 3, "la": 20.0, "gamma": 0.1, "tau": 0.2, "margin": 0.01}
    assert {"torch", "numpy", "pytorch_metric_learning"} <= set(info["versions"])


def test_files_open_without_dmlviz_and_without_pickle(small_run):
    with np.load(small_run.path / "epoch_0002.npz", allow_pickle=False) as snap:
        assert snap["embeddings"].dtype == np.float32
        assert snap["centers"].shape == (4, 3, 8)
    with np.load(small_run.path / "probe.npz", allow_pickle=False) as probe:
        assert set(probe["split"].tolist()) == {0, 1}
    table = pd.read_csv(small_run.path / "metrics.csv")
    assert table["epoch"].tolist() == [0, 1, 2, 3]
    state = torch.load(small_run.path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3 and "model" in state and "optimizer" in state


def test_snapshot_contents(small_run):
    snap = small_run.snapshot(3)
    n = len(snap)
    assert n == 320 and snap.embeddings.shape == (n, 8)
    np.testing.assert_allclose(np.linalg.norm(snap.embeddings, axis=1), 1.0, atol=1e-5)
    assert snap.fine_labels is not None and snap.thumbnails is None
    assert set(snap.split) == {"train", "test"}
    assert snap.centers_kind == "learned" and snap.centers.shape == (4, 3, 8)
    np.testing.assert_array_equal(snap.center_classes, [0, 1, 2, 3])
    assert snap.assignments.min() >= 0 and snap.assignments.max() < 3
    assert snap.effective_k.shape == (4,) and 1 <= snap.effective_k.min() <= snap.effective_k.max() <= 3
    assert small_run.epochs == [0, 1, 2, 3]
    with pytest.raises(KeyError, match="no epoch 9; recorded epochs: \\[0, 1, 2, 3\\]"):
        small_run.snapshot(9)


def test_metrics_frame(small_run):
    m = small_run.metrics
    assert m["epoch"].tolist() == [0, 1, 2, 3]
    for column in ("loss", "recall@1", "recall@8", "map@r", "r_precision", "nmi", "purity", "effective_k"):
        assert column in m
    assert np.isnan(m.loc[0, "loss"]) and (m.loc[1:, "loss"] > 0).all()
    assert ((m["recall@1"] >= 0) & (m["recall@1"] <= 1)).all()


def test_truncated_snapshot_is_skipped_and_named(small_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_run.path, copy)
    target = copy / "epoch_0002.npz"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    run = load_run(copy)
    with pytest.warns(DamagedFileWarning, match="epoch_0002.npz"):
        epochs = run.epochs
    assert epochs == [0, 1, 3]
    with warnings.catch_warnings(), pytest.raises(KeyError, match="damaged"):
        warnings.simplefilter("ignore")
        run.snapshot(2)
    assert run.snapshot(3).epoch == 3


def test_reader_sees_a_run_being_written(tmp_path):
    writer = RunWriter(tmp_path / "live")
    writer.start({"loss": "x", "epochs": 2}, {}, resume=False, overwrite=False)
    run = load_run(tmp_path / "live")
    assert run.status == "running" and run.epochs == [] and len(run.metrics) == 0
    writer.write_epoch(0, {"embeddings": np.zeros((2, 2), np.float32)})
    writer.append_metrics({"epoch": 0, "recall@1": 0.5})
    (tmp_path / "live" / ".tmp-epoch_0001.npz.abc").write_bytes(b"half")  # a write in progress
    assert run.epochs == [0] and run.metrics["recall@1"].tolist() == [0.5]
    writer.update(status="finished")
    assert run.refresh().status == "finished"


def test_write_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        write_npz(tmp_path / "x.npz", {"a": np.array([{}, 1], dtype=object)})
    assert not list(tmp_path.iterdir())


def test_out_folder_with_a_different_run_is_refused(small_run, small_synthetic, tmp_path):
    import shutil

    copy = tmp_path / "taken"
    shutil.copytree(small_run.path, copy)
    before = sorted(os.listdir(copy))
    with pytest.raises(RunExistsError, match="already holds a run.*resume=True.*overwrite=True"):
        dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, embedding_dim=8, out=copy, progress=False)
    assert sorted(os.listdir(copy)) == before  # nothing lost
    with pytest.raises(ValueError, match="cannot resume: the run was made with different settings.*loss"):
        dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, embedding_dim=8, out=copy, progress=False, resume=True, split="samples")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunExistsError, match="not empty and is not a dmlviz run"):
        dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, embedding_dim=8, out=tmp_path / "other", progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    run = dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, embedding_dim=8, out=copy, progress=False, overwrite=True, split="samples")
    assert run.config["loss"] == "softmax" and run.epochs == [0, 1]


def test_not_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run.json"):
        load_run(tmp_path)
