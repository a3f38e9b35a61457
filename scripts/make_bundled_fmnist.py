#!/usr/bin/env python3
"""Make ``ddfast/data/bundled/fashion_mnist_small.npz``, the Fashion-MNIST subset shipped
with ddfast so that demos, tests and CI run without any download.

Source: the original Fashion-MNIST IDX files (Zalando Research, MIT licence), as installed by
Debian's ``dataset-fashion-mnist`` package in ``/usr/share/datasets/fashion-mnist``
(``apt-get install dataset-fashion-mnist``), or any folder ``ddfast.data.load("fashion_mnist")``
accepts (``--source``).

Selection (deterministic): ``numpy.random.default_rng(SEED)`` with ``SEED = 20240531``; for each
class c = 0..9 in turn, draw ``--train-per-class`` (default 50) indices without replacement
among the training images of class c, then, with the same generator, ``--test-per-class``
(default 20) among the test images of class c for each class. Within a class the chosen
indices are sorted ascending; the arrays are stored class by class (all of class 0, then
class 1, ...).

Arrays in the npz (no pickles): ``train_images`` / ``test_images`` uint8 ``[N, 28, 28]``,
``train_labels`` / ``test_labels`` uint8 ``[N]``, ``train_source_index`` /
``test_source_index`` int32 ``[N]`` (the image's index in the original split), ``classes``
(unicode). The zip members carry a fixed timestamp, so the same inputs give the same bytes.

Usage: ``python scripts/make_bundled_fmnist.py [--source DIR] [--out PATH]``
"""
from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from ddfast.data import load
from ddfast.data.fashion_mnist import FASHION_MNIST_CLASSES

SEED = 20240531
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ddfast/data/bundled/fashion_mnist_small.npz"


def select(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` random images of each class, class by class, sorted within."""
    chosen = []
    for c in range(len(FASHION_MNIST_CLASSES)):
        pool = np.flatnonzero(labels == c)
        if len(pool) < per_class:
            raise SystemExit(f"class {c} has only {len(pool)} images, need {per_class}")
        chosen.append(np.sort(rng.choice(pool, size=per_class, replace=False)))
    return np.concatenate(chosen)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``np.load``-compatible compressed npz with fixed member timestamps (reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=None, help="Fashion-MNIST folder (default: Debian's)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--train-per-class", type=int, default=50)
    ap.add_argument("--test-per-class", type=int, default=20)
    args = ap.parse_args(argv)

    train = load("fashion_mnist", root=args.source, split="train")
    test = load("fashion_mnist", root=args.source, split="test")
    rng = np.random.default_rng(SEED)
    tr_idx = select(train.labels.numpy(), args.train_per_class, rng)
    te_idx = select(test.labels.numpy(), args.test_per_class, rng)

    arrays = {
        "train_images": train.images[tr_idx, 0].numpy(),
        "train_labels": train.labels[tr_idx].numpy().astype(np.uint8),
        "train_source_index": tr_idx.astype(np.int32),
        "test_images": test.images[te_idx, 0].numpy(),
        "test_labels": test.labels[te_idx].numpy().astype(np.uint8),
        "test_source_index": te_idx.astype(np.int32),
        "classes": np.array(FASHION_MNIST_CLASSES),
    }
    write_npz(args.out, arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): "
          f"{len(tr_idx)} train + {len(te_idx)} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
