"""Shared data generators and an independent numpy model for the rANS tests."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

import ddfast.rans as rans

ROOT = Path(__file__).resolve().parents[1]


def laplace_data(n: int, lo: int, hi: int, seed: int, mu_sd: float = 3.0,
                 scale_range: tuple[float, float] = (0.11, 20.0)):
    """Symbols drawn as round(mu + b * Laplace) clipped to [lo, hi], with float and Q.8 parameters."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, mu_sd, n)
    b = np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]), n))
    sym = np.clip(np.round(mu + b * rng.laplace(size=n)), lo, hi).astype(np.int32)
    mu_q, ls_q = rans.quantize_params(mu, b)
    return sym, mu_q, ls_q, mu, b


def random_lane_sizes(total_lanes: int, max_size: int, seed: int) -> np.ndarray:
    """Lane sizes log-uniform in [1, max_size], with a few empty lanes."""
    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.uniform(0, np.log(max_size), total_lanes)).astype(np.int64)
    sizes[rng.random(total_lanes) < 0.1] = 0
    return sizes


def load_table_generator():
    """The scripts/gen_laplace_tables.py module."""
    path = ROOT / "scripts" / "gen_laplace_tables.py"
    spec = importlib.util.spec_from_file_location("gen_laplace_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_cdf(mu_q: np.ndarray, ls_q: np.ndarray, lo: int, hi: int, gen) -> np.ndarray:
    """Independent numpy int64 implementation of the integer CDF (cum(lo .. hi + 1) per row)."""
    from decimal import localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        inv_table = np.array(gen.inv_scale_table(), dtype=np.int64)
        exp2_table = np.array(gen.exp2_table(), dtype=np.int64)
    k = np.arange(lo, hi + 2, dtype=np.int64)[None, :]
    mu = mu_q.astype(np.int64)[:, None]
    inv = inv_table[np.clip(ls_q.astype(np.int64), gen.LS_MIN, gen.LS_MAX) - gen.LS_MIN][:, None]
    d = (2 * k - 1) * 128 - mu
    e = np.minimum(np.abs(d), 2**30) * inv
    whole = e >> 32
    g = np.where(whole >= 31, 0, exp2_table[(e >> 20) & 4095] >> np.minimum(whole + 1, 62))
    f = np.where(d < 0, g, 2**31 - g)
    fw = 2**24 - 1 - (hi - lo)
    cum = ((f * fw) >> 31) + (k - lo)
    cum = np.where(k <= lo, 0, np.where(k > hi, 2**24, cum))
    return cum.astype(np.uint32)
