"""Runs to and from TensorBoard's projector format and per-epoch .npy / .npz embeddings."""

import numpy as np
import pytest

import dmlviz
from dmlviz.cli import main
from dmlviz.interchange import export_projector, import_arrays, import_projector, read_projector_config


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A 2-epoch run with thumbnails (digits-pairs) and fine labels."""
    return dmlviz.train("digits-pairs", "linear", "softmax", epochs=2, batch_size=64, embedding_dim=8, split="samples",
                        probe_size=300, out=tmp_path_factory.mktemp("x") / "digits", progress=False)


def test_export_then_import_gives_back_the_embeddings_classes_split_and_thumbnails(image_run, tmp_path):
    log = export_projector(image_run, tmp_path / "tb", epochs=[0, 2])
    entries = read_projector_config(log)
    assert [e["tensor_name"] for e in entries] == ["dmlviz:00000", "dmlviz:00002"] and entries[0]["sprite"][1:] == (8, 8)
    header = (log / entries[0]["metadata_path"]).read_text().splitlines()[0]
    assert header == "class\tsplit\tfine"
    run = import_projector(log, tmp_path / "back")
    assert run.epochs == [0, 2]
    before, after = image_run.snapshot(2), run.snapshot(2)
    np.testing.assert_allclose(after.embeddings, before.embeddings, atol=1e-5)
    assert [after.class_names[c] for c in after.labels] == [before.class_names[c] for c in before.labels]
    assert list(after.split) == list(before.split)
    np.testing.assert_array_equal(after.thumbnails, before.thumbnails)
    assert 0 < run.metrics["recall@1"].iloc[-1] <= 1  # on the probe's test samples (the trained run's is on its whole test split)


def test_import_per_epoch_arrays_by_the_numbers_in_their_names(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 20)
    for epoch in (0, 5, 10):
        np.save(tmp_path / f"emb_{epoch:03d}.npy", rng.normal(size=(80, 6)) + labels[:, None] * epoch * 0.1)
    np.save(tmp_path / "labels.npy", labels)
    files = sorted(str(p) for p in tmp_path.glob("emb_*.npy"))
    assert main(["import", *files, "--labels", str(tmp_path / "labels.npy"), "--out", str(tmp_path / "run")]) == 0
    run = dmlviz.load_run(tmp_path / "run")
    assert run.epochs == [0, 5, 10] and run.info["status"] == "finished" and len(run.snapshot(5)) == 80
    np.savez(tmp_path / "one.npz", embeddings=rng.normal(size=(80, 6)), labels=labels, epoch=3, split=np.repeat(["train", "test"], 40))
    other = import_arrays([tmp_path / "one.npz"], tmp_path / "run2")
    assert other.epochs == [3] and set(other.probe["split"]) == {0, 1}


def test_import_errors_name_what_is_missing(tmp_path):
    np.save(tmp_path / "e1.npy", np.zeros((10, 3)))
    with pytest.raises(ValueError, match="labels are needed"):
        import_arrays([tmp_path / "e1.npy"], tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="projector_config.pbtxt"):
        import_projector(tmp_path, tmp_path / "r2")
    np.save(tmp_path / "e2.npy", np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"embeddings must be \[N, D\] with N = 12"):
        import_arrays([tmp_path / "e1.npy"], tmp_path / "r3", labels=np.arange(12) % 3)
    assert main(["import", "--out", str(tmp_path / "r4")]) == 2  # no files: a clear error, exit code 2
