"""Readers of the image benchmarks' official layouts (CUB-200-2011, Cars196, SOP, In-Shop), image folders and torchvision sets."""

from __future__ import annotations

import logging
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .images import ArrayImageDataset, ImageDataset
from .splits import PredefinedSplit

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30.0

LAYOUTS = {
    "cub200": """DATA_ROOT/CUB_200_2011/          (or DATA_ROOT itself)
  images.txt                 <image_id> <path under images/>
  classes.txt                <class_id> <name>            (ids 1-200; 1-100 train, 101-200 test)
  image_class_labels.txt     <image_id> <class_id>
  images/001.Black_footed_Albatross/....jpg""",
    "cars196": """DATA_ROOT/
  cars_annos.mat             struct 'annotations' with relative_im_path, class (1-196; 1-98 train, 99-196 test), test
  car_ims/000001.jpg ...""",
    "sop": """DATA_ROOT/Stanford_Online_Products/   (or DATA_ROOT itself)
  Ebay_train.txt             header 'image_id class_id super_class_id path' (classes 1-11318)
  Ebay_test.txt              same columns (classes 11319-22634)
  bicycle_final/111085122871_0.JPG ...""",
    "inshop": """DATA_ROOT/                   (the 'In-shop Clothes Retrieval Benchmark' folder)
  list_eval_partition.txt    (or Eval/list_eval_partition.txt): a count line, the header
                             'image_name item_id evaluation_status', then '<img/...jpg> <item_id> train|query|gallery'
  img/WOMEN/Dresses/id_00000002/02_1_front.jpg ...   (or Img/img/...)""",
    "imagefolder": """PATH/
  <class name>/<image>.jpg|png|...   (one folder per class)""",
}

URLS: dict[str, list[str]] = {
    "cub200": ["https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"],
    # Stanford's original links; they have been unreachable for long stretches since 2023.
    "cars196": ["http://ai.stanford.edu/~jkrause/car196/car_ims.tgz", "http://ai.stanford.edu/~jkrause/car196/cars_annos.mat"],
    "sop": ["ftp://cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip"],
}
NO_DOWNLOAD = {
    "inshop": "In-Shop (DeepFashion) is shared only through Google Drive after accepting its licence "
    "(http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html); there is no stable archive URL to fetch",
}


class DownloadError(RuntimeError):
    """An official archive could not be fetched (offline, moved); the message names the URL and where to unpack it."""


def layout_error(dataset: str, root: Path, problem: str, exc: type[Exception] = FileNotFoundError) -> Exception:
    """The error for a missing or malformed file of ``dataset`` under ``root``, showing the layout expected."""
    return exc(f"{dataset}: {problem} (data_root={str(root)!r}). Expected layout:\n{LAYOUTS[dataset]}")


def _root(data_root: str | Path | None, dataset: str) -> Path:
    if data_root is None:
        raise ValueError(f"dataset {dataset!r} reads image files: pass data_root= (Python) or --data-root (command line), the folder laid out as:\n{LAYOUTS[dataset]}")
    return Path(data_root).expanduser()


def _find(root: Path, names: list[str], dataset: str) -> Path:
    for name in names:
        if (root / name).is_file():
            return root / name
    raise layout_error(dataset, root, f"missing file {str(root / names[0])!r}")


def _read_table(path: Path, columns: int, dataset: str, root: Path, skip: int = 0) -> list[list[str]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if number <= skip or not line.strip():
                continue
            parts = line.split()
            if len(parts) != columns:
                raise layout_error(dataset, root, f"{str(path)!r} line {number} has {len(parts)} columns, expected {columns}: {line.strip()!r}", ValueError)
            rows.append(parts)
    if not rows:
        raise layout_error(dataset, root, f"{str(path)!r} holds no rows", ValueError)
    return rows


def _ints(values: list[str], path: Path, dataset: str, root: Path) -> np.ndarray:
    try:
        return np.asarray([int(v) for v in values], dtype=np.int64)
    except ValueError as error:
        raise layout_error(dataset, root, f"{str(path)!r} holds a non-integer id ({error})", ValueError) from None


def _check_images(paths: list[Path], dataset: str, root: Path) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(repr(str(p)) for p in missing[:3])
        raise layout_error(dataset, root, f"{len(missing)} of {len(paths)} image files are missing, e.g. {shown}")


def _dense(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids (any integers) -> labels 0..C-1 in sorted id order, and the sorted unique ids."""
    unique, labels = np.unique(ids, return_inverse=True)
    return labels.astype(np.int64), unique


def download_archive(dataset: str, root: Path) -> None:
    """Fetch ``dataset``'s official archive(s) into ``root`` and unpack them (urllib, 30 s timeout per read)."""
    if dataset in NO_DOWNLOAD:
        raise DownloadError(f"{dataset}: download=True cannot fetch it: {NO_DOWNLOAD[dataset]}. Unpack it yourself so that:\n{LAYOUTS[dataset]}")
    root.mkdir(parents=True, exist_ok=True)
    for url in URLS[dataset]:
        target = root / url.rsplit("/", 1)[-1]
        if not target.exists():
            partial = target.with_name(target.name + ".part")
            logger.info("downloading %s to %s", url, target)
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
                    shutil.copyfileobj(response, out, length=1 << 20)
            except (urllib.error.URLError, OSError, ValueError) as error:
                partial.unlink(missing_ok=True)
                raise DownloadError(
                    f"{dataset}: could not download {url} ({error}). Fetch it by hand and unpack it in "
                    f"{str(root)!r} so that:\n{LAYOUTS[dataset]}"
                ) from error
            partial.rename(target)
        if target.name.endswith((".tgz", ".tar.gz", ".tar")):
            logger.info("unpacking %s", target)
            with tarfile.open(target) as archive:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12: refuse links and paths leaving root
                    archive.extractall(root, filter="data")
                else:
                    archive.extractall(root)
        elif target.suffix == ".zip":
            logger.info("unpacking %s", target)
            with zipfile.ZipFile(target) as archive:
                archive.extractall(root)


def _prepare(dataset: str, data_root: str | Path | None, download: bool, marker: list[str]) -> Path:
    root = _root(data_root, dataset)
    if download and not any((root / m).exists() for m in marker):
        download_archive(dataset, root)
    return root


def cub200(data_root: str | Path | None = None, download: bool = False, **options: Any) -> ImageDataset:
    """CUB-200-2011 (11,788 images, 200 birds); official split: classes 1-100 train, 101-200 test."""
    root = _prepare("cub200", data_root, download, ["CUB_200_2011/images.txt", "images.txt"])
    base = root / "CUB_200_2011" if (root / "CUB_200_2011" / "images.txt").is_file() else root
    images_txt = _find(base, ["images.txt"], "cub200")
    classes_txt = _find(base, ["classes.txt"], "cub200")
    labels_txt = _find(base, ["image_class_labels.txt"], "cub200")
    images = _read_table(images_txt, 2, "cub200", root)
    image_ids = _ints([r[0] for r in images], images_txt, "cub200", root)
    pairs = _read_table(labels_txt, 2, "cub200", root)
    by_image = dict(zip(_ints([r[0] for r in pairs], labels_txt, "cub200", root).tolist(), _ints([r[1] for r in pairs], labels_txt, "cub200", root).tolist()))
    names = {}
    with open(classes_txt, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or not parts[0].isdigit():
                raise layout_error("cub200", root, f"{str(classes_txt)!r} line {number} is not '<class_id> <name>': {line.strip()!r}", ValueError)
            names[int(parts[0])] = parts[1].strip()
    missing = [i for i in image_ids.tolist() if i not in by_image]
    if missing:
        raise layout_error("cub200", root, f"{str(labels_txt)!r} gives no class to image ids {missing[:5]} of images.txt", ValueError)
    class_ids = np.asarray([by_image[i] for i in image_ids.tolist()], dtype=np.int64)
    unknown = sorted(set(class_ids.tolist()) - set(names))
    if unknown:
        raise layout_error("cub200", root, f"{str(classes_txt)!r} does not name class ids {unknown[:5]}", ValueError)
    paths = [base / "images" / r[1] for r in images]
    _check_images(paths, "cub200", root)
    labels, unique = _dense(class_ids)
    split = PredefinedSplit(np.flatnonzero(class_ids <= 100), np.flatnonzero(class_ids > 100))
    return ImageDataset(paths, labels, name="cub200", class_names=[names[c] for c in unique.tolist()], predefined_split=split, **options)


def cars196(data_root: str | Path | None = None, download: bool = False, **options: Any) -> ImageDataset:
    """Cars196 (16,185 images, 196 models); official split: classes 1-98 train, 99-196 test (the mat's 'test' flag is not used)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    root = _prepare("cars196", data_root, download, ["cars_annos.mat"])
    mat_path = _find(root, ["cars_annos.mat"], "cars196")
    try:
        mat = loadmat(mat_path, squeeze_me=True)
        annotations = np.atleast_1d(mat["annotations"])
        rel = [str(p) for p in np.atleast_1d(annotations["relative_im_path"])]
        class_ids = np.asarray(np.atleast_1d(annotations["class"]), dtype=np.int64)
    except (KeyError, ValueError, TypeError, IndexError, OSError, MatReadError) as error:
        raise layout_error("cars196", root, f"{str(mat_path)!r} is not a cars_annos.mat with annotations.relative_im_path and .class ({type(error).__name__}: {error})", ValueError) from None
    raw_names = mat.get("class_names")
    paths = [root / p for p in rel]
    _check_images(paths, "cars196", root)
    labels, unique = _dense(class_ids)
    if raw_names is not None and len(np.atleast_1d(raw_names)) >= int(unique.max()):
        all_names = [str(n) for n in np.atleast_1d(raw_names)]
        names = [all_names[c - 1] for c in unique.tolist()]
    else:
        names = [str(c) for c in unique.tolist()]
    split = PredefinedSplit(np.flatnonzero(class_ids <= 98), np.flatnonzero(class_ids > 98))
    return ImageDataset(paths, labels, name="cars196", class_names=names, predefined_split=split, **options)


def sop(data_root: str | Path | None = None, download: bool = False, **options: Any) -> ImageDataset:
    """Stanford Online Products (120,053 images, 22,634 products); official split: Ebay_train.txt / Ebay_test.txt; super-class as coarse label."""
    root = _prepare("sop", data_root, download, ["Stanford_Online_Products/Ebay_train.txt", "Ebay_train.txt"])
    base = root / "Stanford_Online_Products" if (root / "Stanford_Online_Products" / "Ebay_train.txt").is_file() else root
    parts = []
    for file_name in ("Ebay_train.txt", "Ebay_test.txt"):
        path = _find(base, [file_name], "sop")
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().split()
        if header != ["image_id", "class_id", "super_class_id", "path"]:
            raise layout_error("sop", root, f"{str(path)!r} starts with {' '.join(header)!r}, not the header 'image_id class_id super_class_id path'", ValueError)
        rows = _read_table(path, 4, "sop", root, skip=1)
        parts.append((rows, _ints([r[1] for r in rows], path, "sop", root), _ints([r[2] for r in rows], path, "sop", root)))
    rows = parts[0][0] + parts[1][0]
    class_ids = np.concatenate([parts[0][1], parts[1][1]])
    super_ids = np.concatenate([parts[0][2], parts[1][2]])
    n_train = len(parts[0][0])
    if np.intersect1d(parts[0][1], parts[1][1]).size:
        raise layout_error("sop", root, "Ebay_train.txt and Ebay_test.txt share class ids; the official split is class-disjoint", ValueError)
    paths = [base / r[3] for r in rows]
    _check_images(paths, "sop", root)
    labels, unique = _dense(class_ids)
    coarse, super_unique = _dense(super_ids)
    super_names = {}
    for sid, row in zip(super_ids.tolist(), rows):
        super_names.setdefault(sid, row[3].split("/", 1)[0].removesuffix("_final"))
    split = PredefinedSplit(np.arange(n_train), np.arange(n_train, len(rows)))
    return ImageDataset(
        paths, labels, name="sop", class_names=[str(c) for c in unique.tolist()], coarse_labels=coarse,
        coarse_names=[super_names[s] for s in super_unique.tolist()], predefined_split=split, **options,
    )


def inshop(data_root: str | Path | None = None, download: bool = False, **options: Any) -> ImageDataset:
    """In-Shop Clothes Retrieval (52,712 images, 7,982 items); official split: train / query + gallery; category (e.g. WOMEN/Dresses) as coarse label."""
    root = _prepare("inshop", data_root, download, ["list_eval_partition.txt", "Eval/list_eval_partition.txt"])
    path = _find(root, ["list_eval_partition.txt", "Eval/list_eval_partition.txt"], "inshop")
    with open(path, encoding="utf-8") as handle:
        head = [handle.readline().split() for _ in range(2)]
    if len(head[0]) != 1 or head[1] != ["image_name", "item_id", "evaluation_status"]:
        raise layout_error("inshop", root, f"{str(path)!r} does not start with a count line and the header 'image_name item_id evaluation_status'", ValueError)
    rows = _read_table(path, 3, "inshop", root, skip=2)
    status = np.asarray([r[2] for r in rows])
    bad = sorted(set(status.tolist()) - {"train", "query", "gallery"})
    if bad:
        raise layout_error("inshop", root, f"{str(path)!r} has evaluation_status {bad[:3]}; expected train, query or gallery", ValueError)
    image_base = root if (root / rows[0][0]).is_file() or not (root / "Img").is_dir() else root / "Img"
    paths = [image_base / r[0] for r in rows]
    _check_images(paths, "inshop", root)
    items = np.asarray([r[1] for r in rows])
    unique, labels = np.unique(items, return_inverse=True)
    categories = np.asarray(["/".join(Path(r[0]).parts[1:3]) for r in rows])
    coarse_unique, coarse = np.unique(categories, return_inverse=True)
    train, query, gallery = (np.flatnonzero(status == s) for s in ("train", "query", "gallery"))
    if np.intersect1d(labels[train], labels[np.concatenate([query, gallery])]).size:
        raise layout_error("inshop", root, f"{str(path)!r} has items in both train and query/gallery; the official split is item-disjoint", ValueError)
    split = PredefinedSplit(train, np.sort(np.concatenate([query, gallery])), query, gallery)
    return ImageDataset(
        paths, labels.astype(np.int64), name="inshop", class_names=unique.tolist(), coarse_labels=coarse.astype(np.int64),
        coarse_names=coarse_unique.tolist(), predefined_split=split, **options,
    )


def imagefolder(data_root: str | Path | None = None, download: bool = False, **options: Any) -> ImageDataset:
    """A folder of class folders (torchvision's ImageFolder rule); class names = folder names, sorted."""
    from torchvision.datasets import ImageFolder

    root = _root(data_root, "imagefolder")
    if download:
        raise ValueError("download=True has nothing to fetch for 'imagefolder'; pass data_root= pointing at your own folder of class folders")
    if not root.is_dir():
        raise layout_error("imagefolder", root, f"folder {str(root)!r} does not exist")
    try:
        folder = ImageFolder(str(root))
    except (FileNotFoundError, OSError) as error:
        raise layout_error("imagefolder", root, f"no class folder with images under {str(root)!r} ({error})") from None
    paths = [p for p, _ in folder.samples]
    labels = np.asarray([c for _, c in folder.samples], dtype=np.int64)
    return ImageDataset(paths, labels, name=f"imagefolder:{root}", class_names=folder.classes, **options)


_TORCHVISION = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}
_TORCHVISION_FILES = {
    "mnist": "DATA_ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "fashionmnist": "DATA_ROOT/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "cifar10": "DATA_ROOT/cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)",
    "cifar100": "DATA_ROOT/cifar-100-python/ (train, test, meta)",
}


def torchvision_set(name: str, data_root: str | Path | None = None, download: bool = False, **options: Any) -> ArrayImageDataset:
    """torchvision's MNIST, FashionMNIST, CIFAR-10 or CIFAR-100: its train and test parts as one dataset at native size, no augmentation by default."""
    import torchvision.datasets as tvd

    if data_root is None:
        raise ValueError(f"dataset {name!r} needs data_root= (--data-root): the folder holding {_TORCHVISION_FILES[name]}, or where download=True puts it")
    root = str(Path(data_root).expanduser())
    cls = getattr(tvd, _TORCHVISION[name])
    try:
        parts = [cls(root, train=train, download=download) for train in (True, False)]
    except RuntimeError as error:
        hint = "pass download=True (--download) to fetch it with torchvision" if not download else "it could not be downloaded (offline?)"
        raise FileNotFoundError(f"{name}: files not found under data_root={root!r} ({error}); expected {_TORCHVISION_FILES[name]}; {hint}") from None
    except OSError as error:  # URLError and friends when download=True fails
        raise DownloadError(f"{name}: torchvision could not download it into {root!r} ({error}); expected {_TORCHVISION_FILES[name]}") from error
    images = np.concatenate([np.asarray(p.data, dtype=np.uint8) for p in parts])
    labels = np.concatenate([np.asarray(p.targets, dtype=np.int64) for p in parts])
    size = int(images.shape[1])
    options = {"image_size": size, "resize": size, "augment": False, "thumbnail_size": size, **options}
    return ArrayImageDataset(images, labels, name=name, class_names=list(parts[0].classes), **options)


def _torchvision_reader(name: str) -> Any:
    def reader(data_root: str | Path | None = None, download: bool = False, **options: Any) -> ArrayImageDataset:
        return torchvision_set(name, data_root, download, **options)

    reader.__name__ = name
    reader.__doc__ = f"torchvision's {_TORCHVISION[name]} from data_root (train and test together)."
    return reader


IMAGE_DATASETS = {
    "cub200": cub200,
    "cars196": cars196,
    "sop": sop,
    "inshop": inshop,
    "imagefolder": imagefolder,
    **{name: _torchvision_reader(name) for name in _TORCHVISION},
}
