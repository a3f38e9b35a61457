"""Fashion-MNIST from its four IDX files, in any of the layouts people have on disk.

Accepted places for the files (first folder holding both files of the split wins):
``root/FashionMNIST/raw/`` (torchvision), ``root/FashionMNIST/``, ``root/raw/`` and ``root``
itself; so ``root`` may be torchvision's data folder, its ``FashionMNIST`` folder, the ``raw``
folder or any plain folder. File names are the original ones, ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
optionally gzipped (``.gz``); the ``train-images.idx3-ubyte`` spelling is accepted too.
With ``root=None`` the Debian/Ubuntu package ``dataset-fashion-mnist`` location is used
(``/usr/share/datasets/fashion-mnist``, which holds the four ``.gz`` files).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ddfast.data.dataset import ImageDataset
from ddfast.data.idx import MAGIC_IMAGES_U8, MAGIC_LABELS_U8, read_idx
from ddfast.data.paths import PathLike
from ddfast.data.stats import FASHION_MNIST_STATS
from ddfast.errors import DatasetError

#: Where ``apt-get install dataset-fashion-mnist`` puts the files.
DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_PREFIX = {"train": "train", "test": "t10k"}


def _candidates(prefix: str, kind: str, ndim: int) -> list[str]:
    """File names one IDX file may have, preferred first (uncompressed before ``.gz``)."""
    stems = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return stems + [s + ".gz" for s in stems]


def _pick(folder: Path, names: list[str]) -> Path | None:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    return None


def _expected(split: str) -> str:
    p = _PREFIX[split]
    return f"{p}-images-idx3-ubyte and {p}-labels-idx1-ubyte (optionally .gz)"


def find_fashion_mnist_files(root: Path, split: str) -> tuple[Path, Path]:
    """(images file, labels file) of ``split`` under ``root`` in one of the accepted layouts."""
    prefix = _PREFIX[split]
    folders = [root / "FashionMNIST" / "raw", root / "FashionMNIST", root / "raw", root]
    for folder in folders:
        if not folder.is_dir():
            continue
        images = _pick(folder, _candidates(prefix, "images", 3))
        labels = _pick(folder, _candidates(prefix, "labels", 1))
        if images is not None and labels is not None:
            return images, labels
    tried = ", ".join(str(f) for f in folders if f.is_dir())
    raise DatasetError(
        f"fashion_mnist: expected {_expected(split)} in FashionMNIST/raw/ or a plain folder "
        f"under {root} (looked in {tried})"
    )


def load_fashion_mnist(root: PathLike | None, split: str = "train") -> ImageDataset:
    """One split of Fashion-MNIST as a uint8 ``[N, 1, 28, 28]`` ImageDataset."""
    base = DEFAULT_ROOT if root is None else Path(root).expanduser()
    if not base.is_dir():
        hint = " (install it with: apt-get install dataset-fashion-mnist)" if root is None else ""
        what = "does not exist" if not base.exists() else "is not a directory"
        raise DatasetError(
            f"fashion_mnist: {base} {what}{hint}; expected {_expected(split)} "
            f"in FashionMNIST/raw/ or a plain folder"
        )
    images_path, labels_path = find_fashion_mnist_files(base, split)
    images = read_idx(images_path, expect_magic=MAGIC_IMAGES_U8)
    labels = read_idx(labels_path, expect_magic=MAGIC_LABELS_U8)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"fashion_mnist: {images_path} holds {images.shape[0]} images but "
            f"{labels_path} holds {labels.shape[0]} labels"
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DatasetError(f"{labels_path}: label {labels.max()} is not a Fashion-MNIST class")
    return ImageDataset(
        images=torch.from_numpy(np.array(images[:, None, :, :])),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=list(FASHION_MNIST_CLASSES),
        mean=FASHION_MNIST_STATS[0],
        std=FASHION_MNIST_STATS[1],
        name="fashion_mnist",
    )
