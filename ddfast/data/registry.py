"""``load(name, root, split, **options)``: one entry point for every dataset reader.

Names are case-insensitive (``-`` and ``_`` are interchangeable); aliases map to canonical
names, and the returned dataset's ``name`` is the canonical one, so ``load(ds.name, ...)``
reads the same dataset again. Unknown names, splits and options raise ``ConfigError`` that
lists the valid values.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ddfast.data.bundled import load_bundled
from ddfast.data.cifar import load_cifar10, load_cifar100
from ddfast.data.dataset import ImageDataset
from ddfast.data.fashion_mnist import load_fashion_mnist
from ddfast.data.imagefolder import load_image_folder
from ddfast.data.imagenet import IMAGENET_SUBSETS, SPLIT_FOLDERS, load_imagenet_subset
from ddfast.data.paths import PathLike
from ddfast.errors import ConfigError

#: Canonical dataset names accepted by :func:`load`.
DATASET_NAMES: tuple[str, ...] = (
    "cifar10",
    "cifar100",
    "fashion_mnist",
    *IMAGENET_SUBSETS,
    "imagefolder",
    "bundled",
)

#: Other spellings accepted by :func:`load` -> canonical name.
DATASET_ALIASES: dict[str, str] = {
    "fashionmnist": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "cifar_10": "cifar10",
    "cifar_100": "cifar100",
}

_TRAIN_TEST = ("train", "test")
_SPLITS: dict[str, tuple[str, ...]] = {name: _TRAIN_TEST for name in DATASET_NAMES}
_SPLITS.update({name: tuple(SPLIT_FOLDERS) for name in IMAGENET_SUBSETS})
_SPLITS["imagefolder"] = ("train", "val", "test")


def _reader(name: str) -> Callable[..., ImageDataset]:
    if name in IMAGENET_SUBSETS:
        return lambda root, split, **kw: load_imagenet_subset(name, root, split, **kw)
    return {
        "cifar10": load_cifar10,
        "cifar100": load_cifar100,
        "fashion_mnist": load_fashion_mnist,
        "imagefolder": load_image_folder,
        "bundled": lambda root, split: load_bundled(split),
    }[name]


def _options(name: str) -> tuple[str, ...]:
    """Keyword options the reader of ``name`` accepts."""
    fn = load_imagenet_subset if name in IMAGENET_SUBSETS else {
        "imagefolder": load_image_folder,
    }.get(name)
    if fn is None:
        return ()
    return tuple(
        p.name for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


def canonical_name(name: str) -> str:
    """Canonical dataset name for ``name`` (case-insensitive, aliases resolved)."""
    if not isinstance(name, str):
        raise ConfigError(f"dataset name must be a string, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = DATASET_ALIASES.get(key, key)
    if key not in DATASET_NAMES:
        aliases = ", ".join(f"{a} -> {c}" for a, c in DATASET_ALIASES.items())
        raise ConfigError(
            f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)} "
            f"(aliases: {aliases})"
        )
    return key


def valid_splits(name: str) -> tuple[str, ...]:
    """The ``split`` values :func:`load` accepts for dataset ``name``."""
    return _SPLITS[canonical_name(name)]


def load(
    name: str, root: PathLike | None = None, split: str = "train", **options: Any
) -> ImageDataset:
    """Load a whole dataset split into memory as an :class:`ImageDataset`.

    Args:
        name: one of ``DATASET_NAMES`` (or an alias in ``DATASET_ALIASES``), any case.
        root: where the data lives (see each reader for the layouts accepted). ``None`` means:
            Debian's ``/usr/share/datasets/fashion-mnist`` for Fashion-MNIST, nothing for
            ``bundled``, ``$DDFAST_DATA`` for the others. ``bundled`` ignores ``root``.
        split: ``"train"`` or ``"test"``; the ImageNet subsets use ``"train"``/``"val"`` and
            accept ``"test"`` for ``"val"``; ``imagefolder`` accepts all three.
        options: reader options - ImageNet subsets: ``image_size=128``, ``dtype="float32"``,
            ``limit_per_class``, ``workers``, ``progress``; ``imagefolder``: the same plus
            ``channels``, with ``image_size=None`` and ``dtype=None`` by default.
    """
    key = canonical_name(name)
    splits = _SPLITS[key]
    split_key = split.strip().lower() if isinstance(split, str) else split
    if split_key not in splits:
        raise ConfigError(f"unknown split {split!r} for {key}; valid splits: {', '.join(splits)}")
    allowed = _options(key)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {key}; valid options: {valid}"
        )
    return _reader(key)(root, split_key, **options)
