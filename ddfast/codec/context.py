"""Causal context offsets of the ARM entropy model.

A latent's context is C neighbours of the same grid that precede it in raster order. For
C in {8, 16, 24, 32} the offsets are exactly the reference tables (DD-RUO / Cool-chic v3.2): flat
indices into a 9x9 window centred on the latent, k = (dy + 4) * 9 + (dx + 4), in ascending order
(which is raster order). C = 64 is ddfast's own: the 9x9 tables top out at 40 causal positions, so
it draws from a 13x13 window (zero padding 6): (-6, -1), (-6, 0), (-6, +1), every position with
-5 <= dy <= -1 and |dx| <= 5 (55), and the six left neighbours (0, -6..-1) -- in raster order.
Its largest dx / (-dy) is 5, so a wavefront decoder needs a row shift of 6 (5 for C = 32).
"""
from __future__ import annotations

from functools import lru_cache

from ddfast.errors import ConfigError

_REFERENCE_WINDOW = 9
_REFERENCE_INDICES = {
    8: (13, 22, 30, 31, 32, 37, 38, 39),
    16: (13, 14, 20, 21, 22, 23, 24, 28, 29, 30, 31, 32, 33, 37, 38, 39),
    24: (4, 11, 12, 13, 14, 15, 19, 20, 21, 22, 23, 24, 25, 28, 29, 30, 31, 32, 33, 34,
         36, 37, 38, 39),
    32: (2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
         30, 31, 32, 33, 34, 35, 36, 37, 38, 39),
}

SUPPORTED_CONTEXT_SIZES = (8, 16, 24, 32, 64)


def _ddfast_c64_offsets() -> tuple[tuple[int, int], ...]:
    offsets = [(-6, dx) for dx in (-1, 0, 1)]
    offsets += [(dy, dx) for dy in range(-5, 0) for dx in range(-5, 6)]
    offsets += [(0, dx) for dx in range(-6, 0)]
    return tuple(offsets)


@lru_cache(maxsize=None)
def context_offsets(context_size: int) -> tuple[tuple[int, int], ...]:
    """The (dy, dx) offsets of a context of ``context_size`` neighbours, in MLP input order."""
    if context_size in _REFERENCE_INDICES:
        half = _REFERENCE_WINDOW // 2
        return tuple((k // _REFERENCE_WINDOW - half, k % _REFERENCE_WINDOW - half)
                     for k in _REFERENCE_INDICES[context_size])
    if context_size == 64:
        return _ddfast_c64_offsets()
    raise ConfigError(
        f"ARM context size {context_size} is not supported; choose one of {SUPPORTED_CONTEXT_SIZES}")


def context_padding(context_size: int) -> int:
    """Zero padding a grid needs so that every context offset stays inside the padded grid."""
    return max(max(abs(dy), abs(dx)) for dy, dx in context_offsets(context_size))


def wavefront_shift(context_size: int) -> int:
    """Smallest row shift s such that position (y, x) only depends on earlier wavefront steps.

    A latent at (y, x) is decoded at step x + s*y; an offset (dy, dx) with dy < 0 is then legal iff
    dx < -dy * s, so s = 1 + max(dx // -dy).
    """
    return 1 + max(dx // -dy for dy, dx in context_offsets(context_size) if dy < 0)
