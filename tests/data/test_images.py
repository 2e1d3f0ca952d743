"""Image datasets read from tiny trees written in each benchmark's official layout."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmlviz.data import DownloadError, ImageDataset, image_transforms, load_dataset, split_dataset
from dmlviz.data import image_sets
from image_trees import make_cub, write_image


def make_cars(root: Path, class_ids=(1, 2, 97, 98, 99, 100, 196), per_class: int = 2) -> Path:
    """cars_annos.mat (annotations: relative_im_path, class, test) + car_ims/."""
    from scipy.io import savemat

    rows = []
    for c in class_ids:
        for j in range(per_class):
            rel = f"car_ims/{len(rows) + 1:06d}.jpg"
            write_image(root / rel, len(rows))
            rows.append((rel, c, j % 2))
    annotations = np.zeros(len(rows), dtype=[("relative_im_path", "O"), ("class", "O"), ("test", "O")])
    for i, (rel, c, test) in enumerate(rows):
        annotations[i] = (rel, np.uint8(c), np.uint8(test))
    names = np.array([f"Car model {i}" for i in range(1, 197)], dtype=object)
    savemat(root / "cars_annos.mat", {"annotations": annotations[None, :], "class_names": names[None, :]})
    return root


def make_sop(root: Path) -> Path:
    """Stanford_Online_Products/ with Ebay_train.txt, Ebay_test.txt and <super>_final/ folders."""
    base = root / "Stanford_Online_Products"
    supers = {1: "bicycle_final", 2: "chair_final"}
    train = [(1, 1), (2, 1), (3, 2)]  # (class_id, super_class_id)
    test = [(11319, 1), (11320, 2), (11321, 2)]
    image_id = 0
    for file_name, classes in (("Ebay_train.txt", train), ("Ebay_test.txt", test)):
        lines = ["image_id class_id super_class_id path"]
        for c, s in classes:
            for j in range(2):
                image_id += 1
                rel = f"{supers[s]}/{c}_{j}.JPG"
                write_image(base / rel, image_id)
                lines.append(f"{image_id} {c} {s} {rel}")
        (base / file_name).write_text("\n".join(lines) + "\n")
    return root


def make_inshop(root: Path) -> Path:
    """list_eval_partition.txt + img/ (items 1-3 train, 4-6 query and gallery)."""
    rows = []
    for item in range(1, 7):
        category = "WOMEN/Dresses" if item % 2 else "MEN/Shirts"
        for j in range(3):
            rel = f"img/{category}/id_{item:08d}/0{j}_1_front.jpg"
            write_image(root / rel, item * 10 + j)
            status = "train" if item <= 3 else ("query" if j == 0 else "gallery")
            rows.append(f"{rel} id_{item:08d} {status}")
    (root / "list_eval_partition.txt").write_text(f"{len(rows)}\nimage_name item_id evaluation_status\n" + "\n".join(rows) + "\n")
    return root


def make_folder(root: Path) -> Path:
    """A folder of 4 class folders, PNG and JPEG mixed."""
    for c, name in enumerate(["cat", "dog", "emu", "fox"]):
        for j in range(2):
            write_image(root / name / f"{j}.{'png' if j else 'jpg'}", c * 10 + j)
    return root


SMALL = {"image_size": 32, "resize": 36}


def test_cub200_labels_names_and_official_split(tmp_path):
    ds = load_dataset("cub200", data_root=make_cub(tmp_path), **SMALL)
    assert isinstance(ds, ImageDataset) and len(ds) == 18 and ds.num_classes == 6
    assert ds.class_names[0] == "001.Bird_1" and ds.class_names[-1] == "103.Bird_103"
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(6), 3))
    parts = split_dataset(ds.labels, "official", predefined=ds.predefined_split)
    np.testing.assert_array_equal(parts.train, np.arange(9))  # classes 1-100
    np.testing.assert_array_equal(parts.test, np.arange(9, 18))  # classes 101-200
    assert not set(ds.labels[parts.train]) & set(ds.labels[parts.test])
    np.testing.assert_array_equal(parts.train_classes, [0, 1, 2])
    # the data_root may also be the CUB_200_2011 folder itself
    assert len(load_dataset("cub200", data_root=tmp_path / "CUB_200_2011", **SMALL)) == 18


def test_transforms_thumbnails_and_batches(tmp_path):
    ds = load_dataset("cub200", data_root=make_cub(tmp_path), **SMALL)
    assert ds.input_shape == (3, 32, 32)
    x, y = ds[4]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 1
    # ImageNet normalisation: values leave [0, 1]
    assert float(x.min()) < 0.0
    # eval is deterministic, training draws a random crop and flip
    torch.manual_seed(0)
    assert torch.equal(ds.load(4), ds.load(4))
    assert not torch.equal(ds.load(4, train=True), ds.load(4, train=True))
    thumbs = ds.thumbnails([0, 5, 17])
    assert thumbs.dtype == np.uint8 and thumbs.shape == (3, 48, 48, 3) and thumbs.std() > 10
    batches = [np.array([0, 1, 2]), np.array([9, 10])]
    out = list(ds.batches(batches))
    assert [tuple(i.shape) for i, _ in out] == [(3, 3, 32, 32), (2, 3, 32, 32)]
    assert out[1][1].tolist() == [3, 3]
    torch.testing.assert_close(out[0][0][1], ds.load(1))
    train_out = list(ds.train_batches(batches, num_workers=0))
    assert tuple(train_out[0][0].shape) == (3, 3, 32, 32)


def test_batches_in_persistent_workers(tmp_path):
    ds = load_dataset("cub200", data_root=make_cub(tmp_path), **SMALL)
    first = [x for x, _ in ds.batches([np.arange(6), np.arange(6, 12)], num_workers=2)]
    loader = ds._loaders[(False, 2)][0]
    second = [x for x, _ in ds.batches([np.arange(6)], num_workers=2)]
    assert ds._loaders[(False, 2)][0] is loader and loader.persistent_workers
    torch.testing.assert_close(first[0], second[0])
    assert len(first) == 2 and len(second) == 1


def test_default_field_sizes(tmp_path):
    ds = load_dataset("cub200", data_root=make_cub(tmp_path, class_ids=(1, 101), per_class=1))
    assert ds.input_shape == (3, 224, 224) and ds[0][0].shape == (3, 224, 224)
    assert ds.load(0, train=True).shape == (3, 224, 224)


def test_cars196_split_and_names(tmp_path):
    ds = load_dataset("cars196", data_root=make_cars(tmp_path), **SMALL)
    assert len(ds) == 14 and ds.num_classes == 7
    assert ds.class_names[:2] == ["Car model 1", "Car model 2"] and ds.class_names[-1] == "Car model 196"
    split = ds.predefined_split
    assert set(ds.labels[split.train]) == {0, 1, 2, 3} and set(ds.labels[split.test]) == {4, 5, 6}  # ids <= 98 train
    assert ds[0][0].shape == (3, 32, 32)


def test_sop_split_and_super_class_as_coarse_label(tmp_path):
    ds = load_dataset("sop", data_root=make_sop(tmp_path), **SMALL)
    assert len(ds) == 12 and ds.num_classes == 6
    assert ds.class_names == ["1", "2", "3", "11319", "11320", "11321"]
    np.testing.assert_array_equal(ds.predefined_split.train, np.arange(6))
    np.testing.assert_array_equal(ds.predefined_split.test, np.arange(6, 12))
    assert ds.coarse_names == ["bicycle", "chair"]
    np.testing.assert_array_equal(ds.coarse_labels, [0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1])
    assert ds.fine_labels is None  # fine labels are dmlviz's sub-modes, finer than classes; super-classes are coarser
    assert ds.thumbnails([11]).shape == (1, 48, 48, 3)


def test_inshop_query_gallery(tmp_path):
    ds = load_dataset("inshop", data_root=make_inshop(tmp_path), **SMALL)
    assert len(ds) == 18 and ds.num_classes == 6
    split = ds.predefined_split
    assert len(split.train) == 9 and len(split.query) == 3 and len(split.gallery) == 6
    np.testing.assert_array_equal(split.test, np.sort(np.concatenate([split.query, split.gallery])))
    assert set(ds.labels[split.query]) == set(ds.labels[split.gallery]) == {3, 4, 5}
    assert sorted(ds.coarse_names) == ["MEN/Shirts", "WOMEN/Dresses"]
    parts = split_dataset(ds.labels, "official", predefined=split)
    assert parts.query is not None and len(parts.gallery) == 6


def test_imagefolder_by_name_and_path(tmp_path):
    root = make_folder(tmp_path / "pets")
    ds = load_dataset(f"imagefolder:{root}", **SMALL)
    assert ds.class_names == ["cat", "dog", "emu", "fox"] and len(ds) == 8
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(4), 2))
    assert ds.predefined_split is None
    assert len(load_dataset("imagefolder", data_root=root, **SMALL)) == 8
    with pytest.raises(ValueError, match="split='official' needs a dataset with its own split"):
        split_dataset(ds.labels, "official", predefined=ds.predefined_split)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nothing'}")


@pytest.mark.parametrize(
    "name, make, remove, message",
    [
        ("cub200", make_cub, "CUB_200_2011/image_class_labels.txt", "missing file .*image_class_labels.txt"),
        ("cub200", make_cub, "CUB_200_2011/images/002.Bird_2/Bird_2_1.jpg", "1 of 18 image files are missing.*Bird_2_1.jpg"),
        ("cars196", make_cars, "cars_annos.mat", "missing file .*cars_annos.mat"),
        ("sop", make_sop, "Stanford_Online_Products/Ebay_test.txt", "missing file .*Ebay_test.txt"),
        ("inshop", make_inshop, "list_eval_partition.txt", "missing file .*list_eval_partition.txt"),
    ],
)
def test_missing_files_name_the_file_and_the_layout(tmp_path, name, make, remove, message):
    make(tmp_path)
    (tmp_path / remove).unlink()
    with pytest.raises(FileNotFoundError, match=message) as error:
        load_dataset(name, data_root=tmp_path)
    assert "Expected layout:" in str(error.value) and image_sets.LAYOUTS[name].splitlines()[1] in str(error.value)


def test_malformed_files_name_the_file_and_the_line(tmp_path):
    make_cub(tmp_path)
    (tmp_path / "CUB_200_2011" / "image_class_labels.txt").write_text("1 1\n2\n")
    with pytest.raises(ValueError, match=r"image_class_labels.txt' line 2 has 1 columns, expected 2.*Expected layout"):
        load_dataset("cub200", data_root=tmp_path)
    make_sop(tmp_path)
    (tmp_path / "Stanford_Online_Products" / "Ebay_train.txt").write_text("id class path\n1 1 a.JPG\n")
    with pytest.raises(ValueError, match="Ebay_train.txt' starts with 'id class path'"):
        load_dataset("sop", data_root=tmp_path)
    (tmp_path / "cars_annos.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="cars_annos.mat' is not a cars_annos.mat"):
        load_dataset("cars196", data_root=tmp_path)


def test_data_root_is_required_and_checked(tmp_path):
    with pytest.raises(ValueError, match="pass data_root=.*--data-root"):
        load_dataset("cub200")
    with pytest.raises(ValueError, match="dataset 'digits' does not take \\['data_root'\\]"):
        load_dataset("digits", data_root=tmp_path)


def test_download_offline_names_url_and_folder(tmp_path, monkeypatch):
    asked = []

    def offline(url, timeout=None):
        asked.append((url, timeout))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError, match="could not download https://data.caltech.edu/.*CUB_200_2011.tgz.*no network") as error:
        load_dataset("cub200", data_root=tmp_path / "cub", download=True)
    assert str(tmp_path / "cub") in str(error.value) and "images.txt" in str(error.value)
    assert asked and asked[0][1] == image_sets.DOWNLOAD_TIMEOUT_S
    assert not list((tmp_path / "cub").glob("*.part"))
    with pytest.raises(DownloadError, match="Google Drive"):
        load_dataset("inshop", data_root=tmp_path, download=True)
    # a tree already there is read without fetching anything
    asked.clear()
    assert len(load_dataset("cub200", data_root=make_cub(tmp_path / "here"), download=True, **SMALL)) == 18
    assert not asked


@pytest.mark.parametrize("name", ["mnist", "fashionmnist", "cifar10", "cifar100"])
def test_torchvision_sets_missing_files(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=f"{name}: files not found under data_root=.*download=True"):
        load_dataset(name, data_root=tmp_path)


def test_torchvision_mnist_from_its_raw_files(tmp_path):
    """MNIST in torchvision's layout (written here in its idx format), read with no download."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(np.array([2051, n, 28, 28], ">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([2049, n], ">i4").tobytes() + labels.tobytes())
    ds = load_dataset("mnist", data_root=tmp_path)
    assert len(ds) == 30 and ds.num_classes == 10 and ds.input_shape == (1, 28, 28)
    assert ds[3][0].shape == (1, 28, 28) and ds[3][1] == 3
    assert ds.thumbnails([0, 1]).shape == (2, 28, 28)
    assert ds.predefined_split is None


def test_train_on_cub_end_to_end(tmp_path):
    import dmlviz

    root = make_cub(tmp_path / "data", class_ids=(1, 2, 3, 4, 101, 102, 103, 104), per_class=3)
    run = dmlviz.train(
        dataset="cub200", data_root=root, data_params=SMALL, model="cnn", loss="softtriple", embedding_dim=8,
        centers_per_class=2, epochs=1, batch_size=8, out=tmp_path / "run", progress=False,
    )
    assert run.status == "finished" and run.config["split"] == "official"
    assert run.config["data_root"] == str(root) and run.config["data_params"] == SMALL
    probe = run.probe
    assert probe["thumbnails"].shape == (24, 48, 48, 3) and probe["thumbnails"].dtype == np.uint8
    np.testing.assert_array_equal(probe["split"], np.repeat([0, 1], 12))
    assert list(run.metrics["epoch"]) == [0, 1]
    assert "--data-root" in run.resume_command() and "--image-size 32" in run.resume_command()
    # split="classes" keeps working on the same data
    run = dmlviz.train(
        dataset="cub200", data_root=root, data_params=SMALL, model="cnn", loss="softmax", embedding_dim=8,
        epochs=1, batch_size=8, split="classes", out=tmp_path / "run2", progress=False,
    )
    assert run.config["split"] == "classes"


def test_sop_probe_keeps_coarse_labels(tmp_path):
    import dmlviz

    run = dmlviz.train(
        dataset="sop", data_root=make_sop(tmp_path / "data"), data_params=SMALL, model="cnn", loss="softmax",
        embedding_dim=8, epochs=1, batch_size=4, out=tmp_path / "run", progress=False,
    )
    np.testing.assert_array_equal(run.probe["coarse_labels"], [0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1])
    assert list(run.probe["coarse_names"]) == ["bicycle", "chair"]


def test_command_line_reads_an_image_tree(tmp_path, capsys):
    from dmlviz.cli import main

    root = make_cub(tmp_path / "data", class_ids=(1, 2, 101, 102), per_class=2)
    out = tmp_path / "cli-run"
    args = ["train", "--dataset", "cub200", "--data-root", str(root), "--image-size", "32", "--resize", "36",
            "--num-workers", "0", "--model", "cnn", "--loss", "softmax", "--embedding-dim", "8", "--batch-size", "4",
            "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0 and (out / "epoch_0001.npz").exists()
    assert main(args[:-5] + ["--epochs", "2", "--out", str(out), "--no-progress", "--resume"]) == 0
    assert (out / "epoch_0002.npz").exists()
    capsys.readouterr()
    assert main(["train", "--dataset", "cub200", "--out", str(tmp_path / "x")]) == 2
    assert "pass data_root= (Python) or --data-root" in capsys.readouterr().err
    assert main(["train", "--dataset", "sop", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "Ebay_train.txt" in capsys.readouterr().err


def test_download_unpacks_the_archive(tmp_path, monkeypatch):
    """download=True with the archive served by a stand-in urlopen: fetched, unpacked, read."""
    import io
    import tarfile

    make_cub(tmp_path / "src", class_ids=(1, 101), per_class=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(tmp_path / "src" / "CUB_200_2011", arcname="CUB_200_2011")
    served = []

    def serve(url, timeout=None):
        served.append(url)
        return io.BytesIO(buffer.getvalue())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    ds = load_dataset("cub200", data_root=tmp_path / "data", download=True, **SMALL)
    assert served == image_sets.URLS["cub200"] and len(ds) == 4
    assert (tmp_path / "data" / "CUB_200_2011.tgz").is_file()


def test_transform_sizes_are_checked():
    with pytest.raises(ValueError, match="resize=30 is smaller than image_size=32"):
        image_transforms(32, 30)
    with pytest.raises(ValueError, match="image_size must be an integer >= 1, got 0"):
        image_transforms(0, 36)
    train, evaluate = image_transforms(32, 36)
    picture = Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8))
    assert train(picture).shape == evaluate(picture).shape == (3, 32, 32)


def test_dataset_parameters_given_as_loss_parameters_are_pointed_to_data_params(tmp_path):
    import dmlviz

    with pytest.raises(ValueError, match=r"\['image_size'\] are dataset parameters.*data_params=\{'image_size': 32\}"):
        dmlviz.train(dataset="cub200", data_root=tmp_path, image_size=32, out=tmp_path / "run", progress=False)
