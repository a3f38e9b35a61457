"""The six 128x128 ImageNet subsets of MTT / DDiF / DD-RUO, read from an ImageNet-style tree.

Layout: ``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG`` (class folders named by
WordNet id, validation images sorted into class folders as torchvision's ``ImageNet`` or the
usual ``valprep.sh`` leave them). A tree holding only the subset's ten folders is enough.
These are the original ILSVRC-2012 splits, not fast.ai's Imagenette v2 (MTT issues #22, #35).

Label order is the reference list order (``IMAGENET_SUBSETS``; expert buffers depend on it).
Preprocessing follows the references: decode with Pillow, RGB, [0, 1] floats, squash to
``image_size`` with bilinear / no antialias (see ``ddfast.data.imaging``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch

from ddfast.data.dataset import ImageDataset
from ddfast.data.imaging import (
    SizeArg,
    list_images,
    load_images,
    parse_dtype,
    parse_image_size,
    parse_limit,
)
from ddfast.data.paths import PathLike, is_hidden, resolve_root
from ddfast.data.stats import IMAGENET_STATS
from ddfast.errors import ConfigError, DatasetError

#: ImageNet-1k class ids of each subset, label 0 -> 9 (MTT ``utils.py::Config``).
IMAGENET_SUBSETS: dict[str, tuple[int, ...]] = {
    "imagenette": (0, 217, 482, 491, 497, 566, 569, 571, 574, 701),
    "imagewoof": (193, 182, 258, 162, 155, 167, 159, 273, 207, 229),
    "imagefruit": (953, 954, 949, 950, 951, 957, 952, 945, 943, 948),
    "imageyellow": (309, 986, 954, 951, 987, 779, 599, 291, 72, 11),
    "imagemeow": (281, 282, 283, 284, 285, 291, 292, 290, 289, 287),
    "imagesquawk": (84, 130, 88, 144, 145, 22, 96, 9, 100, 89),
}

#: The split folder each accepted ``split`` reads ("test" is the ImageNet val split).
SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "val"}

_LAYOUT = "an ImageNet-style tree root/{train,val}/<wnid>/*.JPEG"


@lru_cache(maxsize=1)
def imagenet_class_table() -> dict[int, tuple[str, str]]:
    """ImageNet-1k index -> (wnid, name) for every class used by a subset (shipped JSON)."""
    text = resources.files("ddfast.data").joinpath("imagenet_classes.json").read_text("utf-8")
    return {int(k): (v["wnid"], v["name"]) for k, v in json.loads(text)["classes"].items()}


def subset_classes(subset: str) -> list[tuple[int, str, str]]:
    """``(imagenet_index, wnid, name)`` of a subset's classes in label order."""
    if subset not in IMAGENET_SUBSETS:
        raise ConfigError(
            f"unknown ImageNet subset {subset!r}; valid: {', '.join(IMAGENET_SUBSETS)}"
        )
    table = imagenet_class_table()
    return [(i, *table[i]) for i in IMAGENET_SUBSETS[subset]]


def _class_folders(split_dir: Path, subset: str) -> list[Path]:
    classes = subset_classes(subset)
    missing = [(w, n) for _, w, n in classes if not (split_dir / w).is_dir()]
    if missing:
        listed = ", ".join(f"{w} ({n})" for w, n in missing)
        hint = ""
        if len(missing) == len(classes) and any(
            p.is_file() and not is_hidden(p) for p in split_dir.iterdir()
        ):
            hint = "; the images there must be sorted into <wnid>/ class folders"
        raise DatasetError(
            f"{subset}: {len(missing)} of {len(classes)} class folders missing under "
            f"{split_dir}: {listed}; expected {_LAYOUT}{hint}"
        )
    return [split_dir / w for _, w, _ in classes]


def load_imagenet_subset(
    subset: str,
    root: PathLike | None,
    split: str = "train",
    *,
    image_size: SizeArg = 128,
    dtype: str | torch.dtype = "float32",
    limit_per_class: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Read one ImageNet subset split, resized to ``image_size`` (default 128x128).

    Options: ``dtype`` "float32" (default, [0, 1]) or "uint8" (the resized values rounded);
    ``limit_per_class`` reads only the first k files (sorted by name) of each class, for quick
    runs; ``workers`` decoding threads; ``progress`` shows a tqdm bar.
    """
    size = parse_image_size(image_size)
    if size is None:
        raise ConfigError(f"{subset}: image_size must be given (the references use 128)")
    out_dtype = parse_dtype(dtype)
    limit_per_class = parse_limit(limit_per_class)
    folder = SPLIT_FOLDERS[split]
    base = resolve_root(root, subset, _LAYOUT)
    split_dir = base / folder
    if not split_dir.is_dir():
        raise DatasetError(f"{subset}: no {folder}/ folder under {base}; expected {_LAYOUT}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(_class_folders(split_dir, subset)):
        files = list_images(class_dir, limit_per_class)
        if not files:
            raise DatasetError(f"{subset}: class folder {class_dir} holds no image files")
        paths += files
        labels += [label] * len(files)
    images = load_images(
        paths, channels=3, size=size, dtype=out_dtype, workers=workers, progress=progress,
        desc=f"{subset} {folder}",
    )
    return ImageDataset(
        images=images,
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=[name for _, _, name in subset_classes(subset)],
        mean=IMAGENET_STATS[0],
        std=IMAGENET_STATS[1],
        name=subset,
    )
