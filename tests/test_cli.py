import subprocess
import sys

import pytest

from dmlviz.cli import main


def test_train_and_eval_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "cli-run"
    rc = main(["train", "--dataset", "digits-pairs", "--loss", "softtriple", "--epochs", "2", "--split", "samples",
               "--centers-per-class", "3", "--la", "10", "--embedding-dim", "16", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "run written to" in printed and "recall@1" in printed
    assert (out / "epoch_0002.npz").exists()
    assert main(["eval", str(out), "--epoch", "2"]) == 0
    assert {"submode_score", "nmi_chance"} <= set(capsys.readouterr().out.split())  # NMI printed with its chance level
    rc = main(["train", "--dataset", "digits-pairs", "--loss", "softtriple", "--epochs", "3", "--split", "samples",
               "--centers-per-class", "3", "--la", "10", "--embedding-dim", "16", "--out", str(out), "--no-progress", "--resume"])
    assert rc == 0 and (out / "epoch_0003.npz").exists()


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["train", "--loss", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown loss 'nope'; known loss names are:" in capsys.readouterr().err
    assert main(["train", "--epochs", "0", "--out", str(tmp_path / "x")]) == 2
    assert "epochs must be an integer >= 1" in capsys.readouterr().err
    assert main(["train", "--param", "mining=hard", "--loss", "softtriple", "--out", str(tmp_path / "x")]) == 2
    assert "does not take ['mining']" in capsys.readouterr().err


def test_a_diverged_run_exits_1(tmp_path, capsys, monkeypatch):
    from dmlviz.training import trainer

    monkeypatch.setattr(trainer, "_train_epoch", lambda *args: {"loss": float("nan"), "seconds": 0.0})
    rc = main(["train", "--dataset", "digits-pairs", "--loss", "softmax", "--epochs", "2", "--split", "samples",
               "--embedding-dim", "8", "--out", str(tmp_path / "nan"), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "TrainingDivergedError: the loss became nan during epoch 1; the run stopped and keeps epoch 0" in err


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "dmlviz.cli", "train", "--help"], capture_output=True, text=True, check=True)
    for flag in ("--resume", "--centers-per-class", "--split", "--m-per-class", "--device"):
        assert flag in result.stdout
    with pytest.raises(SystemExit):
        main(["frobnicate"])


def test_compare_trains_the_grid_once_and_serves_the_comparison(tmp_path, capsys, monkeypatch):
    args = ["compare", "--losses", "softmax,triplet+mdr:mining=distance;margin=0.2;scale=mean_distance", "--dataset", "digits-pairs",
            "--epochs", "1", "--split", "samples", "--embedding-dim", "8", "--runs-dir", str(tmp_path), "--name", "g", "--no-progress"]
    served = {}
    monkeypatch.setattr("dmlviz.serve.serve", lambda runs_dir, **kw: served.update(kw, runs_dir=runs_dir) or 0)
    assert main(args) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["g-softmax", "g-triplet+mdr-mining=distance-margin=0.2-scale=mean_distance"]
    assert served["compare"] == ["g-softmax", names[1]] and served["runs_dir"] == str(tmp_path)
    stamp = (tmp_path / "g-softmax" / "checkpoint.pt").stat().st_mtime_ns
    assert main(args + ["--no-serve"]) == 0  # the runs exist: kept, not trained again
    assert (tmp_path / "g-softmax" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert "recall@1" in capsys.readouterr().out
    assert main(["compare", "--losses", "softmax,nope", "--runs-dir", str(tmp_path)]) == 2
    assert "unknown loss 'nope'" in capsys.readouterr().err
    assert main(["compare", "--losses", "softmax,triplet", "--out", str(tmp_path / "x")]) == 2
    assert "drop --out" in capsys.readouterr().err
