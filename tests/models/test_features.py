"""Cached features: `dmlviz features` writes a frozen backbone's features once; `dmlviz train --dataset FILE.npz` trains a head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from image_trees import make_cub

import dmlviz
from dmlviz.cli import main
from dmlviz.data import FeatureDataset, load_dataset
from dmlviz.models import build_model, extract_features
from dmlviz.models.backbones import weights_file

SMALL = ["--image-size", "32", "--resize", "36"]


@pytest.fixture
def imagenet_weights(tmp_path, monkeypatch):
    """A resnet18 'ImageNet' checkpoint (random, seeded) in a temporary torch hub cache; downloading fails."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(AssertionError("tried to download")))
    path, _ = weights_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.manual_seed(7)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), path)
    return reference


def test_features_then_a_head_trained_on_them(tmp_path, imagenet_weights, capsys):
    root = make_cub(tmp_path / "data", class_ids=(1, 2, 3, 101, 102, 103), per_class=4)
    out = tmp_path / "cub-r18.npz"
    assert main(["features", "--dataset", "cub200", "--data-root", str(root), "--backbone", "resnet18", *SMALL,
                 "--out", str(out), "--no-progress", "--batch-size", "5"]) == 0
    assert f"dmlviz train --dataset {out} --model linear" in capsys.readouterr().out

    with np.load(out, allow_pickle=False) as npz:
        features, labels, thumbs = npz["features"], npz["labels"], npz["thumbnails"]
        meta = json.loads(str(npz["meta"]))
        split_train, split_test = npz["split_train"], npz["split_test"]
    assert features.shape == (24, 512) and features.dtype == np.float16 and thumbs.shape == (24, 48, 48, 3)
    assert meta["backbone"] == "resnet18" and meta["pretrained"] is True and meta["transform"] == {"image_size": 32, "resize": 36}
    # the features are the pretrained trunk's pooled output of the evaluation transform
    images = load_dataset("cub200", data_root=root, image_size=32, resize=36)
    net = build_model("resnet18", (3, 32, 32), 1, pretrained=True).eval()
    batch = torch.stack([images[i][0] for i in range(3)])
    with torch.no_grad():
        want = net.features(batch).numpy()
    np.testing.assert_allclose(features[:3].astype(np.float32), want, rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(labels, images.labels)
    np.testing.assert_array_equal(split_train, images.predefined_split.train)
    np.testing.assert_array_equal(thumbs, images.thumbnails(np.arange(24)))

    ds = load_dataset(str(out))
    assert isinstance(ds, FeatureDataset) and ds.input_shape == (512,) and ds.class_names == images.class_names
    np.testing.assert_array_equal(ds.predefined_split.test, split_test)

    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", str(out), "--model", "linear", "--embedding-dim", "8", "--epochs", "2",
                 "--batch-size", "6", "--centers-per-class", "2", "--probe-size", "24", "--out", str(run_dir), "--no-progress"]) == 0
    run = dmlviz.load_run(run_dir)
    assert run.status == "finished" and run.config["split"] == "official" and run.config["dataset"] == str(out)
    assert run.probe["thumbnails"].shape == (24, 48, 48, 3)  # the pictures travel with the features
    assert sorted(np.unique(run.probe["labels"][run.probe["split"] == 1])) == [3, 4, 5]  # classes 101-103 are the test split


def test_features_need_an_image_dataset_and_a_npz_name(tmp_path):
    with pytest.raises(ValueError, match="out must name a .npz file"):
        extract_features("digits", tmp_path / "x.txt", pretrained=False)
    with pytest.raises(ValueError, match="holds no images"):
        extract_features("digits", tmp_path / "x.npz", backbone="resnet18", pretrained=False)
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        extract_features("digits", tmp_path / "x.npz", backbone="vgg")
    assert not (tmp_path / "x.npz").exists()


def test_features_without_weights_offline_say_which_file_to_put_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    root = make_cub(tmp_path / "data")
    assert main(["features", "--dataset", "cub200", "--data-root", str(root), "--backbone", "resnet18", *SMALL,
                 "--out", str(tmp_path / "f.npz"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'resnet18-f37072fd.pth'" in err and str(tmp_path / "hub" / "checkpoints") in err
    assert not (tmp_path / "f.npz").exists()


def test_a_features_file_that_is_not_one_is_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="has no dmlviz meta record"):
        load_dataset(str(bad))
    with pytest.raises(FileNotFoundError, match="no such features file"):
        load_dataset(str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="is a features file; it takes no dataset parameters"):
        load_dataset(str(bad), image_size=3)
