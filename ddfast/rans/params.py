"""Float Laplace parameters <-> the coder's fixed-point integers (Q.8 mean and Q.8 log-scale)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ddfast import _cpu
from ddfast.errors import ConfigError
from ddfast.rans._arrays import to_numpy

FRAC_BITS = 8
LS_MIN = int(_cpu.LAPLACE_LS_MIN)  # ln(b) = -5
LS_MAX = int(_cpu.LAPLACE_LS_MAX)  # ln(b) = 6


def quantize_params(mu: Any, scale: Any) -> tuple[Any, Any]:
    """(mu, scale) -> (MU, LS) = (round(mu * 2^8), round(ln(scale) * 2^8)), as int32.

    Arrays give int32 arrays of the broadcast shape, scalars give ints. LS is clamped to the
    model's table range [LS_MIN, LS_MAX] (scale in [e^-5, e^6]), as the coder does anyway.
    ConfigError (a ValueError) for non-numeric input, a non-finite mean, a scale that is not
    finite and positive, or a mean whose MU would not fit int32 (round(mu * 2^8) outside [-2^31, 2^31 - 1], about |mu| >= 2^23).
    """
    scalar = np.ndim(mu) == 0 and np.ndim(scale) == 0
    m = to_numpy(mu, "mu", np.float64)
    b = to_numpy(scale, "scale", np.float64)
    try:
        m, b = np.broadcast_arrays(m, b)
    except ValueError:
        raise ConfigError(f"mu and scale must broadcast together, got shapes {m.shape} and {b.shape}") from None
    with np.errstate(invalid="ignore"):  # the check below names non-finite values
        q = np.rint(m * 2**FRAC_BITS)
        bad_mu = ~np.isfinite(m) | (q < -(2**31)) | (q > 2**31 - 1)
    if bad_mu.any():
        i = np.unravel_index(np.argmax(bad_mu), m.shape)
        raise ConfigError(f"mu must be finite with round(mu * 256) in the int32 range (about |mu| < 2^23); "
                         f"got {m[i]} at index {i}")
    bad_b = ~(np.isfinite(b) & (b > 0))
    if bad_b.any():
        i = np.unravel_index(np.argmax(bad_b), b.shape)
        raise ConfigError(f"scale must be finite and > 0; got {b[i]} at index {i}")
    mu_q = np.rint(m * 2**FRAC_BITS).astype(np.int32)
    ls_q = np.clip(np.rint(np.log(b) * 2**FRAC_BITS), LS_MIN, LS_MAX).astype(np.int32)
    if scalar:
        return int(mu_q), int(ls_q)
    return mu_q, ls_q


def dequantize_params(mu_q: Any, logscale_q: Any) -> tuple[np.ndarray, np.ndarray]:
    """The float (mu, scale) the integer model stands for: MU / 2^8 and exp(clamped LS / 2^8)."""
    m = np.asarray(mu_q, dtype=np.float64) / 2**FRAC_BITS
    ls = np.clip(np.asarray(logscale_q, dtype=np.int64), LS_MIN, LS_MAX)
    return m, np.exp(ls / 2**FRAC_BITS)
