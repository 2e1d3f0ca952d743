"""Features of a frozen ImageNet backbone for every image of a dataset, written once (read back by dmlviz.data.FeatureDataset)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from .._device import resolve_device
from .._validation import check_positive_int, unknown_name_error
from ..data import DMLDataset, ImageDataset, load_dataset
from ..data.features import FORMAT
from ..runs.files import write_npz

logger = logging.getLogger(__name__)

FEATURE_BACKBONES = ("resnet18", "resnet50")


@torch.no_grad()
def extract_features(
    dataset: str | DMLDataset,
    out: str | os.PathLike,
    *,
    backbone: str = "resnet50",
    data_root: str | os.PathLike | None = None,
    data_params: dict[str, Any] | None = None,
    pretrained: bool | str = True,
    pooling: str = "avg",
    batch_size: int = 128,
    num_workers: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Path:
    """Embed every image of ``dataset`` with a frozen ImageNet ``backbone`` (eval mode, test transform) and write ``out``.

    Features [N, F] are the trunk's pooled output (F = 512 for resnet18, 2048 for resnet50),
    stored as float16; bf16 autocast and channels_last on CUDA. ``pretrained`` reads
    torchvision's ImageNet weights from the torch hub cache (never downloaded; without them
    the error names the file and the folder). Returns the path written.
    """
    if backbone not in FEATURE_BACKBONES:
        raise unknown_name_error("backbone", backbone, FEATURE_BACKBONES)
    batch_size = check_positive_int("batch_size", batch_size)
    out = Path(out).expanduser()
    if out.suffix != ".npz":
        raise ValueError(f"out must name a .npz file, got {str(out)!r}; e.g. out='cub200-resnet50.npz'")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"out={str(out)!r}: the folder {str(out.parent)!r} does not exist")
    torch_device = resolve_device(device)
    params = dict(data_params or {})
    if data_root is not None:
        params["data_root"] = str(data_root)
    data = load_dataset(dataset, **params)
    if not isinstance(data, ImageDataset):
        raise ValueError(
            f"dataset {getattr(data, 'name', dataset)!r} holds no images read through the field's transforms "
            f"({type(data).__name__}, input shape {data.input_shape}); features come from image datasets: "
            "cub200, cars196, sop, inshop, imagefolder:PATH, mnist, fashionmnist, cifar10, cifar100"
        )
    from . import build_model

    net = build_model(backbone, data.input_shape, 1, pretrained=pretrained, pooling=pooling).to(torch_device).eval()
    if torch_device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    ids = np.arange(len(data))
    chunks = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
    rows = []
    for inputs, _ in tqdm(data.batches(chunks, num_workers=num_workers), total=len(chunks), desc=f"{backbone} features", unit="batch", disable=not progress):
        inputs = inputs.to(torch_device, non_blocking=True)
        with torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=torch_device.type == "cuda"):
            rows.append(net.features(inputs).float().to(torch.float16))
    features = torch.cat(rows).cpu().numpy()
    if not np.isfinite(features).all():
        raise FloatingPointError("the backbone's features contain NaN or inf (float16 overflow?); nothing was written")
    transform = {k: getattr(data, k) for k in ("image_size",) if hasattr(data, k)}
    meta = {
        "format": FORMAT,
        "dataset": dataset if isinstance(dataset, str) else data.name,
        "backbone": backbone,
        "pretrained": pretrained,
        "pooling": pooling,
        "transform": {**transform, **{k: v for k, v in (data_params or {}).items() if k != "download"}},
        "num_samples": int(len(data)),
        "feature_dim": int(features.shape[1]),
        "dmlviz": __version__,
    }
    arrays: dict[str, np.ndarray] = {
        "features": features,
        "labels": data.labels.astype(np.int64),
        "class_names": np.asarray(data.class_names, dtype=str),
        "thumbnails": data.thumbnails(ids),
        "meta": np.asarray(json.dumps(meta)),
    }
    split = getattr(data, "predefined_split", None)
    if split is not None:
        for key in ("train", "test", "query", "gallery"):
            if getattr(split, key) is not None:
                arrays[f"split_{key}"] = np.asarray(getattr(split, key), dtype=np.int64)
    coarse = getattr(data, "coarse_labels", None)
    if coarse is not None:
        arrays["coarse_labels"] = np.asarray(coarse, dtype=np.int64)
        arrays["coarse_names"] = np.asarray(getattr(data, "coarse_names", None) or [], dtype=str)
    write_npz(out, arrays)
    logger.info("features %s of %d images written to %s", features.shape, len(data), out)
    return out
