"""The integer Laplace model's tables and code lengths, for tests, oracles and rate figures."""
from __future__ import annotations

from typing import Any

import numpy as np

from ddfast import _cpu
from ddfast.errors import ConfigError
from ddfast.rans._arrays import check_floor, check_support, check_symbols, int_array, native, same_length, to_numpy

PRECISION = 24


def laplace_cdf_table(mu_q: Any, logscale_q: Any, lo: int, hi: int, floor: int = 1) -> np.ndarray:
    """Integer CDF rows: cum(k) for k = lo .. hi + 1 per parameter pair, uint32 (n, hi - lo + 2).

    Row i starts at 0 and ends at 2^24; np.diff gives the 24-bit frequencies, all >= floor.
    ConfigError for bad arguments (e.g. a table too large to build).
    """
    lo, hi = check_support(lo, hi)
    floor = check_floor(floor, lo, hi)
    mu = int_array(mu_q, "mu_q")
    ls = int_array(logscale_q, "logscale_q")
    same_length(mu_q=mu, logscale_q=ls)
    return native(_cpu.laplace_cdf, mu, ls, lo, hi, floor)


def model_bits(symbols: Any, mu_q: Any, logscale_q: Any, lo: int, hi: int, floor: int = 1) -> float:
    """Exact code length -sum log2(p / 2^24) of the symbols under the integer model."""
    lo, hi = check_support(lo, hi)
    floor = check_floor(floor, lo, hi)
    sym = int_array(symbols, "symbols")
    mu = int_array(mu_q, "mu_q")
    ls = int_array(logscale_q, "logscale_q")
    same_length(symbols=sym, mu_q=mu, logscale_q=ls)
    check_symbols(sym, lo, hi)
    _, freq = native(_cpu.laplace_freqs, sym, mu, ls, lo, hi, floor)
    return float(PRECISION * len(sym) - np.log2(freq.astype(np.float64)).sum())


def _log_half_exp_diff(near: np.ndarray, far: np.ndarray) -> np.ndarray:
    """ln(1/2 e^-near - 1/2 e^-far) for 0 <= near <= far (far may be inf)."""
    return np.log(0.5) - near + np.log(-np.expm1(near - far))


def ideal_bits(symbols: Any, mu: Any, scale: Any, lo: int, hi: int) -> float:
    """-sum log2 P(symbol) under the float discretized Laplace(mu, scale) on [lo, hi].

    P(k) is the Laplace mass of [k - 1/2, k + 1/2], with the tails beyond lo - 1/2 and hi + 1/2
    folded into the edge symbols (the model the coder approximates), in float64.
    """
    lo, hi = check_support(lo, hi)
    symbols = int_array(symbols, "symbols", np.int64)
    check_symbols(symbols, lo, hi)
    k = symbols.astype(np.float64)
    m = to_numpy(mu, "mu", np.float64)
    b = to_numpy(scale, "scale", np.float64)
    if m.ndim > 1 or b.ndim > 1 or m.size not in (1, k.size) or b.size not in (1, k.size):
        raise ConfigError(f"mu and scale must be scalars or hold one value per symbol ({k.size}); "
                         f"got {m.size} and {b.size}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(b)) and np.all(b > 0)):
        raise ConfigError("mu must be finite and scale finite and > 0")
    left = np.where(k <= lo, -np.inf, k - 0.5)
    right = np.where(k >= hi, np.inf, k + 0.5)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = (left - m) / b   # standardized boundaries, a < c
        c = (right - m) / b
        below = _log_half_exp_diff(-c, -a)   # interval left of the mean
        above = _log_half_exp_diff(a, c)     # interval right of the mean
        straddle = np.log1p(-0.5 * np.exp(a) - 0.5 * np.exp(-c))
        logp = np.where(c <= 0, below, np.where(a >= 0, above, straddle))
    return float(-logp.sum() / np.log(2.0))
