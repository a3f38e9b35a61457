"""Restricted unpickling for the CIFAR batch files.

The CIFAR-10/100 "python version" files are pickles. A pickle can run arbitrary code, so we
only let through the few globals a dict of numpy arrays, lists, ints and byte strings needs.
Anything else (a tampered or unrelated file) becomes a ``DatasetError`` instead of being run.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ddfast.errors import DatasetError

# (module, name) pairs a pickled numpy array may reference, across numpy 1.x and 2.x and
# pickle protocols 2..5; "_codecs.encode" is how protocol 2 stores bytes under Python 3.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}
_NUMPY2 = int(np.__version__.split(".")[0]) >= 2


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # numpy 1.x writes "numpy.core.*", numpy 2 writes "numpy._core.*" (and keeps the old
        # name only as a shim that warns); compare and import under the installed spelling.
        canonical = module
        for old in ("numpy.core", "numpy._core"):
            if module == old or module.startswith(old + "."):
                canonical = "numpy._core" + module[len(old):]
        if (canonical, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if canonical.startswith("numpy._core") and not _NUMPY2:
            canonical = "numpy.core" + canonical[len("numpy._core"):]
        return super().find_class(canonical, name)


def load_pickle(path: Path, what: str) -> Any:
    """Unpickle ``path`` (bytes keys kept as bytes, as the Python-2 era CIFAR files need).

    ``what`` names the expected content for the error message.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # pickle raises many types on damaged input
        raise DatasetError(
            f"{path} is not a readable {what} pickle ({type(exc).__name__}: {exc})"
        ) from exc
