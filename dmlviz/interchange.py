"""Runs to and from other formats: TensorBoard's embedding projector (export and import) and embeddings saved per epoch
as .npy / .npz files (import). Imports are recorded with :class:`dmlviz.Recorder`, so they read like trained runs."""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

logger = logging.getLogger(__name__)

#: the projector's file of embedding entries, at the top of a log folder
PROJECTOR_CONFIG = "projector_config.pbtxt"


# -- export --------------------------------------------------------------------------------------
def export_projector(run: Any, out: str | os.PathLike, epochs: Sequence[int] | None = None, tag: str = "dmlviz") -> Path:
    """Write epochs of ``run`` (a Run or its folder; default: the last) as a TensorBoard projector log in ``out``.

    Per epoch ``out/<epoch:05d>/<tag>/``: tensors.tsv (the unit embeddings), metadata.tsv (class, split, fine label)
    and, when the run has thumbnails, sprite.png; ``out/projector_config.pbtxt`` lists them
    (``tensorboard --logdir out``, tab "Projector"). Returns ``out``.
    """
    from .runs import Run, load_run

    run = run if isinstance(run, Run) else load_run(run)
    chosen = [run.epochs[-1]] if epochs is None else [int(e) for e in epochs]
    missing = sorted(set(chosen) - set(run.epochs))
    if missing:
        raise ValueError(f"epochs {missing} are not recorded in {str(run.path)!r}; it has {run.epochs[0]}..{run.epochs[-1]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for epoch in chosen:
        snap = run.snapshot(epoch)
        folder = Path(f"{epoch:05d}") / tag
        (out / folder).mkdir(parents=True, exist_ok=True)
        np.savetxt(out / folder / "tensors.tsv", snap.embeddings, delimiter="\t", fmt="%.6g")
        columns = {"class": [snap.class_names[c] for c in snap.labels], "split": list(snap.split)}
        if snap.fine_labels is not None:
            columns["fine"] = [snap.fine_names[f] if snap.fine_names else str(f) for f in snap.fine_labels]
        lines = ["\t".join(columns)] + ["\t".join(_tsv(columns[k][i]) for k in columns) for i in range(len(snap.labels))]
        (out / folder / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        entry = [f'  tensor_name: "{tag}:{epoch:05d}"', f'  tensor_path: "{folder.as_posix()}/tensors.tsv"',
                 f'  metadata_path: "{folder.as_posix()}/metadata.tsv"']
        if snap.thumbnails is not None:
            height, width = _write_sprite(snap.thumbnails, out / folder / "sprite.png")
            entry += ["  sprite {", f'    image_path: "{folder.as_posix()}/sprite.png"', f"    single_image_dim: {width}",
                      f"    single_image_dim: {height}", "  }"]
        entries.append("embeddings {\n" + "\n".join(entry) + "\n}\n")
    (out / PROJECTOR_CONFIG).write_text("".join(entries), encoding="utf-8")
    return out


def _tsv(value: Any) -> str:
    return str(value).replace("\t", " ").replace("\n", " ")


def _write_sprite(thumbnails: np.ndarray, path: Path) -> tuple[int, int]:
    """One PNG of every thumbnail [N, H, W(, 3)] in a square grid, row-major (the projector's sprite); (H, W)."""
    from PIL import Image

    n, height, width = thumbnails.shape[:3]
    side = math.ceil(math.sqrt(n))
    channels = 3 if thumbnails.ndim == 4 else 1
    grid = np.full((side * height, side * width, channels), 255, dtype=np.uint8)
    tiles = thumbnails if thumbnails.ndim == 4 else thumbnails[..., None]
    for i in range(n):
        r, c = divmod(i, side)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = tiles[i]
    Image.fromarray(grid[..., 0] if channels == 1 else grid).save(path)
    return height, width


# -- import ---------------------------------------------------------------------------------------
def read_projector_config(logdir: str | os.PathLike) -> list[dict[str, Any]]:
    """The embedding entries of ``logdir/projector_config.pbtxt``: tensor_name, tensor_path, metadata_path, sprite (path, dims)."""
    path = Path(logdir) / PROJECTOR_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; a TensorBoard projector log folder holds {PROJECTOR_CONFIG} "
                                "(written by SummaryWriter.add_embedding)")
    text = path.read_text(encoding="utf-8")
    entries = []
    for block in re.finditer(r"embeddings\s*\{((?:[^{}]|\{[^{}]*\})*)\}", text):
        body = block.group(1)
        entry: dict[str, Any] = {k: m.group(1) for k in ("tensor_name", "tensor_path", "metadata_path")
                                 if (m := re.search(rf'{k}\s*:\s*"([^"]*)"', body))}
        sprite = re.search(r"sprite\s*\{([^{}]*)\}", body)
        if sprite:
            image = re.search(r'image_path\s*:\s*"([^"]*)"', sprite.group(1))
            dims = [int(d) for d in re.findall(r"single_image_dim\s*:\s*(\d+)", sprite.group(1))]
            if image and len(dims) == 2:
                entry["sprite"] = (image.group(1), dims[0], dims[1])
        if "tensor_path" not in entry:
            raise ValueError(f"an embeddings entry of {str(path)!r} has no tensor_path: {body.strip()[:120]!r}")
        entries.append(entry)
    if not entries:
        raise ValueError(f"{str(path)!r} lists no embeddings entry")
    return entries


def _step_of(entry: dict[str, Any], index: int) -> int:
    """The epoch of a projector entry: the global step in its tensor name ("tag:00003") or folder ("00003/tag"), else its index."""
    for text in (entry.get("tensor_name", ""), entry.get("tensor_path", "")):
        found = re.search(r"(?:^|[:/])(\d{1,9})(?:$|/)", text)
        if found:
            return int(found.group(1))
    return index


def _read_metadata(path: Path) -> tuple[list[str], list[list[str]]]:
    """(column names, rows) of a projector metadata.tsv: one column without a header, several with one."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{str(path)!r} is empty")
    first = lines[0].split("\t")
    if len(first) == 1:
        return ["label"], [[line] for line in lines]
    return first, [line.split("\t") for line in lines[1:]]


def import_projector(logdir: str | os.PathLike, out: str | os.PathLike, *, label_column: str | None = None, overwrite: bool = False) -> Any:
    """Record a TensorBoard projector log (every entry of one tag, its global step as the epoch) as a dmlviz run in ``out``.

    Labels come from ``label_column`` of metadata.tsv (default: "class", "label" or the first column), a "split"
    column gives the split, a sprite gives thumbnails. Returns the Run.
    """
    import dmlviz

    logdir = Path(logdir)
    entries = read_projector_config(logdir)
    tags = sorted({e.get("tensor_name", "default").split(":")[0] for e in entries})
    if len(tags) > 1:
        logger.warning("the projector log holds several tags (%s); every entry is taken as one epoch of one run", tags)
    entries = sorted(entries, key=lambda e: _step_of(e, 0))
    first = entries[0]
    if "metadata_path" not in first:
        raise ValueError(f"the projector entry {first.get('tensor_name')!r} has no metadata_path: dmlviz needs each sample's class")
    names, rows = _read_metadata(logdir / first["metadata_path"])
    column = label_column or next((c for c in ("class", "label", "labels") if c in names), names[0])
    if column not in names:
        raise ValueError(f"label_column={column!r} is not a column of its metadata.tsv; it has {names}")
    values = [row[names.index(column)] for row in rows]
    class_names, labels = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    split = None
    if "split" in names:
        split = np.asarray([row[names.index("split")] for row in rows], dtype=str)
    thumbnails = None
    if "sprite" in first:
        image, width, height = first["sprite"]
        thumbnails = _read_sprite(logdir / image, len(labels), height, width)
    with dmlviz.Recorder(out, labels=labels, split=split, thumbnails=thumbnails, class_names=list(class_names),
                         config={"dataset": f"tensorboard:{logdir.name}", "imported_from": str(logdir)}, overwrite=overwrite) as rec:
        for index, entry in enumerate(entries):
            rec.log(_step_of(entry, index), np.loadtxt(logdir / entry["tensor_path"], delimiter="\t", ndmin=2))
    return dmlviz.load_run(out)


def _read_sprite(path: Path, n: int, height: int, width: int) -> np.ndarray:
    """The first ``n`` tiles [n, H, W] (grey) or [n, H, W, 3] of a projector sprite, row-major in a square grid."""
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    side = math.ceil(math.sqrt(n))
    if image.shape[0] < side * height or image.shape[1] < side * width:
        raise ValueError(f"{str(path)!r} is {image.shape[1]}×{image.shape[0]} px, too small for {n} tiles of {width}×{height}")
    tiles = np.stack([image[r * height : (r + 1) * height, c * width : (c + 1) * width] for r, c in (divmod(i, side) for i in range(n))])
    grey = (tiles[..., 0] == tiles[..., 1]).all() and (tiles[..., 1] == tiles[..., 2]).all()
    return tiles[..., 0].copy() if grey else tiles


def import_arrays(files: Sequence[str | os.PathLike], out: str | os.PathLike, *, labels: Any = None, split: Any = None,
                  class_names: Sequence[str] | None = None, overwrite: bool = False) -> Any:
    """Record embeddings saved per epoch (``.npy`` [N, D] files, or ``.npz`` with "embeddings" and optionally "labels",
    "split", "epoch") as a dmlviz run in ``out``; the epoch is an npz's "epoch", else the last number in the file name.

    ``labels`` [N] (array, or a .npy / .txt file) are needed unless an npz holds them. Returns the Run.
    """
    import dmlviz

    if not files:
        raise ValueError("no files given; pass the per-epoch embeddings, e.g. emb_000.npy emb_001.npy ...")
    loaded = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} does not exist")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "embeddings" not in data.files:
                    raise ValueError(f"{str(path)!r} has no 'embeddings' array; it has {data.files}")
                arrays = {k: data[k] for k in data.files}
        elif path.suffix == ".npy":
            arrays = {"embeddings": np.load(path, allow_pickle=False)}
        else:
            raise ValueError(f"{str(path)!r} is neither .npy nor .npz")
        numbers = re.findall(r"\d+", path.stem)
        epoch = int(arrays["epoch"]) if "epoch" in arrays else (int(numbers[-1]) if numbers else len(loaded))
        loaded.append((epoch, path, arrays))
    loaded.sort(key=lambda item: item[0])
    epochs = [e for e, _, _ in loaded]
    if len(set(epochs)) != len(epochs):
        raise ValueError(f"two files give the same epoch: {epochs}; name them with their epoch, or store 'epoch' in each npz")
    if isinstance(labels, (str, os.PathLike)):
        labels = np.load(labels, allow_pickle=False) if str(labels).endswith(".npy") else np.loadtxt(labels, dtype=np.int64, ndmin=1)
    if labels is None:
        labels = next((a["labels"] for _, _, a in loaded if "labels" in a), None)
        if labels is None:
            raise ValueError("labels are needed: pass labels= (--labels FILE.npy) or store 'labels' in the npz files")
    if split is None:
        split = next((a["split"] for _, _, a in loaded if "split" in a), None)
    with dmlviz.Recorder(out, labels=np.asarray(labels), split=split, class_names=class_names,
                         config={"dataset": "imported", "imported_from": [str(p) for _, p, _ in loaded]}, overwrite=overwrite) as rec:
        for epoch, _, arrays in loaded:
            rec.log(epoch, arrays["embeddings"], centers=arrays.get("centers"))
    return dmlviz.load_run(out)
