"""Small path helpers shared by the readers: where data lives and clear errors when it doesn't."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from ddfast.errors import ArgumentTypeError, DatasetError

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable consulted when a reader that needs a folder gets ``root=None``.
DATA_ROOT_ENV = "DDFAST_DATA"


def resolve_root(root: PathLike | None, dataset: str, expected: str) -> Path:
    """Turn ``root`` (or ``$DDFAST_DATA`` when it is None) into an existing directory.

    ``expected`` describes the layout, so that the error says what should be there. ArgumentTypeError
    when ``root`` is not a path.
    """
    if root is None:
        env = os.environ.get(DATA_ROOT_ENV)
        if not env:
            raise DatasetError(
                f"{dataset}: no root given; pass root=<folder> (or set ${DATA_ROOT_ENV}) "
                f"pointing at {expected}"
            )
        root = env
    try:
        path = Path(root).expanduser()
    except TypeError:
        raise ArgumentTypeError(f"{dataset}: root must be a folder path, got {root!r}") from None
    if not path.exists():
        raise DatasetError(f"{dataset}: {path} does not exist; expected {expected}")
    if not path.is_dir():
        raise DatasetError(f"{dataset}: {path} is not a directory; expected {expected}")
    return path


def is_hidden(path: Path) -> bool:
    """Dot-files and dot-folders (``.DS_Store``, ``.ipynb_checkpoints``) are never data."""
    return path.name.startswith(".")
