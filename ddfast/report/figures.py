"""matplotlib as an optional extra of ddfast, and figures written as PNG files of an exact pixel size.

Only the object-oriented API is used (``matplotlib.figure.Figure``, no ``pyplot``): no global
state, no display, any backend setting of the user left alone.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from ddfast.errors import DDFastError
from ddfast.fileio import atomic_write

PLOT_EXTRA = "pip install 'ddfast[plot]'"
DPI = 100


class MissingDependencyError(DDFastError, ImportError):
    """An optional package that a feature needs is not installed (the message says how to install it)."""


def require_matplotlib(what: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``what`` (e.g. ``"ddfast show"``) unless matplotlib imports."""
    try:
        importlib.import_module("matplotlib.figure")
    except ImportError:
        raise MissingDependencyError(f"{what} needs matplotlib: {PLOT_EXTRA}") from None


def new_figure(width: int, height: int) -> Any:
    """A ``matplotlib.figure.Figure`` that :func:`save_png` writes as exactly ``width`` × ``height`` pixels."""
    require_matplotlib("ddfast.report")
    from matplotlib.figure import Figure

    return Figure(figsize=(width / DPI, height / DPI), dpi=DPI)


def save_png(figure: Any, path: str | os.PathLike) -> None:
    """Write ``figure`` as a PNG file, atomically (``ddfast.fileio.atomic_write``)."""
    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=DPI))
