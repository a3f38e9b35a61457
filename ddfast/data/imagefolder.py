"""Any ``root/<class_name>/<image files>`` tree, for distilling one's own data.

``split`` picks ``root/<split>/`` when that folder exists (``"test"`` also tries ``val/``),
otherwise ``root`` itself is the class-folder tree. Classes are the sorted folder names.
Images keep their size unless ``image_size`` is given (then: squash-resize as for the
ImageNet subsets); without it all images must have the same size.

Because no reference statistics exist for arbitrary data, ``mean``/``std`` are computed from
the loaded images: per channel, over all pixels of all images of this split, on [0, 1]
values (population std). A channel that is constant gets std 1.0 so that normalizing stays
finite. Pass the train split's values yourself if you want test data normalized the same way.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ddfast.data.dataset import ImageDataset
from ddfast.data.imaging import (
    SizeArg,
    is_gray_mode,
    list_images,
    load_images,
    parse_dtype,
    parse_image_size,
    parse_limit,
    peek_mode,
)
from ddfast.data.paths import PathLike, is_hidden, resolve_root
from ddfast.errors import ConfigError, DatasetError

_LAYOUT = "class folders root/<class_name>/*.png|jpg|... (optionally under root/<split>/)"


_SPLIT_NAMES = ("train", "val", "test")


def _split_dir(root: Path, split: str) -> Path:
    """``root/<split>`` (``test`` falls back to ``val``) if it exists, else ``root`` itself -
    unless ``root`` has other split folders, which means the requested one is missing."""
    names = [split] + (["val"] if split == "test" else [])
    for n in names:
        if (root / n).is_dir():
            return root / n
    present = [n for n in _SPLIT_NAMES if (root / n).is_dir()]
    if present:
        raise DatasetError(
            f"imagefolder: no {split}/ folder under {root} (it has "
            f"{', '.join(n + '/' for n in present)}); expected {_LAYOUT}"
        )
    return root


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of ``[N, C, H, W]`` images on the [0, 1] scale."""
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = 0
    for chunk in torch.split(images, 256):
        x = chunk.to(torch.float64).div_(scale).transpose(0, 1).reshape(c, -1)
        total += x.sum(dim=1)
        total_sq += (x * x).sum(dim=1)
        count += x.shape[1]
    if count == 0:
        return (0.0,) * c, (1.0,) * c
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0.0)
    std = var.sqrt()
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def load_image_folder(
    root: PathLike | None,
    split: str = "train",
    *,
    image_size: SizeArg = None,
    dtype: str | torch.dtype | None = None,
    channels: int | None = None,
    limit_per_class: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Read a class-folder tree. ``dtype`` defaults to uint8 (exact pixels) without resizing and
    float32 with it; ``channels`` 1 or 3, default 1 only if every image is grayscale."""
    size = parse_image_size(image_size)
    out_dtype = parse_dtype(dtype) if dtype is not None else (
        torch.uint8 if size is None else torch.float32
    )
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be None, 1 or 3, got {channels!r}")
    limit_per_class = parse_limit(limit_per_class)
    base = _split_dir(resolve_root(root, "imagefolder", _LAYOUT), split)
    class_dirs = sorted(p for p in base.iterdir() if p.is_dir() and not is_hidden(p))
    if not class_dirs:
        raise DatasetError(f"imagefolder: no class folders in {base}; expected {_LAYOUT}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, d in enumerate(class_dirs):
        files = list_images(d, limit_per_class)
        if not files:
            raise DatasetError(f"imagefolder: class folder {d} holds no image files")
        paths += files
        labels += [label] * len(files)
    if channels is None:
        channels = 1 if all(is_gray_mode(peek_mode(p)) for p in paths) else 3
    images = load_images(
        paths, channels=channels, size=size, dtype=out_dtype, workers=workers,
        progress=progress, desc=f"imagefolder {base.name}",
    )
    mean, std = channel_stats(images)
    return ImageDataset(
        images=images,
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=[d.name for d in class_dirs],
        mean=mean,
        std=std,
        name="imagefolder",
    )
