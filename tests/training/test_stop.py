"""Runs stopped early (Ctrl-C, SIGKILL), failed with an error or a divergence, and refused hyper-parameters."""

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import dmlviz
from dmlviz.cli import main
from dmlviz.losses import SoftTriple
from dmlviz.runs import layout
from dmlviz.training import TrainingDivergedError, TrainingInterrupted, trainer

COMMON = dict(model="linear", batch_size=20, embedding_dim=8, split="samples", progress=False, seed=0)  # 8 batches an epoch


class _Raises(SoftTriple):
    """SoftTriple that raises ``error`` (or returns ``error`` as the loss, for a float) at its ``at``-th call."""

    name = "softtriple"

    def __init__(self, at=None, error=None):
        super().__init__(4, 8, centers_per_class=2)
        self.at, self.error, self.calls = at, error, 0

    def compute(self, embeddings, labels):
        self.calls += 1
        parts = super().compute(embeddings, labels)
        if self.calls == self.at:
            if isinstance(self.error, float):
                parts["classification"] = parts["classification"] * self.error
            else:
                raise self.error
        return parts


def _no_heartbeat_thread():
    return "dmlviz-heartbeat" not in [t.name for t in threading.enumerate()]


def test_ctrl_c_marks_the_run_stopped_and_resume_continues_it_exactly(small_synthetic, tmp_path):
    torch.manual_seed(1)
    straight = dmlviz.train(small_synthetic, loss=_Raises(), epochs=3, out=tmp_path / "straight", **COMMON)
    torch.manual_seed(1)
    with pytest.raises(TrainingInterrupted) as caught:  # a KeyboardInterrupt in batch 3 of epoch 2
        dmlviz.train(small_synthetic, loss=_Raises(at=8 + 3, error=KeyboardInterrupt()), epochs=3, out=tmp_path / "cut", **COMMON)
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.last_epoch == 1
    assert "during epoch 2" in str(caught.value) and "reads 'stopped' and keeps epoch 1 of 3" in str(caught.value)
    assert "resume=True" in str(caught.value) and _no_heartbeat_thread()
    run = dmlviz.load_run(tmp_path / "cut")
    assert run.status == run.recorded_status == "stopped" and run.last_epoch == 1 and run.epochs == [0, 1]
    assert run.info["stop_reason"] == "interrupted (KeyboardInterrupt)" and run.stopped_since is not None
    assert run.error is None and run.failure is None
    assert run.describe_status().startswith("stopped at epoch 1 of 3 (interrupted (KeyboardInterrupt), ")

    resumed = dmlviz.train(small_synthetic, loss="softtriple", centers_per_class=2, epochs=3, out=tmp_path / "cut", resume=True, **COMMON)
    assert resumed.status == "finished" and resumed.epochs == [0, 1, 2, 3]
    assert "stop_reason" not in resumed.info and "stopped_at" not in resumed.info and "resumed_with" not in resumed.info
    for epoch in (2, 3):
        np.testing.assert_array_equal(resumed.snapshot(epoch).embeddings, straight.snapshot(epoch).embeddings)
    np.testing.assert_array_equal(resumed.metrics["loss"].to_numpy()[1:], straight.metrics["loss"].to_numpy()[1:])


def test_an_exception_marks_failed_with_its_type_and_resume_keeps_the_settings(small_synthetic, tmp_path):
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    out = tmp_path / "oom"
    with pytest.raises(torch.cuda.OutOfMemoryError):
        dmlviz.train(small_synthetic, loss=_Raises(at=8 + 5, error=oom), epochs=3, out=out, **COMMON)
    run = dmlviz.load_run(out)
    assert run.status == "failed" and run.failure == "error" and run.error_type == "OutOfMemoryError"
    assert run.error == str(oom) and run.last_epoch == 1 and run.epochs == [0, 1] and _no_heartbeat_thread()
    with pytest.raises(ValueError, match="lr: run has 0.001, asked 0.0001.*failed with OutOfMemoryError, not a divergence"):
        dmlviz.train(small_synthetic, loss="softtriple", centers_per_class=2, lr=1e-4, epochs=3, out=out, resume=True, **COMMON)
    resumed = dmlviz.train(small_synthetic, loss="softtriple", centers_per_class=2, epochs=3, out=out, resume=True, **COMMON)
    assert resumed.status == "finished" and resumed.failure is None and "error_type" not in resumed.info


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nan_loss_stops_at_its_batch_before_the_optimizer_step(small_synthetic, tmp_path, monkeypatch, bad):
    steps = []
    real_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    torch.manual_seed(0)
    net = torch.nn.Linear(16, 8)
    loss = _Raises(at=8 + 3, error=bad)
    with pytest.raises(TrainingDivergedError, match=f"the loss became {bad} in batch 3 of 8 of epoch 2 .*before that batch's optimizer step.*keeps epoch 1"):
        dmlviz.train(small_synthetic, net, loss, epochs=3, out=tmp_path / "nan", **{k: v for k, v in COMMON.items() if k != "model"})
    assert len(steps) == 8 + 2  # epoch 1, then the 2 good batches of epoch 2
    assert all(torch.isfinite(p).all() for p in [*net.parameters(), *loss.parameters()])  # never stepped with NaN
    run = dmlviz.load_run(tmp_path / "nan")
    assert run.failure == "diverged" and run.error_type == "TrainingDivergedError" and run.last_epoch == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=float("inf")), "lr must be a finite number > 0, e.g. 0.001, got inf; NaN and inf are not accepted"),
        (dict(lr=float("nan")), "lr must be a finite number > 0, e.g. 0.001, got nan"),
        (dict(center_lr=float("inf")), "center_lr must be a finite number > 0, e.g. 0.01, got inf"),
        (dict(eps=float("inf")), "eps must be a finite number > 0, e.g. 0.05, got inf"),
        (dict(la=float("inf")), "la must be a finite number > 0, e.g. 20.0, got inf"),
        (dict(gamma=float("nan")), "gamma must be a finite number > 0, e.g. 0.1, got nan"),
        (dict(tau=float("inf")), "tau must be a finite number >= 0, e.g. 0.2, got inf"),
        (dict(margin=float("-inf")), "margin must be a finite number >= 0, e.g. 0.01, got -inf"),
        (dict(loss="triplet", margin=float("inf")), "margin must be a finite number > 0, e.g. 0.1, got inf"),
        (dict(loss="proxyanchor", alpha=float("nan")), "alpha must be a finite number > 0, e.g. 32.0, got nan"),
        (dict(loss="multisimilarity", beta=float("inf")), "beta must be a finite number > 0, e.g. 50.0, got inf"),
        (dict(loss="circle", gamma=float("inf")), "gamma must be a finite number > 0, e.g. 80.0, got inf"),
        (dict(loss="proxynca", softmax_scale=float("inf")), "softmax_scale must be a finite number > 0, e.g. 1.0, got inf"),
        (dict(lr=True), "lr must be a finite number > 0, e.g. 0.001, got True \\(bool\\)"),
    ],
)
def test_nan_and_inf_hyper_parameters_are_refused(small_synthetic, tmp_path, kwargs, message):
    args = {"loss": "softtriple", "epochs": 1, "out": tmp_path / "bad", **COMMON, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        dmlviz.train(small_synthetic, **args)
    assert not (tmp_path / "bad").exists()


class _Slow(SoftTriple):
    """SoftTriple whose second batch of epoch 1 takes 0.6 s; records run.json's heartbeat at batches 1 and 3."""

    name = "softtriple"

    def __init__(self, run_json):
        super().__init__(4, 8, centers_per_class=2)
        self.run_json, self.calls, self.beats = run_json, 0, []

    def compute(self, embeddings, labels):
        self.calls += 1
        if self.calls in (1, 3):
            self.beats.append(json.loads(self.run_json.read_text())["heartbeat"])
        if self.calls == 2:
            time.sleep(0.6)
        return super().compute(embeddings, labels)


def test_the_heartbeat_is_refreshed_during_a_long_epoch_and_ends_with_the_run(small_synthetic, tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "HEARTBEAT_SECONDS", 0.1)
    loss = _Slow(tmp_path / "slow" / "run.json")
    run = dmlviz.train(small_synthetic, loss=loss, epochs=1, out=tmp_path / "slow", **COMMON)
    first, later = loss.beats
    assert later > first  # refreshed within epoch 1, between two batches (ISO times in UTC sort as text)
    assert run.status == "finished" and _no_heartbeat_thread()


KILLED_SCRIPT = r"""
import sys, time, torch
import dmlviz
from dmlviz.data import synthetic
from dmlviz.losses import SoftTriple
from dmlviz.runs import layout

layout.HEARTBEAT_SECONDS = 0.1

class Slow(SoftTriple):
    name = "softtriple"
    def __init__(self):
        super().__init__(4, 8, centers_per_class=2)
    def compute(self, embeddings, labels):
        time.sleep(0.05)
        return super().compute(embeddings, labels)

ds = synthetic(classes=4, modes_per_class=2, dim=16, samples_per_mode=40, seed=1)
torch.manual_seed(0)
dmlviz.train(ds, "linear", Slow(), epochs=1000, batch_size=20, embedding_dim=8, split="samples", out=sys.argv[1], progress=False, seed=0)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_run_killed_with_sigkill_reads_stopped_once_its_heartbeat_is_old(small_synthetic, tmp_path):
    script, out = tmp_path / "train.py", tmp_path / "killed"
    script.write_text(KILLED_SCRIPT)
    child = subprocess.Popen([sys.executable, str(script), str(out)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out / "epoch_0002.npz").exists():
            assert child.poll() is None, child.stderr.read().decode()
            time.sleep(0.1)
        run = dmlviz.load_run(out)
        assert run.status == "running" and run.alive
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    run.refresh()
    last_beat = run.heartbeat
    assert run.recorded_status == "running"
    run.heartbeat_timeout = 0.5  # instead of waiting 30 s
    time.sleep(0.7)
    assert run.status == "stopped" and run.stopped_since == last_beat and run.stop_reason == "no heartbeat"
    assert "(no heartbeat: its process is gone)" in run.describe_status()
    done = run.last_epoch
    resumed = dmlviz.train(small_synthetic, loss="softtriple", centers_per_class=2, epochs=done + 1, out=out, resume=True, **COMMON)
    assert resumed.status == "finished" and resumed.epochs == list(range(done + 2))


def test_ctrl_c_in_the_cli_says_the_run_is_stopped_and_how_to_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli"
    real = trainer._train_epoch
    calls = []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "_train_epoch", interrupted_in_epoch_2)
    argv = ["train", "--dataset", "digits", "--loss", "softmax", "--epochs", "3", "--batch-size", "64", "--embedding-dim", "8",
            "--probe-size", "200", "--no-progress", "--out", str(out)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "dmlviz train: stopped (Ctrl-C)" in err and "reads 'stopped' and keeps epoch 1 of 3" in err
    command = err.strip().splitlines()[-1].strip()
    assert command.startswith("dmlviz train --out") and "--resume" in command
    assert dmlviz.load_run(out).status == "stopped"
    monkeypatch.setattr(trainer, "_train_epoch", real)
    assert main(shlex.split(command)[1:]) == 0  # the printed command continues the run
    run = dmlviz.load_run(out)
    assert run.status == "finished" and run.epochs == [0, 1, 2, 3] and math.isfinite(run.metrics["loss"].iloc[-1])
    assert main(["eval", str(out)]) == 0
