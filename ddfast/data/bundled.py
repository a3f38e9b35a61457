"""The small Fashion-MNIST subset shipped inside the package (no download, no root).

``ddfast/data/bundled/fashion_mnist_small.npz`` holds 50 train + 20 test images per class
(700 images, uint8 28x28), drawn with a fixed seed from the original Fashion-MNIST IDX files
by ``scripts/make_bundled_fmnist.py`` (its docstring documents the selection). It lets the
demo, the tests and CI run end to end on any machine.
"""
from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import torch

from ddfast.data.dataset import ImageDataset
from ddfast.data.fashion_mnist import FASHION_MNIST_CLASSES
from ddfast.data.stats import FASHION_MNIST_STATS
from ddfast.errors import DatasetError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

BUNDLED_FILE = "fashion_mnist_small.npz"


def bundled_path() -> Traversable:
    """Location of the bundled npz inside the installed package (a ``Traversable``)."""
    return resources.files("ddfast.data").joinpath("bundled", BUNDLED_FILE)


def load_bundled(split: str = "train") -> ImageDataset:
    """The bundled Fashion-MNIST subset: uint8 ``[N, 1, 28, 28]``, class-balanced."""
    ref = bundled_path()
    try:
        with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as npz:
            images = np.array(npz[f"{split}_images"])
            labels = np.array(npz[f"{split}_labels"])
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(
            f"bundled: cannot read {ref} ({exc}); expected the npz written by "
            f"scripts/make_bundled_fmnist.py with {split}_images and {split}_labels"
        ) from exc
    if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DatasetError(f"bundled: {ref} has unexpected arrays {images.shape}, {labels.shape}")
    return ImageDataset(
        images=torch.from_numpy(images[:, None]),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=list(FASHION_MNIST_CLASSES),
        mean=FASHION_MNIST_STATS[0],
        std=FASHION_MNIST_STATS[1],
        name="bundled",
    )
