"""Decoding image files and resizing them the way the reference pipelines do.

References (MTT, DD-RUO) run ``ToTensor`` (float [0, 1]) -> ``Normalize`` -> ``Resize((128,
128))`` on tensors with torchvision 0.12, i.e. bilinear, ``align_corners=False`` and no
antialiasing, squashing the image to the target size. Resizing is linear with weights that
sum to one, so it commutes with the per-channel affine normalization: we resize the [0, 1]
tensor with ``F.interpolate`` and normalize later, which gives the same pixels.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ddfast.data.paths import is_hidden
from ddfast.errors import ConfigError, DatasetError

#: File extensions treated as images (compared case-insensitively).
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)

SizeArg = Union[None, int, Sequence[int]]

HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_GRAY_MODES = {"1", "L", "LA"} | HIGH_DEPTH_MODES


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; only the first ``limit`` if given."""
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not is_hidden(p) and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    return files if limit is None else files[:limit]


def parse_image_size(value: SizeArg, option: str = "image_size") -> tuple[int, int] | None:
    """``None`` | ``int`` | ``(h, w)`` -> ``None`` or ``(h, w)`` of positive ints."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        size = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        size = (int(value[0]), int(value[1]))
    else:
        raise ConfigError(f"{option} must be None, an int or an (h, w) pair, got {value!r}")
    if min(size) < 1:
        raise ConfigError(f"{option} must be positive, got {value!r}")
    return size


def parse_limit(value: int | None, option: str = "limit_per_class") -> int | None:
    """``None`` or a positive int (how many files per class to read)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{option} must be None or a positive int, got {value!r}")
    return int(value)


def parse_dtype(value: str | torch.dtype, option: str = "dtype") -> torch.dtype:
    """``"float32"``/``"uint8"`` (or the torch dtypes) -> torch dtype."""
    table = {"float32": torch.float32, "float": torch.float32, "uint8": torch.uint8}
    if isinstance(value, torch.dtype) and value in (torch.float32, torch.uint8):
        return value
    if isinstance(value, str) and value.lower() in table:
        return table[value.lower()]
    raise ConfigError(f"{option} must be 'float32' or 'uint8', got {value!r}")


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of float ``[C, H, W]`` or ``[N, C, H, W]`` to ``size`` (squash, no
    antialias, ``align_corners=False``) - torchvision 0.12's tensor ``Resize`` semantics."""
    batched = x.dim() == 4
    y = F.interpolate(
        x if batched else x.unsqueeze(0), size=size, mode="bilinear",
        align_corners=False, antialias=False,
    )
    return y if batched else y.squeeze(0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] pixels -> uint8 by rounding to the nearest of 0..255."""
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def peek_mode(path: Path) -> str:
    """PIL mode of an image file, reading only its header."""
    try:
        with Image.open(path) as img:
            return img.mode
    except Exception as exc:  # PIL raises several types for unreadable files
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def is_gray_mode(mode: str) -> bool:
    """Whether a PIL mode is single-channel (plus alpha), i.e. decodes naturally to 1 channel."""
    return mode in _GRAY_MODES


def _high_depth_to_uint8(img: Image.Image, path: Path) -> np.ndarray:
    """A 16-bit, 32-bit integer or float single-channel image as 8-bit [H, W]: 16-bit values
    (0..65535) scale by 255/65535, floats must lie in [0, 1]; anything else is refused."""
    values = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
            raise DatasetError(f"image {path}: float pixels must be finite and in [0, 1], found "
                               f"[{np.nanmin(values):g}, {np.nanmax(values):g}]")
        scaled = values * 255.0
    else:
        if values.min() < 0 or values.max() > 65535:
            raise DatasetError(f"image {path}: {img.mode} pixels must be 16-bit (0..65535), found "
                               f"[{values.min():g}, {values.max():g}]")
        scaled = values * (255.0 / 65535.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def decode_image(path: Path, channels: int = 3) -> torch.Tensor:
    """Decode a file with Pillow into a uint8 ``[C, H, W]`` tensor (RGB, or L if channels=1).

    16-bit and 32-bit integer grey images are scaled from 0..65535 and float ones from [0, 1] to
    0..255 (Pillow's own conversion would clip or truncate them); other values are refused."""
    try:
        with Image.open(path) as img:
            if img.mode in HIGH_DEPTH_MODES:
                gray = _high_depth_to_uint8(img, path)
                arr = np.repeat(gray[..., None], 3, axis=2) if channels == 3 else gray
            else:
                arr = np.asarray(img.convert("RGB" if channels == 3 else "L"))
    except DatasetError:
        raise
    except Exception as exc:  # UnidentifiedImageError, truncated data, decompression bomb...
        raise DatasetError(f"cannot decode image {path}: {exc}") from exc
    t = torch.from_numpy(arr.copy())
    return t.permute(2, 0, 1).contiguous() if t.dim() == 3 else t.unsqueeze(0)


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _run(
    fn: Callable[[int], Any], count: int, workers: int | None, progress: bool, desc: str
) -> Iterator[Any]:
    """Apply ``fn`` to ``range(count)`` in order, in a thread pool, with a progress bar."""
    workers = _default_workers() if workers is None else max(1, int(workers))
    bar = tqdm(total=count, desc=desc, unit="img", disable=not progress, leave=False)
    try:
        if workers == 1 or count < 2:
            for i in range(count):
                yield fn(i)
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(fn, range(count)):
                    yield result
                    bar.update(1)
    finally:
        bar.close()


def load_images(
    paths: Sequence[Path],
    *,
    channels: int = 3,
    size: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "decoding",
) -> torch.Tensor:
    """Decode ``paths`` into one ``[N, C, H, W]`` tensor of ``dtype``.

    With ``size`` each image is converted to float [0, 1] and resized with
    :func:`resize_bilinear` (then rounded if ``dtype`` is uint8). Without it all images must
    share one size, and uint8 output keeps the exact decoded pixels.
    Pillow releases the GIL while decoding, so a thread pool (``workers``) speeds this up.
    """
    n = len(paths)
    if size is not None:
        out = torch.empty((n, channels, size[0], size[1]), dtype=dtype)

        def work(i: int) -> None:
            pixels = decode_image(paths[i], channels).to(torch.float32).div_(255.0)
            x = resize_bilinear(pixels, size)
            out[i] = to_uint8(x) if dtype == torch.uint8 else x

        for _ in _run(work, n, workers, progress, desc):
            pass
        return out

    decoded: list[torch.Tensor] = list(
        _run(lambda i: decode_image(paths[i], channels), n, workers, progress, desc)
    )
    if not decoded:
        return torch.empty((0, channels, 1, 1), dtype=dtype)
    first = decoded[0].shape[1:]
    for p, img in zip(paths, decoded, strict=True):
        if img.shape[1:] != first:
            raise DatasetError(
                f"images differ in size: {paths[0]} is {first[1]}x{first[0]} but {p} is "
                f"{img.shape[2]}x{img.shape[1]} (width x height); pass image_size= to resize"
            )
    stacked = torch.stack(decoded)
    return stacked if dtype == torch.uint8 else stacked.to(torch.float32).div_(255.0)
