"""Exact coding of quantized network weights: per tensor, the cheapest of three codes.

Each tensor of integers q (|q| <= 65535) is coded with one *method* (a 4-bit code):

- 0 .. 12: exp-Golomb of order k (the count DD-RUO and Cool-chic use for weights:
  2 floor(log2(|q| / 2^k + 1)) + k + 1 bits, plus a sign bit when q != 0), k chosen per tensor;
- 13: rANS under a zero-mean discretized Laplace (the integer model of ``ddfast.rans``) with
  ln b = LS / 2^8 from the tensor's mean |q|, on the support [min q, max q];
- 14: every value is zero (nothing stored).

A slice's tensors are written as

    methods         one nibble per tensor (low nibble first), padded to a whole byte
    rANS params     per rANS tensor: LS (zigzag varint), lo (zigzag varint), hi - lo (varint),
                    word count (varint)
    exp-Golomb      the codes of every exp-Golomb tensor, in order, as one bit string padded
                    to a whole byte (bits most significant first)
    rANS words      per rANS tensor its 32-bit words (little-endian)

and :func:`coded_bits` counts exactly what :func:`write_tensors` writes for a tensor (its
nibble, parameters and payload); only the byte padding of the nibble table and of the shared
bit string (under two bytes per slice) is not counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ddfast import _cpu
from ddfast import rans
from ddfast.coding.binary import Reader, Writer, varint_size, zigzag
from ddfast.errors import BitstreamError

MAX_ABS_INTEGER = 65535
EG_MAX_ORDER = int(_cpu.EG_MAX_ORDER)
METHOD_RANS = 13
METHOD_ZERO = 14
# rANS can only win on tensors this large: it pays about 40 bits of flush and parameters.
RANS_MIN_VALUES = 64


@dataclass(frozen=True)
class TensorCode:
    """How one tensor is coded: its method, exact bits, and the rANS parameters/words if any."""

    method: int
    bits: int
    ls: int = 0
    words: np.ndarray | None = None


def exp_golomb_bits(values: np.ndarray) -> np.ndarray:
    """Total exp-Golomb bits of ``values`` for every order k = 0 .. 12 (int64 [13])."""
    v = np.abs(np.asarray(values, dtype=np.int64)).reshape(1, -1)
    k = np.arange(EG_MAX_ORDER + 1, dtype=np.int64).reshape(-1, 1)
    # floor(log2(v + 2^k)) exactly, from the float64 exponent (v + 2^k < 2^53).
    n = np.frexp((v + (1 << k)).astype(np.float64))[1].astype(np.int64) - 1 - k
    return (2 * n + k + 1 + (v != 0)).sum(axis=1)


def _laplace_log_scale(values: np.ndarray) -> int:
    """LS = round(ln(mean |q|) * 2^8), clamped to the model's table."""
    mean = max(float(np.abs(values).mean()), float(np.exp(rans.LS_MIN / 256)))
    return int(np.clip(round(np.log(mean) * 256), rans.LS_MIN, rans.LS_MAX))


def _rans_code(values: np.ndarray) -> TensorCode:
    lo, hi = int(values.min()), int(values.max())
    ls = _laplace_log_scale(values)
    n = len(values)
    streams = rans.encode(values.astype(np.int32), np.zeros(n, np.int32), np.full(n, ls, np.int32), lo, hi)
    words = streams.words
    params = varint_size(zigzag(ls)) + varint_size(zigzag(lo)) + varint_size(hi - lo) + varint_size(len(words))
    return TensorCode(METHOD_RANS, 4 + 8 * params + 32 * len(words), ls=ls, words=words)


def choose_code(values: np.ndarray) -> TensorCode:
    """The cheapest code of one tensor's integers (flattened)."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if not values.any():
        return TensorCode(METHOD_ZERO, 4)
    eg = exp_golomb_bits(values)
    k = int(np.argmin(eg))
    best = TensorCode(k, 4 + int(eg[k]))
    if len(values) >= RANS_MIN_VALUES:
        coded = _rans_code(values)
        if coded.bits < best.bits:
            best = coded
    return best


def coded_bits(values: np.ndarray) -> int:
    """Exact bits :func:`write_tensors` spends on this tensor (nibble + parameters + payload)."""
    return choose_code(values).bits


def write_tensors(out: Writer, tensors: Sequence[np.ndarray]) -> list[TensorCode]:
    """Write the integer tensors of one slice (see the module doc); returns each tensor's code."""
    codes = [choose_code(t) for t in tensors]
    nibbles = [c.method for c in codes]
    if len(nibbles) % 2:
        nibbles.append(0)
    out.raw(bytes(lo | (hi << 4) for lo, hi in zip(nibbles[0::2], nibbles[1::2])))
    for t, code in zip(tensors, codes):
        if code.method == METHOD_RANS:
            flat = np.asarray(t).reshape(-1)
            out.svarint(code.ls)
            out.svarint(int(flat.min()))
            out.uvarint(int(flat.max() - flat.min()))
            out.uvarint(len(code.words))
    eg = [(np.asarray(t, dtype=np.int64).reshape(-1), c.method) for t, c in zip(tensors, codes) if c.method <= EG_MAX_ORDER]
    if eg:
        values = np.concatenate([v for v, _ in eg])
        orders = np.concatenate([np.full(len(v), k, dtype=np.int32) for v, k in eg])
        out.raw(_cpu.eg_encode(values, orders))
    for code in codes:
        if code.method == METHOD_RANS:
            out.words(code.words)
    return codes


def read_tensors(reader: Reader, sizes: Sequence[int], what: str) -> list[np.ndarray]:
    """Read tensors of the given element counts written by :func:`write_tensors` (int64, flat)."""
    count = len(sizes)
    table = reader.take((count + 1) // 2, f"{what}: method table")
    methods = [(table[i // 2] >> (4 * (i % 2))) & 0xF for i in range(count)]
    for i, method in enumerate(methods):
        if method > METHOD_ZERO:
            raise reader.fail(f"{what}: tensor {i} has unknown coding method {method}")
    params = {}
    for i, method in enumerate(methods):
        if method == METHOD_RANS:
            ls = reader.svarint(f"{what}: tensor {i} log-scale", limit=1 << 15)
            lo = reader.svarint(f"{what}: tensor {i} lowest value", limit=MAX_ABS_INTEGER)
            span = reader.uvarint(f"{what}: tensor {i} value span", maximum=2 * MAX_ABS_INTEGER)
            if lo + span > MAX_ABS_INTEGER:
                raise reader.fail(f"{what}: tensor {i} values reach {lo + span}, beyond {MAX_ABS_INTEGER}")
            n_words = reader.uvarint(f"{what}: tensor {i} word count", maximum=reader.remaining // 4)
            params[i] = (ls, lo, lo + span, n_words)
    out: list[np.ndarray | None] = [None] * count
    eg_index = [i for i, m in enumerate(methods) if m <= EG_MAX_ORDER]
    if eg_index:
        orders = np.concatenate([np.full(sizes[i], methods[i], dtype=np.int32) for i in eg_index])
        start = reader.pos
        data = bytes(reader.data[start:reader.end])
        try:
            values, end_bit = _cpu.eg_decode(data, 0, orders, MAX_ABS_INTEGER)
        except ValueError as err:
            raise reader.fail(f"{what}: {err}", start) from None
        reader.take((end_bit + 7) // 8, f"{what}: exp-Golomb codes")
        bounds = np.cumsum([0] + [sizes[i] for i in eg_index])
        for j, i in enumerate(eg_index):
            out[i] = values[bounds[j]:bounds[j + 1]]
    for i, method in enumerate(methods):
        if method == METHOD_ZERO:
            out[i] = np.zeros(sizes[i], dtype=np.int64)
        elif method == METHOD_RANS:
            ls, lo, hi, n_words = params[i]
            words = reader.words(n_words, f"{what}: tensor {i} rANS words")
            n = sizes[i]
            try:
                decoded = rans.decode(words, np.zeros(n, np.int32), np.full(n, ls, np.int32), lo, hi)
            except BitstreamError as err:
                raise reader.fail(f"{what}: tensor {i}: {err}") from None
            out[i] = decoded.astype(np.int64)
    return out
