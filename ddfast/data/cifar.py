"""CIFAR-10 / CIFAR-100 from torchvision's "python version" folders, without torchvision.

Layouts (as torchvision's ``CIFAR10(root, download=True)`` leaves them):

* ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
  ``batches.meta`` (``label_names``).
* ``cifar-100-python/``: ``train``, ``test``, ``meta`` (``fine_label_names``); labels are the
  100 fine labels.

Each batch is a pickled dict whose ``data`` is ``[N, 3072]`` uint8, one row per image in
CHW order (1024 red, 1024 green, 1024 blue values), so a reshape gives ``[N, 3, 32, 32]``.
``root`` may be the batch folder itself or its parent.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddfast.data.dataset import ImageDataset
from ddfast.data.paths import PathLike, resolve_root
from ddfast.data.safe_pickle import load_pickle
from ddfast.data.stats import CIFAR10_STATS, CIFAR100_STATS
from ddfast.errors import DatasetError


@dataclass(frozen=True)
class _CifarLayout:
    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    stats: tuple[tuple[float, ...], tuple[float, ...]]

    def describe(self) -> str:
        train = (
            "data_batch_1..5" if len(self.train_files) == 5 else ", ".join(self.train_files)
        )
        return (
            f"{self.folder}/ with {train}, {', '.join(self.test_files)} and {self.meta_file}"
        )


CIFAR10_LAYOUT = _CifarLayout(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
    stats=CIFAR10_STATS,
)

CIFAR100_LAYOUT = _CifarLayout(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    stats=CIFAR100_STATS,
)


def _find_folder(root: Path, layout: _CifarLayout) -> Path:
    """The batch folder: ``root/<folder>`` if present, else ``root`` if it holds batch files."""
    nested = root / layout.folder
    if nested.is_dir():
        return nested
    names = layout.train_files + layout.test_files + (layout.meta_file,)
    if any((root / n).is_file() for n in names):
        return root
    raise DatasetError(f"{layout.name}: expected {layout.describe()} under {root}")


def _field(record: Any, key: str, path: Path) -> Any:
    """``record[key]`` whether the pickle stored keys as bytes (original files) or str."""
    if not isinstance(record, dict):
        raise DatasetError(
            f"{path} does not hold a CIFAR dict (found {type(record).__name__})"
        )
    for k in (key.encode("ascii"), key):
        if k in record:
            return record[k]
    found = ", ".join(sorted(repr(k) for k in record)[:8])
    raise DatasetError(f"{path} has no {key!r} entry (keys: {found}); not a CIFAR file")


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _read_batch(path: Path, layout: _CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    record = load_pickle(path, f"{layout.name} batch")
    data = _field(record, "data", path)
    labels_raw = _field(record, layout.label_key, path)
    if not isinstance(data, np.ndarray):
        raise DatasetError(f"{path}: 'data' must be a uint8 numpy array of shape [N, 3072], "
                           f"got a {type(data).__name__}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"{path}: 'data' must be a uint8 array of shape [N, 3072], "
            f"got {data.dtype} {tuple(data.shape)}"
        )
    try:
        labels = np.asarray(labels_raw, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: {layout.label_key!r} is not a list of integers") from exc
    if labels.shape[0] != data.shape[0]:
        raise DatasetError(
            f"{path}: {data.shape[0]} images but {labels.shape[0]} {layout.label_key!r}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise DatasetError(
            f"{path}: labels must lie in 0..{layout.num_classes - 1}, "
            f"got {labels.min()}..{labels.max()}"
        )
    return data, labels


def _read_classes(folder: Path, layout: _CifarLayout) -> list[str]:
    path = folder / layout.meta_file
    if not path.is_file():
        raise DatasetError(
            f"{layout.name}: missing {layout.meta_file} in {folder}; expected {layout.describe()}"
        )
    names = _field(load_pickle(path, f"{layout.name} meta"), layout.names_key, path)
    if not isinstance(names, (list, tuple)) or len(names) != layout.num_classes:
        raise DatasetError(
            f"{path}: {layout.names_key!r} must list {layout.num_classes} class names"
        )
    return [_text(n) for n in names]


def load_cifar(layout: _CifarLayout, root: PathLike | None, split: str) -> ImageDataset:
    """Read one split of a CIFAR folder into a uint8 ``[N, 3, 32, 32]`` ImageDataset."""
    base = _find_folder(resolve_root(root, layout.name, layout.describe()), layout)
    files = layout.train_files if split == "train" else layout.test_files
    missing = [f for f in files if not (base / f).is_file()]
    if missing:
        raise DatasetError(
            f"{layout.name}: missing {', '.join(missing)} in {base}; expected {layout.describe()}"
        )
    classes = _read_classes(base, layout)
    parts = [_read_batch(base / f, layout) for f in files]
    data = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    data = np.ascontiguousarray(data)
    if not data.flags.writeable:  # arrays rebuilt from pickled bytes may be read-only
        data = data.copy()
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32))
    return ImageDataset(
        images=images,
        labels=torch.from_numpy(labels),
        classes=classes,
        mean=layout.stats[0],
        std=layout.stats[1],
        name=layout.name,
    )


def load_cifar10(root: PathLike | None, split: str = "train") -> ImageDataset:
    """CIFAR-10 (50,000 train / 10,000 test, 32x32 RGB, uint8)."""
    return load_cifar(CIFAR10_LAYOUT, root, split)


def load_cifar100(root: PathLike | None, split: str = "train") -> ImageDataset:
    """CIFAR-100 with fine labels; ``mean``/``std`` are MTT's (= CIFAR-10's) values."""
    return load_cifar(CIFAR100_LAYOUT, root, split)
