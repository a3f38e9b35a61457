"""The soft-label section of a .ddf file: every image's soft label on the simplex lattice.

The section is present only when bit 2 of the header's flags is set. It follows the last slice
section and is framed like one (varint length, payload, CRC32 of the payload). Payload:

    resolution   varint   M = 1/eps, in [1, 2^32] (``ddfast.labels``: a label is K counts
                          summing to M, y_k = count_k / M; K is the header's number of classes)
    order        u8       exp-Golomb order k of the counts, 0 .. 12
    codes        one bit string, most significant bit first, zero-padded to a whole byte:
                 for every image, in the file's class-major order, d = (a - c) mod K with
                 order 0, where c is the image's class and a the class of its largest count
                 (the first one on ties); then for every image its K - 1 other counts, in
                 class order, with order k

The largest count is not stored: it is M minus the others (it is 2^24-ish at fp32 resolution,
and usually the image's own class, so d is usually 0 and costs one bit). Codes are the signed
exp-Golomb code of the weights (``ddfast.coding.weights``, ``csrc/exp_golomb.h``): value v of
order k takes 2 floor(log2(v / 2^k + 1)) + k + 1 bits, plus a sign bit (always 0 here) when
v != 0. The order is the cheapest for the section's counts. Exp-Golomb rather than ddfast's rANS:
the rANS models are Laplace laws over at most 2^16 symbols, while counts run up to M.

A reader refuses a section whose counts do not form valid labels (a negative count, a stored
count above M, others summing above M, an offset d >= K), whose implied count is not its row's
first largest (so every set of labels has exactly one encoding), or with bits or bytes left over.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ddfast import _cpu
from ddfast.coding.binary import Reader, Writer
from ddfast.coding.container import Container
from ddfast.coding.weights import EG_MAX_ORDER, exp_golomb_bits
from ddfast.errors import ConfigError
from ddfast.labels import MAX_RESOLUTION, SoftLabels, quantize_soft_labels


def check_soft_labels(value: "SoftLabels | tuple[torch.Tensor, float] | None", rows: int,
                      num_classes: int) -> SoftLabels | None:
    """A ``SoftLabels`` of ``rows`` x ``num_classes`` from one or a ``(probabilities, eps)`` pair
    (quantized here), or None; ConfigError otherwise."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = quantize_soft_labels(*value)
    if not isinstance(value, SoftLabels):
        raise ConfigError("soft_labels must be a ddfast.labels.SoftLabels or a (probabilities [N, K], eps) pair, "
                          f"got {type(value).__name__}")
    if tuple(value.counts.shape) != (rows, num_classes):
        raise ConfigError(f"soft labels need one row per image and one column per class ({rows} x {num_classes}), "
                          f"got {tuple(value.counts.shape)}")
    return value


def _layout(counts: np.ndarray, largest: np.ndarray) -> np.ndarray:
    """bool [N, K]: True everywhere but at each row's largest count."""
    mask = np.ones(counts.shape, dtype=bool)
    mask[np.arange(counts.shape[0]), largest] = False
    return mask


def write_label_section(labels: SoftLabels, row_classes: np.ndarray) -> bytes:
    """The payload of the soft-label section (module doc); ``row_classes`` is each row's class."""
    counts = labels.counts.cpu().numpy()
    n, k_classes = counts.shape
    largest = counts.argmax(1)
    offsets = (largest - row_classes) % k_classes
    others = counts[_layout(counts, largest)]
    order = int(np.argmin(exp_golomb_bits(others))) if others.size else 0
    out = Writer()
    out.uvarint(labels.resolution)
    out.u8(order)
    values = np.concatenate([offsets, others]).astype(np.int64)
    orders = np.concatenate([np.zeros(n, np.int32), np.full(others.size, order, np.int32)])
    out.raw(_cpu.eg_encode(values, orders))
    return bytes(out.buffer)


def read_label_section(r: Reader, row_classes: np.ndarray, num_classes: int) -> SoftLabels:
    """The soft labels of a section written by :func:`write_label_section`; BitstreamError on damage."""
    n = len(row_classes)
    resolution = r.uvarint("soft-label resolution", maximum=MAX_RESOLUTION)
    if resolution < 1:
        raise r.fail("the soft-label resolution must be positive")
    order = r.u8("soft-label exp-Golomb order")
    if order > EG_MAX_ORDER:
        raise r.fail(f"soft-label exp-Golomb order {order} is above {EG_MAX_ORDER}")
    total = n * num_classes
    if total > 8 * r.remaining:  # every code takes at least one bit
        raise r.fail(f"{total} soft-label codes cannot fit in {r.remaining} bytes (truncated file?)")
    start = r.pos
    orders = np.concatenate([np.zeros(n, np.int32), np.full(total - n, order, np.int32)])
    try:
        values, end_bit = _cpu.eg_decode(bytes(r.data[start:r.end]), 0, orders, max(resolution, num_classes))
    except ValueError as err:
        raise r.fail(f"soft-label codes: {err}", start) from None
    used = (end_bit + 7) // 8
    if used != r.remaining or (end_bit % 8 and r.data[start + used - 1] & (0xFF >> (end_bit % 8))):
        raise r.fail(f"soft-label codes end at bit {end_bit} of {8 * r.remaining}: bytes or bits left over")
    if (values < 0).any():
        raise r.fail(f"soft-label codes hold a negative value at index {int(np.flatnonzero(values < 0)[0])}")
    offsets, others = values[:n], values[n:].reshape(n, num_classes - 1)
    if (offsets >= num_classes).any():
        row = int(np.flatnonzero(offsets >= num_classes)[0])
        raise r.fail(f"soft label {row}: largest-count offset {int(offsets[row])} is not below {num_classes} classes")
    implied = resolution - others.sum(1)
    largest = (row_classes + offsets) % num_classes
    counts = np.empty((n, num_classes), dtype=np.int64)
    counts[_layout(counts, largest)] = others.reshape(-1)
    counts[np.arange(n), largest] = implied
    bad = np.flatnonzero((implied < 0) | (counts.argmax(1) != largest))
    if len(bad):
        raise r.fail(f"soft label {int(bad[0])}: its counts are not a label of resolution {resolution} stored with "
                     "its first largest count implied")
    r.pos = r.end
    return SoftLabels(torch.from_numpy(counts), resolution)


def read_soft_labels(container: Container, classes: Sequence[int] | None = None) -> SoftLabels | None:
    """A parsed file's soft labels (the rows of ``classes``, in that order; all by default), or None."""
    h = container.header
    if not h.soft_labels:
        return None
    labels = read_label_section(container.label_section(), row_classes(h.images_per_class), h.num_classes)
    return labels if classes is None else labels.of_classes(h.images_per_class, classes)


def row_classes(images_per_class: tuple[int, ...]) -> np.ndarray:
    """int64 [N]: the class of every image, class-major."""
    return np.repeat(np.arange(len(images_per_class), dtype=np.int64), images_per_class)
