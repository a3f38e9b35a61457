"""File helpers: atomic writes, and reading ``torch.save`` files with clear errors.

Writes go to a temporary file in the target's folder (``.<name>.<pid>.<random>.tmp``), then
``os.replace`` and an fsync of the folder: a reader never sees a half-written file, and a failed
write leaves the old file (if any) in place and no temporary file behind. A process killed in
the middle of a write (SIGKILL) cannot clean up; its temporary file is removed by the next write
to the same name once that process is gone. :func:`load_torch_file` turns every way a file can
be missing or unreadable into one ddfast error naming the file.
"""
from __future__ import annotations

import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ddfast.errors import DatasetError, DDFastError

PathLike = str | os.PathLike


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 less the process umask
    (read from /proc where it can be, since setting the umask to read it races with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, under another user
        return True
    return True


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    """Delete ``.<name>.<pid>.*.tmp`` files of writers that no longer run (killed mid-write)."""
    prefix = f".{name}."
    for leftover in folder.glob(f"{glob.escape(prefix)}*.tmp"):
        pid_text = leftover.name[len(prefix):].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _process_alive(int(pid_text)):
            try:
                leftover.unlink()
            except OSError:
                pass  # another writer removed it first, or it is not ours to remove


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened or synced."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def folder_write_error(folder: PathLike) -> str | None:
    """Why no file can be created in ``folder``, or None when one can. A real probe (a temporary
    file created and removed): os.access says yes to root, and knows nothing of /proc and the like."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary binary file next to ``path``, then move it into place.

    The file gets the usual permissions (0o666 less the umask), not the temporary file's 0o600.
    Missing parent folders are created.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder, target.name)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
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
    _fsync_folder(folder)
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
