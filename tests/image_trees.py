"""Tiny image trees in the official layouts, written by the tests (no real dataset is downloaded).

Importable from every test module: pytest puts this folder (tests/, the conftest's) on sys.path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> None:
    """A small random RGB picture (40×30 px) as PNG or JPEG, by the file's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_cub(root: Path, class_ids=(1, 2, 3, 101, 102, 103), per_class: int = 3) -> Path:
    """CUB_200_2011/ with images.txt, classes.txt, image_class_labels.txt and images/."""
    base = root / "CUB_200_2011"
    images, labels, classes = [], [], []
    image_id = 0
    for c in class_ids:
        folder = f"{c:03d}.Bird_{c}"
        classes.append(f"{c} {folder}")
        for j in range(per_class):
            image_id += 1
            rel = f"{folder}/Bird_{c}_{j}.jpg"
            write_image(base / "images" / rel, image_id)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "classes.txt").write_text("\n".join(classes) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return root
