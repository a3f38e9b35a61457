"""File helpers: atomic writes, and reading ``torch.save`` files with clear errors.

Writes go to a temporary file in the target's folder, then ``os.replace``: a reader never sees a
half-written file, and a failed write leaves the old file (if any) in place and no temporary
file behind. :func:`load_torch_file` turns every way a file can be missing or unreadable into
one ddfast error naming the file.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ddfast.errors import DatasetError, DDFastError

PathLike = str | os.PathLike


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary binary file next to ``path``, then move it into place.

    The file gets the usual permissions (0o666 less the umask), not the temporary file's 0o600.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), _file_mode())
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


def load_torch_file(path: PathLike, what: str, error: type[DDFastError] = DatasetError) -> Any:
    """``torch.load(path)`` onto the CPU with ``weights_only=True`` (no code from the file runs).

    A missing file raises ``error("<what> <path> does not exist")``; a damaged or foreign one
    (torch raises several exception types for those) ``error("cannot read <what> <path>: ...")``.
    """
    import torch

    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise error(f"{what} {path} does not exist") from err
    except Exception as err:
        lines = str(err).strip().splitlines()
        raise error(f"cannot read {what} {path}: {lines[0] if lines else type(err).__name__}") from err
