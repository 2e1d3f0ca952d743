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
    for column in ("loss", "recall@1", "recall@8", "map@r", "r_precision", "nmi", "submode_score", "submode_score_train", "effective_k"):
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


def test_overwrite_never_clears_a_folder_that_is_not_a_dmlviz_run(small_synthetic, tmp_path):
    mine = tmp_path / "mydocs"
    (mine / "thesis").mkdir(parents=True)
    (mine / "thesis" / "chapter1.tex").write_text("years of work")
    (mine / "epoch_0001.npz").write_bytes(b"not ours either")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "run.json").write_text(json.dumps({"schema": "someone-else/2"}))
    for folder in (mine, foreign):
        before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
        with pytest.raises(RunExistsError, match="not empty and is not a dmlviz run.*even with overwrite=True") as caught:
            dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, embedding_dim=8, out=folder, progress=False, overwrite=True, split="samples")
        assert "to clear it" not in str(caught.value)
        assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert (mine / "thesis" / "chapter1.tex").read_text() == "years of work"


def test_overwrite_deletes_only_the_runs_own_files(small_run, small_synthetic, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(small_run.path, copy)
    (copy / "projections").mkdir(exist_ok=True)  # other tests may have projected small_run already
    (copy / "projections" / "umap_0003.npz").write_bytes(b"x")
    (copy / ".tmp-epoch_0004.npz.abc").write_bytes(b"half")
    (copy / "notes.txt").write_text("keep me")
    (copy / "figures").mkdir()
    (copy / "figures" / "plot.png").write_bytes(b"png")
    run = dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, embedding_dim=8, out=copy, progress=False, overwrite=True, split="samples")
    assert run.config["loss"] == "softmax" and run.epochs == [0, 1] and run.metrics["epoch"].tolist() == [0, 1]
    assert sorted(os.listdir(copy)) == sorted(
        ["run.json", "metrics.csv", "probe.npz", "checkpoint.pt", "epoch_0000.npz", "epoch_0001.npz", "notes.txt", "figures"]
    )
    assert (copy / "notes.txt").read_text() == "keep me" and (copy / "figures" / "plot.png").exists()


@pytest.mark.parametrize("setup", ["missing", "empty", "other files"])
def test_resume_needs_an_existing_run(small_synthetic, tmp_path, setup):
    out = tmp_path / "out"
    if setup != "missing":
        out.mkdir()
    if setup == "other files":
        (out / "notes.txt").write_text("mine")
    before = sorted(os.listdir(out)) if out.exists() else None
    with pytest.raises(FileNotFoundError, match="resume=True needs out= pointing at an existing run"):
        dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, embedding_dim=8, out=out, progress=False, resume=True, split="samples")
    assert (sorted(os.listdir(out)) if out.exists() else None) == before


def test_resume_on_another_device_and_last_epoch_on_reopening(small_run, small_synthetic, tmp_path):
    import shutil

    copy = tmp_path / "moved"
    shutil.copytree(small_run.path, copy)
    info = json.loads((copy / "run.json").read_text())
    info["config"].update(device="cuda", amp="bf16")  # as if made on a GPU
    (copy / "run.json").write_text(json.dumps(info))
    # the process died after writing checkpoint 3 but before run.json said so
    state = torch.load(copy / "checkpoint.pt", weights_only=True)
    state["epoch"] = 2
    torch.save(state, copy / "checkpoint.pt")
    writer = RunWriter(copy)
    last = writer.start({**info["config"], "device": "cpu", "amp": None}, {}, resume=True, overwrite=False)
    reopened = json.loads((copy / "run.json").read_text())
    assert last == 2 and reopened["last_epoch"] == 2 and reopened["status"] == "running"
    assert reopened["config"]["device"] == "cpu" and reopened["config"]["amp"] is None
    assert "resumed_with" not in reopened and load_run(copy).epochs == [0, 1, 2]
    run = dmlviz.train(small_synthetic, "linear", "softtriple", epochs=4, batch_size=32, embedding_dim=8, split="samples",
                       centers_per_class=3, out=copy, progress=False, seed=0, resume=True, device="cpu")
    assert run.status == "finished" and run.epochs == [0, 1, 2, 3, 4] and run.info["last_epoch"] == 4


def test_changed_settings_are_refused_unless_the_run_diverged(tmp_path):
    config = {"loss": "softtriple", "lr": 1e-3, "center_lr": 1e-2, "loss_params": {"la": 20.0}, "epochs": 2, "seed": 0}
    writer = RunWriter(tmp_path / "r")
    writer.start(config, {}, resume=False, overwrite=False)
    changed = {**config, "lr": 1e-4, "loss_params": {"la": 10.0}}
    with pytest.raises(ValueError, match="different settings \\(loss_params: run has \\{'la': 20.0\\}, asked \\{'la': 10.0\\}; lr"):
        RunWriter(tmp_path / "r").start(changed, {}, resume=True, overwrite=False)
    # out of memory (or any other exception) is not a divergence: lower learning rates would not help
    writer.mark_failed(MemoryError("CUDA out of memory"), diverged=False)
    with pytest.raises(ValueError, match="this run failed with MemoryError, not a divergence, so it resumes only with the settings"):
        RunWriter(tmp_path / "r").start(changed, {}, resume=True, overwrite=False)
    writer.mark_failed(RuntimeError("the loss became nan in batch 3 of 8 of epoch 2"), diverged=True)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["failure"] == "diverged"
    with pytest.raises(ValueError, match="seed: run has 0, asked 1"):  # only lr, center_lr and loss_params may change
        RunWriter(tmp_path / "r").start({**changed, "seed": 1}, {}, resume=True, overwrite=False)
    assert RunWriter(tmp_path / "r").start(changed, {}, resume=True, overwrite=False) == -1
    info = load_run(tmp_path / "r").info
    assert info["config"]["lr"] == 1e-4 and info["config"]["loss_params"] == {"la": 10.0} and info["status"] == "running"
    assert "failure" not in info and "error_type" not in info
    assert info["resumed_with"] == [
        {"epoch": 0, "changes": {"loss_params": {"from": {"la": 20.0}, "to": {"la": 10.0}}, "lr": {"from": 1e-3, "to": 1e-4}}}
    ]


def test_chance_levels_are_read_from_the_metrics_and_else_from_the_probe(small_run, tmp_path):
    from dmlviz.eval import recall_at_1_chance

    levels = small_run.chance_levels()
    table = small_run.metrics
    assert levels == {"recall@1": pytest.approx(table["recall@1_chance"].iloc[-1]), "nmi": pytest.approx(table["nmi_chance"].iloc[-1])}
    older = table.drop(columns=["recall@1_chance", "nmi_chance"])  # a run recorded before these columns
    probe = small_run.probe
    assert small_run.chance_levels(older) == {"recall@1": pytest.approx(recall_at_1_chance(probe["labels"][probe["split"] == 1]))}
    assert recall_at_1_chance([0, 0, 1, 1]) == pytest.approx(1 / 3) and np.isnan(recall_at_1_chance([0]))
