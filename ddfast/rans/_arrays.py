"""Input conversion and validation shared by the rANS front ends (numpy and torch inputs).

Bad arguments raise ddfast.errors.ConfigError (a ValueError), or ArgumentTypeError (also a
TypeError) for a value of the wrong Python type, before any coding starts.
"""
from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from ddfast import _cpu
from ddfast.errors import ArgumentTypeError, ConfigError, DDFastError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MAX_SUPPORT = int(_cpu.RANS_MAX_SUPPORT)
MAX_ABS_SYMBOL = int(_cpu.RANS_MAX_ABS_SYMBOL)
_DTYPES = {np.int32: np.dtype(np.int32), np.int64: np.dtype(np.int64)}


def is_torch(x: Any) -> bool:
    """True for a torch.Tensor (without importing torch)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def is_cuda_tensor(x: Any) -> bool:
    """True for a torch.Tensor that lives on a CUDA device."""
    return is_torch(x) and x.device.type == "cuda"


def to_numpy(x: Any, name: str, dtype: Any = None) -> np.ndarray:
    """A numpy view/copy of an array-like or (CPU or CUDA) tensor; ConfigError naming `name` if x
    is not one (e.g. a ragged list)."""
    if is_torch(x):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{name} is not an array{'' if dtype is None else ' of ' + np.dtype(dtype).name}: "
                          f"{exc}") from None


def native(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) for a function of ddfast._cpu (or a lane decoder's step): its argument checks, plain
    ValueErrors from the C++ glue, raised as ConfigError; ddfast errors pass through."""
    try:
        return fn(*args)
    except ValueError as exc:
        if isinstance(exc, DDFastError):
            raise
        raise ConfigError(str(exc)) from None


def check_support(lo: Any, hi: Any) -> tuple[int, int]:
    """Validate the support [lo, hi]; returns it as Python ints."""
    try:
        lo, hi = operator.index(lo), operator.index(hi)
    except TypeError as exc:
        raise ArgumentTypeError(f"lo and hi must be integers, got {lo!r} and {hi!r}") from exc
    if lo > hi:
        raise ConfigError(f"empty support: lo={lo} > hi={hi}")
    if lo < -MAX_ABS_SYMBOL or hi > MAX_ABS_SYMBOL or hi - lo + 1 > MAX_SUPPORT:
        raise ConfigError(
            f"support [{lo}, {hi}] is too wide: at most {MAX_SUPPORT} symbols within +-{MAX_ABS_SYMBOL}")
    return lo, hi


def check_floor(floor: Any, lo: int, hi: int, backend: str = "cpp") -> int:
    """Validate the frequency floor of the Laplace model (1: constriction's leaky model)."""
    try:
        floor = operator.index(floor)
    except TypeError as exc:
        raise ArgumentTypeError(f"floor must be an integer, got {floor!r}") from exc
    if floor != 1 and backend != "cpp":
        raise ConfigError(f"the {backend} backend codes the leaky model (floor 1) only; use backend='cpp'")
    if not 1 <= floor or floor * (hi - lo + 1) > 2 ** 23:
        raise ConfigError(f"floor {floor} is invalid for a support of {hi - lo + 1} symbols "
                         "(floor * symbols may be at most 2^23)")
    return floor


def int_array(x: Any, name: str, dtype: type = np.int32) -> np.ndarray:
    """A contiguous one-dimensional integer array of `dtype`; ConfigError if x is not one."""
    if type(x) is np.ndarray and x.dtype is _DTYPES[dtype] and x.ndim == 1 and x.flags.c_contiguous:
        return x  # fast path (incremental decoding calls this for every step)
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return np.zeros(0, dtype=dtype)
        raise ConfigError(f"{name} must hold integers, got dtype {arr.dtype}")
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise ConfigError(f"{name} has values outside the {np.dtype(dtype).name} range")
    return np.ascontiguousarray(arr, dtype=dtype)


def lane_sizes_array(lane_sizes: Any, total: int) -> np.ndarray:
    """Per-lane symbol counts as int64 (None: one lane with every symbol), checked against total."""
    if lane_sizes is None:
        return np.array([total], dtype=np.int64)
    sizes = int_array(lane_sizes, "lane_sizes", np.int64)
    if sizes.size and sizes.min() < 0:
        raise ConfigError(f"lane_sizes has a negative entry at lane {int(np.argmax(sizes < 0))}")
    if sizes.size and sizes.max() > total:  # also keeps the int64 sum below from wrapping
        raise ConfigError(f"lane_sizes has an entry of {int(sizes.max())} at lane {int(np.argmax(sizes))}, "
                         f"but there are {total} symbols")
    if int(sizes.sum()) != total:
        raise ConfigError(f"lane_sizes adds up to {int(sizes.sum())}, but there are {total} symbols")
    return sizes


def same_length(**arrays: np.ndarray) -> int:
    """The common length of the named arrays; ConfigError naming them if they differ."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ConfigError(f"array lengths differ: {desc}")
    return next(iter(lengths.values()))


def check_symbols(symbols: np.ndarray, lo: int, hi: int) -> None:
    """ConfigError naming the first symbol outside [lo, hi]."""
    if symbols.size == 0:
        return
    bad = (symbols < lo) | (symbols > hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(f"symbol {int(symbols[i])} at index {i} is outside the support [{lo}, {hi}]")
