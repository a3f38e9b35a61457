"""ddfast.rans: rANS coding of integer symbols under per-symbol discretized Laplace models.

Every lane (stream) is a constriction ``AnsCoder`` stream (64-bit state, 32-bit words, 24-bit
probabilities). The probability model is integer-only: the mean and log-scale arrive as Q.8
integers (MU = round(mu * 2^8), LS = round(ln(b) * 2^8)) and the CDF comes from shipped integer
tables, so CPU and GPU code produce and read the same words.

Entry points: ``encode`` / ``decode`` (many lanes per call), ``IncrementalDecoder`` (one symbol
per lane per step, for autoregressive decoding), ``RansStreams`` (the coded lanes and their byte
format), ``quantize_params`` / ``dequantize_params``, and the model helpers
``laplace_cdf_table``, ``model_bits`` and ``ideal_bits``.
"""
from ddfast.rans.coder import BACKENDS, decode, encode
from ddfast.rans.incremental import IncrementalDecoder
from ddfast.rans.model import PRECISION, ideal_bits, laplace_cdf_table, model_bits
from ddfast.rans.params import LS_MAX, LS_MIN, dequantize_params, quantize_params
from ddfast.rans.streams import RansStreams
from ddfast.rans._arrays import MAX_ABS_SYMBOL, MAX_SUPPORT
from ddfast.rans._cuda import available as cuda_available

__all__ = [
    "BACKENDS",
    "IncrementalDecoder",
    "LS_MAX",
    "LS_MIN",
    "MAX_ABS_SYMBOL",
    "MAX_SUPPORT",
    "PRECISION",
    "RansStreams",
    "cuda_available",
    "decode",
    "dequantize_params",
    "encode",
    "ideal_bits",
    "laplace_cdf_table",
    "model_bits",
    "quantize_params",
]
