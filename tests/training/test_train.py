import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import dmlviz
from dmlviz.data import synthetic
from dmlviz.losses import LOSSES, SoftTriple
from dmlviz.training import TrainingDivergedError, choose_probe, epoch_batches
from dmlviz.training import trainer
from nan_losses import NanSoftTriple

COMMON = dict(model="linear", batch_size=32, embedding_dim=8, split="samples", progress=False)


def test_same_seed_same_run_on_cpu(small_synthetic, tmp_path):
    a = dmlviz.train(small_synthetic, loss="softtriple", epochs=2, centers_per_class=2, out=tmp_path / "a", seed=5, **COMMON)
    b = dmlviz.train(small_synthetic, loss="softtriple", epochs=2, centers_per_class=2, out=tmp_path / "b", seed=5, **COMMON)
    np.testing.assert_array_equal(a.snapshot(2).embeddings, b.snapshot(2).embeddings)
    np.testing.assert_array_equal(a.snapshot(2).centers, b.snapshot(2).centers)
    c = dmlviz.train(small_synthetic, loss="softtriple", epochs=2, centers_per_class=2, out=tmp_path / "c", seed=6, **COMMON)
    assert not np.array_equal(a.snapshot(2).embeddings, c.snapshot(2).embeddings)


@pytest.mark.parametrize("loss", sorted(set(LOSSES) - {"softtriple"}))
def test_every_loss_records_centers_or_class_means(small_synthetic, tmp_path, loss):
    run = dmlviz.train(small_synthetic, loss=loss, epochs=1, out=tmp_path / loss, **COMMON)
    snap = run.snapshot(1)
    if LOSSES[loss].needs_pairs and loss != "ccp":  # CCP: a pair loss on the batch and against its proxies
        assert snap.centers_kind == "class_means" and run.config["m_per_class"] == LOSSES[loss].preferred_m_per_class
    else:
        assert snap.centers_kind == "learned" and (not LOSSES[loss].needs_pairs or run.config["m_per_class"] == 4)
    k = run.config["loss_params"].get("proxies_per_class", 1)
    assert snap.centers.shape == (4, k, 8) and (snap.effective_k <= k).all()
    assert run.config["loss_params"] == LOSSES[loss](4, 8).hparams
    assert run.config.get("embedding_scale", "unit") == LOSSES[loss].embedding_scale
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


def test_m_per_class_with_few_classes_keeps_batches_full_and_covers_the_epoch():
    labels = np.repeat(np.arange(5), 500)  # like mnist5k-pairs' training split: 5 classes, 2,500 samples
    batches = epoch_batches(labels, 128, seed=0, epoch=1, m_per_class=4)
    drawn = sum(len(b) for b in batches)
    assert 2400 <= drawn <= 2600 and len(np.unique(np.concatenate(batches))) > 0.95 * 2500
    for batch in batches:
        counts = np.bincount(labels[batch])
        assert 115 <= len(batch) <= 128 and (counts > 0).sum() >= 2 and counts[counts > 0].min() >= 2
    again = epoch_batches(labels, 128, seed=0, epoch=1, m_per_class=4)
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))
    other = epoch_batches(labels, 128, seed=0, epoch=2, m_per_class=4)
    assert not np.array_equal(batches[0], other[0])


def test_m_per_class_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes.*has 1"):
        epoch_batches(np.zeros(10, dtype=int), 4, seed=0, epoch=1, m_per_class=2)


def test_probe_is_stratified_by_split_and_class():
    labels = np.repeat(np.arange(4), 100)
    split = np.tile(np.r_[np.zeros(80, int), np.ones(20, int)], 4)  # 80 % train, 20 % test in every class
    chosen = choose_probe(labels, 100, seed=0, split=split)
    assert len(chosen) == 100
    assert np.bincount(labels[chosen]).tolist() == [25] * 4
    assert np.bincount(split[chosen]).tolist() == [80, 20]


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
        (dict(seed=-1), "seed must be an integer >= 0, got -1"),
        (dict(seed=1.5), "seed must be an integer >= 0, got 1.5"),
        (dict(loss=SoftTriple(3, 8)), "num_classes=3, but split='samples' gives 4 training classes"),
        (dict(loss=SoftTriple(4, 16)), "loss object was built with embedding_dim=16, but embedding_dim=8"),
        (dict(model=torch.nn.Linear(16, 4)), "maps inputs of shape \\(2, 16\\) to \\(2, 4\\), but embedding_dim=8"),
        (dict(model=torch.nn.Linear(5, 8)), "cannot embed a batch of inputs of shape \\(2, 16\\)"),
        (dict(loss="triplet", batch_size=3), "loss 'triplet' compares pairs, so batch_size must be >= 4.*got 3"),
        (dict(dataset=synthetic(classes=3, dim=4, samples_per_mode=5), split="classes"),
         "split='classes' gives 2 training and 1 test classes.*split='samples'"),
        (dict(resume=True, out=None), "resume=True needs out= pointing at an existing run"),
    ],
)
def test_bad_arguments_are_named_and_nothing_is_written(small_synthetic, tmp_path, kwargs, message):
    args = {"dataset": small_synthetic, "loss": "softmax", "epochs": 1, "out": tmp_path / "bad", **COMMON, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        dmlviz.train(**args)
    assert not (tmp_path / "bad").exists()


def test_pair_losses_default_to_m_per_class_up_to_4(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, loss="triplet", epochs=1, out=tmp_path / "m", **{**COMMON, "batch_size": 6})
    assert run.config["m_per_class"] == 3 and run.status == "finished"


def _BlowsUp():
    """SoftTriple that returns NaN from the third batch of epoch 2 on (8 batches per epoch here)."""
    return NanSoftTriple(first=8 + 3)


def test_nan_loss_stops_marks_failed_and_keeps_last_good_epoch(small_synthetic, tmp_path):
    with pytest.raises(TrainingDivergedError, match="epoch 2.*keeps epoch 1.*la=10.*resume=True") as caught:
        dmlviz.train(small_synthetic, loss=_BlowsUp(), epochs=4, out=tmp_path / "nan", **{**COMMON, "batch_size": 20})
    run = dmlviz.load_run(tmp_path / "nan")
    assert run.status == "failed" and run.error == str(caught.value) and run.info["last_epoch"] == 1
    assert run.epochs == [0, 1] and run.metrics["epoch"].tolist() == [0, 1]
    assert np.isfinite(run.snapshot(1).embeddings).all()
    assert torch.load(run.checkpoint_path(), weights_only=True)["epoch"] == 1


class _PoisonsGradients(SoftTriple):
    """SoftTriple whose gradient becomes NaN in the last batch of epoch 2 (8 batches an epoch here):
    the loss stays finite while the embeddings' model or the centers turn NaN."""

    name = "softtriple"

    def __init__(self, target):
        super().__init__(4, 8, centers_per_class=2)
        self.target, self.calls = target, 0

    def compute(self, embeddings, labels):
        self.calls += 1
        if self.calls == 16:
            (embeddings if self.target == "embeddings" else self.weight).register_hook(lambda g: g * float("nan"))
        return super().compute(embeddings, labels)


@pytest.mark.parametrize("target, what", [("embeddings", "the model's embeddings"), ("centers", "the loss's centers")])
def test_nan_embeddings_or_centers_with_a_finite_loss_fail_the_same_way(small_synthetic, tmp_path, target, what):
    with pytest.raises(TrainingDivergedError) as caught:
        dmlviz.train(small_synthetic, loss=_PoisonsGradients(target), epochs=3, out=tmp_path / target, **{**COMMON, "batch_size": 20})
    message = str(caught.value)
    assert message.startswith(f"{what} became NaN or inf during epoch 2; the run stopped and keeps epoch 1 as its last good snapshot. Hint: lower la")
    assert "resume=True" in message
    run = dmlviz.load_run(tmp_path / target)
    assert run.status == "failed" and run.error == message and run.info["last_epoch"] == 1
    assert run.epochs == [0, 1] and run.metrics["epoch"].tolist() == [0, 1]
    assert torch.load(run.checkpoint_path(), weights_only=True)["epoch"] == 1


def test_a_failed_run_resumes_with_lower_lr_and_la(small_synthetic, tmp_path, monkeypatch):
    out, args = tmp_path / "nan", {**COMMON, "batch_size": 20}
    with pytest.raises(TrainingDivergedError):
        dmlviz.train(small_synthetic, loss=_BlowsUp(), epochs=4, out=out, **args)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    before = (out / "run.json").read_text()
    with pytest.raises(ValueError, match="checkpoint .* does not fit this model and loss"):  # K=3 centers cannot load K=2
        dmlviz.train(small_synthetic, loss="softtriple", centers_per_class=3, epochs=3, out=out, resume=True, **args)
    assert (out / "run.json").read_text() == before and sorted(dmlviz.load_run(out).epochs) == [0, 1]

    seen = {}
    real = trainer._train_epoch

    def spy(state, epoch):
        seen.setdefault("weight", state.setup.loss_fn.weight.detach().clone())
        seen.setdefault("lrs", {g["name"]: g["lr"] for g in state.setup.optimizer.param_groups})
        return real(state, epoch)

    monkeypatch.setattr(trainer, "_train_epoch", spy)
    run = dmlviz.train(small_synthetic, loss="softtriple", centers_per_class=2, la=10, lr=1e-4, epochs=3, out=out, resume=True, **args)
    assert run.status == "finished" and run.error is None and run.epochs == [0, 1, 2, 3]
    torch.testing.assert_close(seen["weight"], saved["loss"]["weight"])  # centers come from the checkpoint
    assert seen["lrs"] == {"model": 1e-4, "centers": 1e-3}
    assert run.config["lr"] == 1e-4 and run.config["loss_params"]["la"] == 10.0
    old_params = {"centers_per_class": 2, "la": 20.0, "gamma": 0.1, "tau": 0.2, "margin": 0.01}
    assert run.info["resumed_with"] == [{"epoch": 2, "changes": {
        "center_lr": {"from": 1e-2, "to": 1e-3},
        "loss_params": {"from": old_params, "to": {**old_params, "la": 10.0}},
        "lr": {"from": 1e-3, "to": 1e-4},
    }}]
    # a run that did not diverge keeps its settings
    with pytest.raises(ValueError, match="cannot resume.*lr: run has 0.0001, asked 0.001.*after a run that diverged.*is 'finished'"):
        dmlviz.train(small_synthetic, loss="softtriple", centers_per_class=2, la=10, epochs=4, out=out, resume=True, **args)


KILL_SCRIPT = r"""
# Runs every training in a child forked from this process, which only imports (forking a process
# that has run OpenMP work can hang the child). A child killed with os._exit dies like kill -9.
import json, os, sys, traceback, warnings
warnings.simplefilter("ignore")
import sklearn.cluster, torch, torch._dynamo  # imported once here, not in every child
import dmlviz, dmlviz.eval.clustering, dmlviz.eval.retrieval, dmlviz.training
from dmlviz.data import synthetic
from dmlviz.runs import writer as W

ds = synthetic(classes=4, modes_per_class=2, dim=16, samples_per_mode=20, seed=1)

def net():
    return torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 8))

def run(out, method=None, nth=0, resume=False):
    pid = os.fork()
    if pid:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    try:
        if method:
            original, calls = getattr(W.RunWriter, method), [0]
            def killing(self, *args, **kwargs):
                result = original(self, *args, **kwargs)
                calls[0] += 1
                if calls[0] == nth:
                    os._exit(9)
                return result
            setattr(W.RunWriter, method, killing)
        torch.manual_seed(0)
        dmlviz.train(ds, net(), "softtriple", epochs=2, batch_size=32, embedding_dim=8, split="samples",
                     centers_per_class=3, out=out, progress=False, seed=0, resume=resume)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)

base = sys.argv[1]
codes = {"reference": run(os.path.join(base, "reference"))}
for method, calls in json.loads(sys.argv[2]).items():
    for nth in range(1, calls + 1):
        out = os.path.join(base, f"{method}-{nth}")
        codes[f"{method}-{nth}"] = [run(out, method, nth), run(out, resume=True)]
print(json.dumps(codes))
"""
# With 2 epochs (0 = before training, 1, 2) the writer is called this often in a run.
WRITES = {"write_probe": 1, "write_epoch": 3, "append_metrics": 3, "write_checkpoint": 3, "update": 4}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_resume_after_a_kill_at_any_write_equals_an_uninterrupted_run(tmp_path):
    script = tmp_path / "kill_and_resume.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path), json.dumps(WRITES)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes.pop("reference") == 0
    ref = dmlviz.load_run(tmp_path / "reference")
    assert ref.epochs == [0, 1, 2]
    assert len(codes) == sum(WRITES.values())
    for case, (killed, resumed) in codes.items():
        assert (killed, resumed) == (9, 0), (case, done.stderr)
        run = dmlviz.load_run(tmp_path / case)
        assert run.status == "finished" and run.info["last_epoch"] == 2, case
        assert run.epochs == [0, 1, 2] and run.metrics["epoch"].tolist() == [0, 1, 2], case
        for epoch in ref.epochs:
            np.testing.assert_array_equal(run.snapshot(epoch).embeddings, ref.snapshot(epoch).embeddings, err_msg=case)
            np.testing.assert_array_equal(run.snapshot(epoch).centers, ref.snapshot(epoch).centers, err_msg=case)
        for column in ("loss", "recall@1", "map@r"):
            np.testing.assert_array_equal(run.metrics[column].to_numpy(), ref.metrics[column].to_numpy(), err_msg=case)
        assert not [n for n in os.listdir(tmp_path / case) if n.startswith(".tmp-")], case


def _dropout_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 8))


def test_resume_repeats_dropout_exactly(small_synthetic, tmp_path):
    args = dict(loss="softtriple", centers_per_class=2, **{k: v for k, v in COMMON.items() if k != "model"})
    straight = dmlviz.train(small_synthetic, _dropout_net(), epochs=2, out=tmp_path / "a", **args)
    dmlviz.train(small_synthetic, _dropout_net(), epochs=1, out=tmp_path / "b", **args)
    torch.manual_seed(123)  # whatever the global torch RNG holds, each epoch seeds it from (seed, epoch)
    resumed = dmlviz.train(small_synthetic, _dropout_net(), epochs=2, out=tmp_path / "b", resume=True, **args)
    np.testing.assert_array_equal(resumed.snapshot(2).embeddings, straight.snapshot(2).embeddings)
    np.testing.assert_array_equal(resumed.metrics["loss"].to_numpy()[1:], straight.metrics["loss"].to_numpy()[1:])

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
