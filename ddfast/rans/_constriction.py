"""Reference backend: constriction's AnsCoder with its float QuantizedLaplace model.

Parameters are the float values the integers stand for (dequantize_params), so the coded model is
the float counterpart of ours; the streams are valid AnsCoder streams but not bit-identical to
the integer model's (constriction evaluates the CDF with the platform's exp).
"""
from __future__ import annotations

import numpy as np

from ddfast.rans.params import dequantize_params
from ddfast.rans.streams import RansStreams


def _model(lo: int, hi: int):
    import constriction

    return constriction.stream.model.QuantizedLaplace(lo, hi)


def encode(symbols: np.ndarray, mu_q: np.ndarray, ls_q: np.ndarray, lo: int, hi: int,
           lane_sizes: np.ndarray) -> RansStreams:
    """Encode each lane with a fresh AnsCoder (inputs already validated)."""
    import constriction

    model = _model(lo, hi)
    mu, scale = dequantize_params(mu_q, ls_q)
    bounds = np.concatenate(([0], np.cumsum(lane_sizes)))
    lanes = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        coder = constriction.stream.stack.AnsCoder()
        if b > a:
            coder.encode_reverse(symbols[a:b], model, mu[a:b], scale[a:b])
        lanes.append(coder.get_compressed())
    return RansStreams.from_lanes(lanes)


def start_lane(words: np.ndarray):
    """An AnsCoder over one lane's words (ValueError from constriction if the stream is invalid)."""
    import constriction

    return constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))


def decode_lane(coder, mu_q: np.ndarray, ls_q: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Decode len(mu_q) symbols from an AnsCoder with the float model."""
    if len(mu_q) == 0:
        return np.zeros(0, dtype=np.int32)
    mu, scale = dequantize_params(mu_q, ls_q)
    return coder.decode(_model(lo, hi), mu, scale).astype(np.int32)
