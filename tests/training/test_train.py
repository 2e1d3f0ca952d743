import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import dmlviz
from dmlviz.losses import SoftTriple
from dmlviz.training import TrainingDivergedError, epoch_batches

COMMON = dict(model="linear", batch_size=32, embedding_dim=8, split="samples", progress=False)


def test_same_seed_same_run_on_cpu(small_synthetic, tmp_path):
    a = dmlviz.train(small_synthetic, loss="softtriple", epochs=2, centers_per_class=2, out=tmp_path / "a", seed=5, **COMMON)
    b = dmlviz.train(small_synthetic, loss="softtriple", epochs=2, centers_per_class=2, out=tmp_path / "b", seed=5, **COMMON)
    np.testing.assert_array_equal(a.snapshot(2).embeddings, b.snapshot(2).embeddings)
    np.testing.assert_array_equal(a.snapshot(2).centers, b.snapshot(2).centers)
    c = dmlviz.train(small_synthetic, loss="softtriple", epochs=2, centers_per_class=2, out=tmp_path / "c", seed=6, **COMMON)
    assert not np.array_equal(a.snapshot(2).embeddings, c.snapshot(2).embeddings)


@pytest.mark.parametrize("loss", ["triplet", "multisimilarity", "circle", "proxynca", "proxyanchor", "softmax"])
def test_every_loss_records_centers_or_class_means(small_synthetic, tmp_path, loss):
    run = dmlviz.train(small_synthetic, loss=loss, epochs=1, out=tmp_path / loss, **COMMON)
    snap = run.snapshot(1)
    if loss in ("triplet", "multisimilarity", "circle"):
        assert snap.centers_kind == "class_means" and run.config["m_per_class"] == 4
    else:
        assert snap.centers_kind == "learned"
    assert snap.centers.shape == (4, 1, 8) and (snap.effective_k == 1).all()
    assert math.isfinite(run.metrics.iloc[-1]["recall@1"])


def test_class_split_records_test_classes_without_centers(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, loss="softtriple", epochs=1, centers_per_class=2, out=tmp_path / "r", **{**COMMON, "split": "classes"})
    snap = run.snapshot(1)
    np.testing.assert_array_equal(snap.center_classes, [0, 1])
    unseen = np.isin(snap.labels, [2, 3])
    assert (snap.split[unseen] == "test").all() and (snap.assignments[unseen] == -1).all()
    assert (snap.assignments[~unseen] >= 0).all()


def test_epoch_batches_m_per_class_and_determinism():
    labels = np.repeat(np.arange(6), 10)
    batches = epoch_batches(labels, 12, seed=1, epoch=3, m_per_class=3)
    assert len(batches) == 5
    for batch in batches:
        assert len(batch) == 12 and sorted(np.bincount(labels[batch])[np.bincount(labels[batch]) > 0]) == [3, 3, 3, 3]
    again = epoch_batches(labels, 12, seed=1, epoch=3, m_per_class=3)
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))
    plain = epoch_batches(labels, 16, seed=1, epoch=0)
    assert len(plain) == 3 and len(np.unique(np.concatenate(plain))) == 48


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
        (dict(embedding_dim=0), "embedding_dim must be an integer >= 1, got 0"),
        (dict(loss="softtriple", centers_per_class=0), "centers_per_class must be an integer >= 1, got 0"),
        (dict(loss="arcface2"), "unknown loss 'arcface2'.*softtriple"),
        (dict(model="vit"), "unknown model 'vit'.*linear"),
        (dict(dataset="cub"), "unknown dataset 'cub'.*mnist5k"),
        (dict(device="tpu"), "device must be 'auto', 'cpu', 'cuda'"),
        (dict(split="random"), "split must be one of"),
        (dict(m_per_class=20), "m_per_class=20 leaves fewer than 2 classes"),
    ],
)
def test_bad_arguments_are_named_and_nothing_is_written(small_synthetic, tmp_path, kwargs, message):
    args = {"dataset": small_synthetic, "loss": "softmax", "epochs": 1, **COMMON, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        dmlviz.train(**args, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


class _BlowsUp(SoftTriple):
    """SoftTriple that returns NaN from the third batch of epoch 2 on."""

    name = "softtriple"

    def __init__(self):
        super().__init__(4, 8, centers_per_class=2)
        self.calls = 0

    def compute(self, embeddings, labels):
        self.calls += 1
        parts = super().compute(embeddings, labels)
        if self.calls > 8 + 2:  # 8 batches per epoch here
            parts["classification"] = parts["classification"] * float("nan")
        return parts


def test_nan_loss_stops_marks_failed_and_keeps_last_good_epoch(small_synthetic, tmp_path):
    with pytest.raises(TrainingDivergedError, match="epoch 2.*keeps epoch 1.*la=10"):
        dmlviz.train(small_synthetic, loss=_BlowsUp(), epochs=4, out=tmp_path / "nan", **{**COMMON, "batch_size": 20})
    run = dmlviz.load_run(tmp_path / "nan")
    assert run.status == "failed" and "epoch 2" in run.error and "la" in run.error
    assert run.epochs == [0, 1] and run.metrics["epoch"].tolist() == [0, 1]
    assert np.isfinite(run.snapshot(1).embeddings).all()
    assert torch.load(run.checkpoint_path(), weights_only=True)["epoch"] == 1


TRAIN_SCRIPT = """
import sys, time, dmlviz
from dmlviz.data import synthetic
import dmlviz.training.trainer as trainer
slow = trainer._train_epoch
def paced(*args, **kwargs):
    time.sleep(float(sys.argv[2]))
    return slow(*args, **kwargs)
trainer._train_epoch = paced
ds = synthetic(classes=4, modes_per_class=2, dim=16, samples_per_mode=40, seed=1)
dmlviz.train(ds, "linear", "softtriple", epochs=6, batch_size=32, embedding_dim=8, split="samples",
             centers_per_class=3, out=sys.argv[1], progress=False, seed=0, resume=len(sys.argv) > 3)
"""


def test_resume_after_a_kill_loses_and_repeats_no_epoch(tmp_path):
    script = tmp_path / "train_it.py"
    script.write_text(TRAIN_SCRIPT)
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, str(script), str(reference), "0"], check=True, timeout=300)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "1.0"])
    deadline = time.time() + 240
    while not (killed / "epoch_0002.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = dmlviz.load_run(killed)
    assert partial.status == "running" and 2 <= partial.epochs[-1] < 6
    subprocess.run([sys.executable, str(script), str(killed), "0", "resume"], check=True, timeout=300)
    resumed, ref = dmlviz.load_run(killed), dmlviz.load_run(reference)
    assert resumed.status == "finished" and resumed.epochs == list(range(7))
    assert resumed.metrics["epoch"].tolist() == list(range(7))
    for epoch in (0, 3, 6):
        np.testing.assert_allclose(resumed.snapshot(epoch).embeddings, ref.snapshot(epoch).embeddings, atol=1e-6)
        np.testing.assert_allclose(resumed.snapshot(epoch).centers, ref.snapshot(epoch).centers, atol=1e-6)
    np.testing.assert_allclose(resumed.metrics["loss"].to_numpy()[1:], ref.metrics["loss"].to_numpy()[1:], rtol=1e-5)
    assert not [n for n in os.listdir(killed) if n.startswith(".tmp-")]


def test_resume_discards_a_half_recorded_epoch(small_run, tmp_path, small_synthetic):
    import shutil

    copy = tmp_path / "cut"
    shutil.copytree(small_run.path, copy)
    # epoch 4 was written but the process died before its checkpoint
    shutil.copy(copy / "epoch_0003.npz", copy / "epoch_0004.npz")
    state = torch.load(copy / "checkpoint.pt", weights_only=True)
    state["epoch"] = 2
    torch.save(state, copy / "checkpoint.pt")
    run = dmlviz.train(small_synthetic, "linear", "softtriple", epochs=3, batch_size=32, embedding_dim=8, split="samples",
                       centers_per_class=3, out=copy, progress=False, seed=0, resume=True)
    assert run.epochs == [0, 1, 2, 3] and run.metrics["epoch"].tolist() == [0, 1, 2, 3]


def test_resume_can_extend_a_finished_run(small_run, tmp_path, small_synthetic):
    import shutil

    copy = tmp_path / "longer"
    shutil.copytree(small_run.path, copy)
    run = dmlviz.train(small_synthetic, "linear", "softtriple", epochs=5, batch_size=32, embedding_dim=8, split="samples",
                       centers_per_class=3, out=copy, progress=False, seed=0, resume=True)
    assert run.epochs == [0, 1, 2, 3, 4, 5] and run.config["epochs"] == 5 and run.status == "finished"


def test_user_dataset_and_module(tmp_path):
    from dmlviz.data import ArrayDataset

    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.normal(size=(60, 5)).astype(np.float32), np.repeat(np.arange(3), 20), name="mine")
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    run = dmlviz.train(ds, net, "proxyanchor", epochs=1, batch_size=16, embedding_dim=4, split="samples", out=tmp_path / "m", progress=False)
    assert run.config["dataset"] == "custom:ArrayDataset" and run.config["model"] == "custom:Sequential"
    assert run.snapshot(1).embeddings.shape == (60, 4)
