"""Reading the ``torch.save`` files of distillation (synthetic sets, ZCA, expert buffers).

Writing goes through :mod:`ddfast.fileio` (atomic); reading goes through :func:`load_torch_file`,
which turns every way a file can be missing or unreadable into one ddfast error naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ddfast.errors import DatasetError, DDFastError


def load_torch_file(path: str | os.PathLike, what: str, error: type[DDFastError] = DatasetError) -> Any:
    """``torch.load(path)`` onto the CPU with ``weights_only=True``.

    A missing file raises ``error("<what> <path> does not exist")``; a damaged or foreign one
    (torch raises several exception types for those) ``error("cannot read <what> <path>: ...")``.
    """
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise error(f"{what} {path} does not exist") from err
    except Exception as err:
        raise error(f"cannot read {what} {path}: {err}") from err
