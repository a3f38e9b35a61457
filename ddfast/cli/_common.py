"""Helpers shared by the subcommands: checking paths and arguments up front, reading .ddf files, PNG grids."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ddfast.errors import BitstreamError, ConfigError
from ddfast.fileio import atomic_write, folder_write_error


def check_input_file(path: str, what: str) -> Path:
    """``path`` as a Path; ConfigError unless it is an existing file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{what} {path} does not exist")
    if not p.is_file():
        raise ConfigError(f"{what} {path} is not a file")
    return p


def check_output_path(path: str, what: str) -> Path:
    """``path`` as a Path; ConfigError unless a file can be written there (its folder exists and is
    writable, and the path itself is not a folder)."""
    p = Path(path)
    folder = p.parent
    if not folder.exists():
        raise ConfigError(f"{what} {path}: folder {folder} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"{what} {path}: {folder} is not a folder")
    if p.is_dir():
        raise ConfigError(f"{what} {path} is a folder")
    problem = folder_write_error(folder)
    if problem:
        raise ConfigError(f"{what} {path}: folder {folder} is not writable ({problem})")
    return p


def check_output_folder(path: str | os.PathLike, what: str) -> Path:
    """Create the folder ``path`` (and its parents) if needed; ConfigError unless it then is a
    writable folder (a file in the way, no permission, ...)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{what} {path}: cannot create the folder: {err.strerror or err}") from None
    problem = folder_write_error(p)
    if problem:
        raise ConfigError(f"{what} {path}: the folder is not writable ({problem})")
    return p


def check_distinct(paths: dict[str, str]) -> None:
    """ConfigError when two of the named paths (e.g. an input and an output) are the same file."""
    seen: dict[Path, str] = {}
    for what, path in paths.items():
        key = Path(path).resolve()
        if key in seen:
            raise ConfigError(f"{what} and {seen[key]} are the same file: {path}")
        seen[key] = what


def parse_classes(text: str) -> list[int]:
    """``"0,3"`` -> ``[0, 3]``: distinct non-negative class ids, in the given order."""
    try:
        classes = [int(item) for item in text.split(",")]
    except ValueError:
        raise ConfigError(f"--classes must be comma-separated class ids such as 0,3; got {text!r}") from None
    if any(c < 0 for c in classes):
        raise ConfigError(f"--classes must be non-negative class ids; got {text!r}")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"--classes lists a class twice: {text!r}")
    return classes


def parse_assignments(items: list[str]) -> dict:
    """``["spc=20", "dsa=false"]`` -> ``{"spc": 20, "dsa": False}`` (values as JSON, else strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes FIELD=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def read_ddf(path: Path) -> bytes:
    """The bytes of a .ddf file; an unreadable file raises ConfigError naming it."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err


def named(path: Path, err: BitstreamError) -> BitstreamError:
    """The same damage report, prefixed with the file it was found in."""
    return BitstreamError(f"{path}: {err}")


def bits_difference(real: float, estimated: float) -> str:
    """How far the real bits are from the estimate, e.g. ``+1.25%``."""
    return f"{100 * (real / estimated - 1):+.2f}%" if estimated > 0 else "n/a"


def save_image_grid(path: str | os.PathLike, rows: Sequence[torch.Tensor]) -> None:
    """Write a PNG atomically: one row per tensor [n, C, H, W] of [0, 1] images (clamped), white padding."""
    from PIL import Image

    width = max(r.shape[0] for r in rows)
    _, c, h, w = rows[0].shape
    canvas = torch.ones(len(rows), width, c, h, w)
    for i, r in enumerate(rows):
        canvas[i, :r.shape[0]] = r.detach().float().cpu().clamp(0, 1)
    grid = canvas.permute(0, 3, 1, 4, 2).reshape(len(rows) * h, width * w, c)
    pixels = (grid * 255).round().to(torch.uint8).numpy()
    picture = Image.fromarray(pixels[..., 0] if c == 1 else pixels)
    atomic_write(path, lambda handle: picture.save(handle, format="PNG"))
