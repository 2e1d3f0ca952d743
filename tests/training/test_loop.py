"""The training loop's speed paths give the run the plain path gives: resident batches, background recording,
the sync-free NaN guard (fused Adam's found_inf), and one TrainConfig for Python and the command line."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import dmlviz
from dmlviz.cli import build_parser, train_config
from dmlviz.training import TrainConfig, TrainingDivergedError, builder, trainer
from nan_losses import NanSoftTriple

NO_K = dict(model="linear", batch_size=32, embedding_dim=8, split="samples", progress=False)
COMMON = dict(NO_K, centers_per_class=2)


def _same_runs(a, b, atol=0.0):
    assert a.epochs == b.epochs
    for epoch in a.epochs:
        np.testing.assert_allclose(a.snapshot(epoch).embeddings, b.snapshot(epoch).embeddings, atol=atol, rtol=0)
        np.testing.assert_allclose(a.snapshot(epoch).centers, b.snapshot(epoch).centers, atol=atol, rtol=0)
    columns = [c for c in a.metrics if c not in ("seconds", "record_seconds")]
    pd.testing.assert_frame_equal(a.metrics[columns], b.metrics[columns], atol=max(atol, 1e-12), rtol=0)


def test_resident_batches_and_background_recording_give_the_same_run(small_synthetic, tmp_path):
    plain = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "plain", resident=False, record_async=False, **COMMON)
    fast = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "fast", resident=True, record_async=True, **COMMON)
    assert plain.status == fast.status == "finished"
    _same_runs(plain, fast)
    # the checkpoint written by the background thread is the epoch's own state
    state = torch.load(fast.checkpoint_path(), weights_only=True)
    want = torch.load(plain.checkpoint_path(), weights_only=True)
    assert state["epoch"] == 3
    torch.testing.assert_close(state["loss"]["weight"], want["loss"]["weight"], rtol=0, atol=0)
    torch.testing.assert_close(state["optimizer"]["state"][0]["exp_avg"], want["optimizer"]["state"][0]["exp_avg"], rtol=0, atol=0)
    # and resuming from it continues as the plain run does
    more = dmlviz.train(small_synthetic, epochs=4, out=tmp_path / "fast", resume=True, record_async=True, **COMMON)
    again = dmlviz.train(small_synthetic, epochs=4, out=tmp_path / "plain", resume=True, **COMMON)
    _same_runs(more, again)


def test_resident_true_is_refused_for_a_dataset_read_through_a_dataloader(tmp_path):
    from image_trees import make_cub

    root = make_cub(tmp_path / "data")
    with pytest.raises(ValueError, match="resident=True keeps an in-memory dataset on the device, but ImageDataset"):
        dmlviz.train("cub200", data_root=root, model="cnn", epochs=1, out=tmp_path / "r", resident=True,
                     data_params={"image_size": 16, "resize": 18}, progress=False, batch_size=4, embedding_dim=4)
    assert not (tmp_path / "r").exists()


def _NanInBatch():
    """SoftTriple whose loss is NaN in batch 3 of epoch 2 only (10 batches an epoch here)."""
    return NanSoftTriple(first=10 + 3, last=10 + 3)


def test_sync_free_guard_skips_the_nan_step_on_the_device_and_stops_at_the_end_of_the_epoch(small_synthetic, tmp_path, monkeypatch):
    """The CUDA loop's guard (no host sync per batch), run on the CPU with fused Adam."""
    monkeypatch.setattr(builder, "fused_adam", lambda device: True)
    seen = {}
    real = trainer._train_epoch

    def spy(state, epoch):
        try:
            return real(state, epoch)
        finally:
            seen[epoch] = {name: p.detach().clone() for name, p in state.setup.loss_fn.named_parameters()}
            seen["fused"] = state.setup.optimizer.defaults["fused"]

    monkeypatch.setattr(trainer, "_train_epoch", spy)
    with pytest.raises(TrainingDivergedError, match=r"batch 3 of 10 of epoch 2 \(that batch's optimizer step was skipped"):
        dmlviz.train(small_synthetic, loss=_NanInBatch(), epochs=3, out=tmp_path / "nan", **{**NO_K, "batch_size": 16})
    assert seen["fused"] is True
    assert all(torch.isfinite(w).all() for w in seen[2].values())  # the NaN step never reached the centers
    run = dmlviz.load_run(tmp_path / "nan")
    assert run.status == "failed" and run.info["failure"] == "diverged" and run.info["last_epoch"] == 1 and run.epochs == [0, 1]


def test_sync_free_loop_trains_like_the_checked_loop(small_synthetic, tmp_path, monkeypatch):
    plain = dmlviz.train(small_synthetic, epochs=2, out=tmp_path / "plain", **COMMON)
    monkeypatch.setattr(builder, "fused_adam", lambda device: True)
    fused = dmlviz.train(small_synthetic, epochs=2, out=tmp_path / "fused", **COMMON)
    _same_runs(plain, fused, atol=1e-5)  # fused and for-each Adam round differently


def test_a_run_resumes_with_the_other_adam(small_synthetic, tmp_path, monkeypatch):
    """A checkpoint from a CPU run resumed where Adam is fused (CUDA; faked on the CPU), and back: each resumed run steps
    with its own device's Adam. Before, the saved groups' fused=None won, and foreach Adam refused the loop's found_inf."""
    dmlviz.train(small_synthetic, epochs=1, out=tmp_path / "run", **COMMON)
    with monkeypatch.context() as patch:
        patch.setattr(builder, "fused_adam", lambda device: True)
        fused = dmlviz.train(small_synthetic, epochs=2, out=tmp_path / "run", resume=True, **COMMON)
    assert fused.status == "finished" and fused.epochs == [0, 1, 2]
    groups = torch.load(fused.checkpoint_path(), weights_only=True)["optimizer"]["param_groups"]
    assert all(group["fused"] for group in groups)
    plain = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "run", resume=True, **COMMON)
    assert plain.status == "finished" and plain.epochs == [0, 1, 2, 3]
    groups = torch.load(plain.checkpoint_path(), weights_only=True)["optimizer"]["param_groups"]
    assert not any(group["fused"] for group in groups)


def test_train_takes_a_config_and_the_cli_builds_the_same_one():
    args = build_parser().parse_args(
        ["train", "--dataset", "digits", "--loss", "softtriple", "--tau", "0.5", "--epochs", "3", "--param", "gamma=0.2", "--nmi-every", "2"]
    )
    from_cli = train_config(args)
    from_python = TrainConfig.from_options(dataset="digits", loss="softtriple", tau=0.5, gamma=0.2, epochs=3, nmi_every=2)
    assert from_cli == from_python
    fast = train_config(build_parser().parse_args(["train", "--resident", "off", "--record-async", "on"]))
    assert fast.resident is False and fast.record_async is True
    assert from_python.loss_params == {"tau": 0.5, "gamma": 0.2}
    assert from_python.resolved_center_lr == 10 * from_python.lr


@pytest.mark.parametrize("options, message", [
    (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
    (dict(resident="yes"), "resident must be 'auto', True or False, got 'yes'"),
    (dict(record_async=None), "record_async must be 'auto', True or False, got None"),
    (dict(image_size=32), r"\['image_size'\] are dataset parameters, not loss parameters: pass data_params=\{'image_size': 32\}"),
    (dict(num_workers=-1), "num_workers must be an integer >= 0, got -1"),
    (dict(data_params=[1]), "data_params must be a dict of options"),
])
def test_config_names_the_bad_option(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        TrainConfig.from_options(**options)


def test_a_config_runs_and_options_change_it(small_synthetic, tmp_path):
    config = TrainConfig(dataset=small_synthetic, epochs=1, out=tmp_path / "a", batch_size=32, embedding_dim=8, split="samples",
                         progress=False, loss_params={"centers_per_class": 2})
    run = dmlviz.train(config, epochs=2)
    assert run.epochs == [0, 1, 2] and run.config["epochs"] == 2 and run.config["world_size"] == 1
    assert math.isfinite(run.metrics["loss"].iloc[-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_resident_fused_background_trains_like_the_cpu(small_synthetic, tmp_path):
    """On a GPU: batches indexed on the device, fused Adam's NaN guard, recording in the background, bf16 autocast."""
    cpu = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "cpu", device="cpu", **COMMON)
    gpu = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "gpu", device="cuda", **COMMON)
    assert gpu.config["device"].startswith("cuda") and gpu.config["amp"] == "bf16" and gpu.status == "finished"
    # bf16 autocast rounds the embeddings: the runs agree loosely, every epoch recorded
    assert gpu.epochs == cpu.epochs
    assert abs(gpu.metrics["loss"].iloc[-1] - cpu.metrics["loss"].iloc[-1]) < 0.1 * abs(cpu.metrics["loss"].iloc[-1])
    state = torch.load(gpu.checkpoint_path(), weights_only=True)
    assert state["epoch"] == 3 and all(torch.isfinite(v).all() for v in state["loss"].values())
    with pytest.raises(TrainingDivergedError, match=r"batch 3 of 10 of epoch 2 \(that batch's optimizer step was skipped"):
        dmlviz.train(small_synthetic, loss=_NanInBatch(), epochs=3, out=tmp_path / "nan", device="cuda", **{**NO_K, "batch_size": 16})
    assert dmlviz.load_run(tmp_path / "nan").info["last_epoch"] == 1
