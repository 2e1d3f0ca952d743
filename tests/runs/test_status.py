"""How a run says what happened: stopped (Ctrl-C or no heartbeat), failure kinds, heartbeat, stale layouts."""

import datetime as dt
import json
import shlex
import shutil
import threading
import time

import numpy as np
import pytest
import torch

from dmlviz.cli import build_parser
from dmlviz.runs import RunWriter, layout, load_run


def _ago(seconds: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def _copy(small_run, tmp_path, name="copy", **fields):
    copy = tmp_path / name
    shutil.copytree(small_run.path, copy, ignore=shutil.ignore_patterns("projections"))
    info = json.loads((copy / "run.json").read_text())
    info.update(fields)
    (copy / "run.json").write_text(json.dumps(info))
    return copy


def test_stopped_is_a_status():
    assert "stopped" in layout.STATUSES and layout.FAILURES == ("diverged", "error")
    assert layout.HEARTBEAT_SECONDS * 3 <= layout.HEARTBEAT_TIMEOUT_SECONDS == 30


def test_a_running_run_without_heartbeat_for_30_s_reads_stopped(small_run, tmp_path):
    beat = _ago(31)
    run = load_run(_copy(small_run, tmp_path, status="running", heartbeat=beat, last_epoch=2))
    assert run.recorded_status == "running" and run.status == "stopped" and not run.alive
    assert run.stopped_since == dt.datetime.fromisoformat(beat) and run.stop_reason == "no heartbeat"
    text = run.describe_status()
    assert text.startswith("stopped since ") and "(no heartbeat: its process is gone); stopped at epoch 2 of 3" in text
    assert text.endswith(f"resume with dmlviz.train(<the same arguments>, out={str(run.path)!r}, resume=True)")  # custom dataset
    assert "status='stopped'" in repr(run)


def test_a_fresh_heartbeat_reads_running_and_older_runs_keep_their_status(small_run, tmp_path):
    run = load_run(_copy(small_run, tmp_path, "fresh", status="running", heartbeat=_ago(5)))
    assert run.status == "running" and run.alive and run.stopped_since is None and run.stop_reason is None
    run.heartbeat_timeout = 2.0  # the timeout is an attribute, e.g. for a slow network file system
    assert run.status == "stopped"
    legacy = load_run(_copy(small_run, tmp_path, "legacy", status="running", heartbeat=None))
    assert legacy.status == "running" and legacy.heartbeat is None  # written before heartbeats: cannot tell
    finished = load_run(_copy(small_run, tmp_path, "old-finished", heartbeat=_ago(3600)))
    assert finished.status == "finished" and finished.stopped_since is None


def test_a_recorded_stop_says_when_where_and_how_to_resume(small_run, tmp_path):
    run = load_run(_copy(small_run, tmp_path, status="stopped", stopped_at="2030-01-02T03:04:05+00:00",
                         stop_reason="interrupted (KeyboardInterrupt)", last_epoch=2, heartbeat=_ago(1)))
    assert run.status == "stopped" and run.stop_reason == "interrupted (KeyboardInterrupt)"
    assert run.stopped_since == dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert run.describe_status().startswith("stopped at epoch 2 of 3 (interrupted (KeyboardInterrupt), 2030-01-0")


def test_resume_command_repeats_the_run_settings(small_run, tmp_path):
    copy = _copy(small_run, tmp_path, "named")
    info = json.loads((copy / "run.json").read_text())
    info["config"].update(dataset="mnist5k-pairs", model="linear")  # small_run uses a custom dataset object
    (copy / "run.json").write_text(json.dumps(info))
    command = load_run(copy).resume_command()
    argv = shlex.split(command)
    assert argv[:2] == ["dmlviz", "train"]
    args = build_parser().parse_args(argv[1:])
    cfg = info["config"]
    assert args.resume and args.out == str(copy) and args.loss == "softtriple" and args.dataset == "mnist5k-pairs"
    for key in ("epochs", "batch_size", "lr", "center_lr", "embedding_dim", "split", "test_fraction", "m_per_class", "probe_size", "eps", "seed"):
        assert getattr(args, key) == cfg[key], key
    assert dict(args.param) == cfg["loss_params"]
    assert load_run(small_run.path).resume_command() is None  # custom:SyntheticDataset cannot be named on a command line


def test_failure_kinds(small_run, tmp_path):
    diverged = load_run(_copy(small_run, tmp_path, "d", status="failed", failure="diverged", error_type="TrainingDivergedError",
                              error="the loss became nan in batch 3 of 8 of epoch 2", last_epoch=1))
    assert diverged.failure == "diverged" and diverged.error_type == "TrainingDivergedError"
    assert diverged.describe_status().startswith("failed: diverged (NaN/inf) after epoch 1 of 3; resume with a lower lr")
    oom = load_run(_copy(small_run, tmp_path, "o", status="failed", failure="error", error_type="OutOfMemoryError",
                         error="CUDA out of memory", last_epoch=1))
    assert oom.failure == "error" and oom.describe_status().startswith("failed with OutOfMemoryError after epoch 1 of 3: CUDA out of memory")
    # runs written before "failure" existed: told apart by the divergence message
    old = load_run(_copy(small_run, tmp_path, "old", status="failed", error="the loss became nan during epoch 4"))
    assert old.failure == "diverged" and old.error_type is None
    assert load_run(_copy(small_run, tmp_path, "old2", status="failed", error="CUDA out of memory")).failure == "error"
    assert load_run(small_run.path).failure is None


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_heartbeat_thread_beats_while_running_and_stops_with_the_run(tmp_path):
    writer = RunWriter(tmp_path / "live")
    writer.start({"loss": "x", "epochs": 2}, {}, resume=False, overwrite=False)
    path = tmp_path / "live" / "run.json"
    first = json.loads(path.read_text())["heartbeat"]
    writer.start_heartbeat(every=0.05)
    writer.start_heartbeat(every=0.05)  # a second call does not start a second thread
    assert [t.name for t in threading.enumerate()].count("dmlviz-heartbeat") == 1
    assert _wait_for(lambda: json.loads(path.read_text())["heartbeat"] != first)
    run = load_run(tmp_path / "live")
    assert run.status == "running" and (dt.datetime.now(dt.timezone.utc) - run.heartbeat).total_seconds() < 2
    writer.update(status="finished")  # ends the heartbeat: no beat overwrites the final status
    assert "dmlviz-heartbeat" not in [t.name for t in threading.enumerate()]
    time.sleep(0.15)
    assert json.loads(path.read_text())["status"] == "finished"
    with pytest.raises(ValueError, match="every must be a number of seconds > 0, got 0"):
        writer.start_heartbeat(every=0)


def test_heartbeat_survives_a_failing_write(tmp_path, caplog):
    writer = RunWriter(tmp_path / "live")
    writer.start({"loss": "x"}, {}, resume=False, overwrite=False)
    shutil.rmtree(tmp_path / "live")  # the folder vanished under the writer
    writer.start_heartbeat(every=0.02)
    time.sleep(0.2)
    thread = [t for t in threading.enumerate() if t.name == "dmlviz-heartbeat"]
    assert thread and thread[0].is_alive()
    writer.stop_heartbeat()
    assert not thread[0].is_alive()
    assert sum("cannot write the heartbeat" in r.message for r in caplog.records) == 1  # said once, not every beat


def _layouts(run_dir, spec):
    for folder, epochs in spec.items():
        (run_dir / "projections" / folder).mkdir(parents=True, exist_ok=True)
        (run_dir / "projections" / folder / "params.json").write_text("{}")
        for epoch in epochs:
            np.savez(run_dir / "projections" / folder / layout.epoch_file(epoch), points=np.zeros((2, 2), np.float32))


def _left(run_dir):
    return {f.name: sorted(p.name for p in f.iterdir()) for f in (run_dir / "projections").iterdir() if f.is_dir()}


def test_rewriting_an_epoch_drops_its_cached_layouts_and_later_ones(tmp_path):
    writer = RunWriter(tmp_path / "r")
    writer.start({"loss": "x"}, {}, resume=False, overwrite=False)
    _layouts(tmp_path / "r", {"pca-abc": [0, 1, 2, 3], "umap-def": [2]})
    (tmp_path / "r" / "projections" / "notes.txt").write_text("not a folder")
    writer.write_epoch(2, {"embeddings": np.zeros((2, 2), np.float32)})
    assert _left(tmp_path / "r") == {
        "pca-abc": ["epoch_0000.npz", "epoch_0001.npz", "params.json"],
        "umap-def": ["params.json"],
    }
    writer.write_epoch(5, {"embeddings": np.zeros((2, 2), np.float32)})  # nothing cached there: nothing removed
    assert _left(tmp_path / "r")["pca-abc"] == ["epoch_0000.npz", "epoch_0001.npz", "params.json"]


def test_resume_drops_layouts_of_discarded_epochs(small_run, tmp_path):
    copy = _copy(small_run, tmp_path, "cut")
    _layouts(copy, {"pca-abc": [0, 1, 2, 3, 4], "umap-def": [1, 3]})
    state = torch.load(copy / "checkpoint.pt", weights_only=True)
    state["epoch"] = 1  # the process died during epoch 2: epochs 2 and 3 will be recorded again
    torch.save(state, copy / "checkpoint.pt")
    info = json.loads((copy / "run.json").read_text())
    assert RunWriter(copy).start(info["config"], {}, resume=True, overwrite=False) == 1
    assert _left(copy) == {"pca-abc": ["epoch_0000.npz", "epoch_0001.npz", "params.json"], "umap-def": ["epoch_0001.npz", "params.json"]}
    assert load_run(copy).epochs == [0, 1]


# -- the explorer's header and watcher -------------------------------------------------------

def _explorer(path, **kwargs):
    pytest.importorskip("ipywidgets")
    from dmlviz.widgets.explorer import Explorer

    return Explorer(path, **kwargs)


def test_explorer_says_stopped_since_and_does_not_watch_a_dead_run(small_run, tmp_path):
    explorer = _explorer(_copy(small_run, tmp_path, "dead", status="running", heartbeat=_ago(120), last_epoch=3))
    header = explorer.header.value
    assert "[stopped]" in header and "stopped since" in header and "no heartbeat" in header and "dmlviz-stopped" in header
    assert "still being written" not in header and not hasattr(explorer, "_watcher")
    explorer.close()


def test_explorer_stops_polling_when_the_heartbeat_goes_silent(small_run, tmp_path):
    live = _copy(small_run, tmp_path, "live", status="running", heartbeat=_ago(0), last_epoch=3)
    explorer = _explorer(live, watch=0)
    assert "still being written" in explorer.header.value
    watcher = threading.Thread(target=explorer._watch, args=(0.02,), daemon=True)
    watcher.start()
    time.sleep(0.2)
    assert watcher.is_alive()  # a live run is polled
    info = json.loads((live / "run.json").read_text())
    (live / "run.json").write_text(json.dumps({**info, "heartbeat": _ago(31)}))  # killed 31 s ago
    watcher.join(timeout=5)
    assert not watcher.is_alive()
    assert "stopped since" in explorer.header.value and "[stopped]" in explorer.header.value
    explorer.close()


def test_explorer_header_tells_stop_and_failure_kinds_apart(small_run, tmp_path):
    stopped = _explorer(_copy(small_run, tmp_path, "s", status="stopped", stop_reason="interrupted (KeyboardInterrupt)",
                              stopped_at=_ago(60), last_epoch=2))
    assert "stopped at epoch 2 of 3" in stopped.header.value and "resume with" in stopped.header.value
    diverged = _explorer(_copy(small_run, tmp_path, "d", status="failed", failure="diverged", last_epoch=2,
                               error="the loss became nan in batch 3 of 8 of epoch 3"))
    assert "This run failed: it diverged (NaN/inf)" in diverged.header.value and "lower lr" in diverged.header.value
    oom = _explorer(_copy(small_run, tmp_path, "o", status="failed", failure="error", error_type="OutOfMemoryError",
                          error="CUDA out of memory", last_epoch=2))
    assert "This run failed with OutOfMemoryError: CUDA out of memory" in oom.header.value
    assert "same settings" in oom.header.value
    for explorer in (stopped, diverged, oom):
        explorer.close()
