"""Several processes: ``torchrun --nproc-per-node 2 -m dmlviz train`` on the CPU (gloo) writes the run a 1-process
run writes, with the same metrics; resume works across process counts; shards of a batch are whole classes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import dmlviz
from dmlviz.cli import main
from dmlviz.training.distributed import Processes, check_shardable, shard

ARGS = ["--dataset", "digits", "--model", "linear", "--embedding-dim", "16", "--batch-size", "64", "--split", "samples",
        "--probe-size", "300", "--device", "cpu", "--no-progress"]
#: the 2-process run sums the same numbers in another order (the gradient of a global batch of 64 from two
#: shards of 32, averaged by DDP): embeddings agree to 1e-4 after 2 epochs, and so metrics do to 1e-3
TOLERANCE = dict(embeddings=1e-4, metrics=1e-3)


def _torchrun(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "dmlviz", "train", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("run written to") == 1  # rank 0 speaks for the run


def _compare(one, two):
    assert one.epochs == two.epochs
    for epoch in one.epochs:
        a, b = one.snapshot(epoch), two.snapshot(epoch)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.embeddings, b.embeddings, atol=TOLERANCE["embeddings"], rtol=0)
        np.testing.assert_allclose(a.centers, b.centers, atol=TOLERANCE["embeddings"], rtol=0)
    columns = ["loss", "recall@1", "recall@2", "map@r", "r_precision", "nmi", "effective_k"]
    np.testing.assert_allclose(one.metrics[columns].to_numpy(), two.metrics[columns].to_numpy(), atol=TOLERANCE["metrics"], rtol=0)


@pytest.mark.slow
def test_two_processes_write_the_run_one_process_writes_and_resume(tmp_path):
    softtriple = ["--loss", "softtriple", "--centers-per-class", "2"]
    assert main(["train", *ARGS, *softtriple, "--epochs", "2", "--out", str(tmp_path / "one")]) == 0
    _torchrun(*ARGS, *softtriple, "--epochs", "1", "--out", str(tmp_path / "two"))
    _torchrun(*ARGS, *softtriple, "--epochs", "2", "--out", str(tmp_path / "two"), "--resume")
    one, two = dmlviz.load_run(tmp_path / "one"), dmlviz.load_run(tmp_path / "two")
    assert two.status == "finished" and two.config["world_size"] == 2 and one.config["world_size"] == 1
    assert sorted(os.listdir(tmp_path / "one")) == sorted(os.listdir(tmp_path / "two"))
    _compare(one, two)
    # and a 2-process run resumes in one process
    assert main(["train", *ARGS, *softtriple, "--epochs", "3", "--out", str(tmp_path / "two"), "--resume"]) == 0
    assert main(["train", *ARGS, *softtriple, "--epochs", "3", "--out", str(tmp_path / "one"), "--resume"]) == 0
    _compare(dmlviz.load_run(tmp_path / "one"), dmlviz.load_run(tmp_path / "two"))


@pytest.mark.slow
def test_two_processes_gather_the_batch_for_a_pair_loss(tmp_path):
    pair = ["--loss", "multisimilarity"]  # m_per_class batches: 10 classes of 6 samples, 5 classes per rank
    assert main(["train", *ARGS, *pair, "--epochs", "1", "--out", str(tmp_path / "one")]) == 0
    _torchrun(*ARGS, *pair, "--epochs", "1", "--out", str(tmp_path / "two"))
    one, two = dmlviz.load_run(tmp_path / "one"), dmlviz.load_run(tmp_path / "two")
    assert two.config["m_per_class"] == one.config["m_per_class"] == 4
    _compare(one, two)


def test_shards_are_contiguous_whole_classes_in_rank_order():
    batch = np.arange(24)  # 4 classes of m = 6 in a row
    parts = [shard(batch, Processes(rank, 2), unit=6) for rank in range(2)]
    np.testing.assert_array_equal(np.concatenate(parts), batch)
    assert [len(p) for p in parts] == [12, 12]
    three = [shard(batch, Processes(rank, 3), unit=6) for rank in range(3)]  # 4 classes on 3 ranks: one left out
    assert [len(p) for p in three] == [6, 6, 6]
    np.testing.assert_array_equal(shard(batch, Processes(), unit=6), batch)
    with pytest.raises(ValueError, match="a batch of 24 holds 4 classes of 6 samples, fewer than the 8 processes; use batch_size >= 48"):
        check_shardable([batch], Processes(0, 8), unit=6)
