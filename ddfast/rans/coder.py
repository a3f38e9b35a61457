"""Batch rANS encode/decode of many lanes, with the "cpp", "cuda" and "constriction" backends."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ddfast import _cpu
from ddfast.errors import BackendError, BitstreamError, ConfigError
from ddfast.rans import _constriction, _cuda, _status
from ddfast.rans._arrays import (
    check_floor,
    check_support,
    check_symbols,
    int_array,
    is_cuda_tensor,
    is_torch,
    lane_sizes_array,
    native,
    same_length,
    to_numpy,
)
from ddfast.rans.streams import RansStreams

Backend = Literal["auto", "cpp", "cuda", "constriction"]
BACKENDS = ("cpp", "cuda", "constriction")


def select_backend(backend: str, *inputs: Any) -> str:
    """Resolve "auto" (cuda for CUDA tensors when the CUDA backend works, else cpp) or check a name:
    ConfigError for an unknown one, BackendError (a RuntimeError) for "cuda" where it cannot run."""
    if backend == "auto":
        return "cuda" if any(is_cuda_tensor(x) for x in inputs) and _cuda.available() else "cpp"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown rANS backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    if backend == "cuda":
        reason = _cuda.unavailable_reason()
        if reason:
            raise BackendError(f"the cuda rANS backend is unavailable: {reason}")
    return backend


def encode(symbols: Any, mu_q: Any, logscale_q: Any, lo: int, hi: int, lane_sizes: Any = None, *,
           backend: Backend = "auto", floor: int = 1) -> RansStreams:
    """Encode int symbols in [lo, hi], each under Laplace(MU / 2^8, exp(LS / 2^8)).

    symbols, mu_q, logscale_q: one-dimensional integer arrays or tensors of equal length, lane
    after lane, each lane's symbols in decode order. lane_sizes: symbols per lane (None: one lane).
    floor: the smallest 24-bit frequency of a symbol (1: constriction's leaky model; the cpp
    backend only for others). Returns the lanes' streams. ConfigError (a ValueError; before any
    coding) for bad arguments, BackendError (a RuntimeError) for a backend that cannot run here.
    """
    lo, hi = check_support(lo, hi)
    which = select_backend(backend, symbols, mu_q, logscale_q)
    floor = check_floor(floor, lo, hi, which)
    if which == "cuda":
        return _cuda.encode(symbols, mu_q, logscale_q, lo, hi, lane_sizes)
    sym = int_array(symbols, "symbols")
    mu = int_array(mu_q, "mu_q")
    ls = int_array(logscale_q, "logscale_q")
    n = same_length(symbols=sym, mu_q=mu, logscale_q=ls)
    sizes = lane_sizes_array(lane_sizes, n)
    if which == "constriction":
        check_symbols(sym, lo, hi)
        return _constriction.encode(sym, mu, ls, lo, hi, sizes)
    words, lane_words = native(_cpu.rans_encode, sym, mu, ls, sizes, lo, hi, floor)  # checks the symbols first
    return RansStreams(words, lane_words)


def as_streams(streams: Any) -> RansStreams:
    """RansStreams as is; a single uint32 word array becomes a one-lane RansStreams."""
    if isinstance(streams, RansStreams):
        return streams
    words = to_numpy(streams, "streams")
    if words.ndim != 1 or words.dtype != np.uint32:
        raise ConfigError("streams must be a RansStreams or a one-dimensional uint32 word array")
    return RansStreams.from_lanes([words])


def decode(streams: Any, mu_q: Any, logscale_q: Any, lo: int, hi: int, lane_sizes: Any = None, *,
           backend: Backend = "auto", strict: bool = True, floor: int = 1) -> Any:
    """Decode lane_sizes[l] symbols from each lane with the parameters of encode.

    Returns int32 symbols (a tensor on mu_q's device when mu_q is a tensor, else a numpy array).
    floor: as in encode. ConfigError (before any decoding) for bad arguments, BackendError as in
    encode.

    strict=True (the default) raises BitstreamError for every lane that is not the exact
    encoding of *some* lane_sizes[l] symbols under these parameters: words left over after the
    last symbol, a final state other than the initial 0, a refill from a state the encoder never
    leaves behind (cpp and cuda backends), or a last word of 0. So a lane that decodes without
    error re-encodes to exactly its words. What strict cannot see: a damaged stream that happens
    to be the exact encoding of other symbols -- e.g. words cut from the front of a lane (read
    last) decode as the same symbols up to the cut and then symbols of a decaying state. rANS
    words carry no redundancy; the .ddf file's CRC-32 per section catches such damage.
    Without strict only a zero last word raises, and decoding past a lane's end is deterministic
    (as in constriction).
    """
    streams = as_streams(streams)
    lo, hi = check_support(lo, hi)
    which = select_backend(backend, mu_q, logscale_q)
    floor = check_floor(floor, lo, hi, which)
    if which == "cuda":
        out, status = _cuda.decode(streams, mu_q, logscale_q, lo, hi, lane_sizes)
        _status.raise_for_status(status, strict)
        return out
    mu = int_array(mu_q, "mu_q")
    ls = int_array(logscale_q, "logscale_q")
    sizes = lane_sizes_array(lane_sizes, same_length(mu_q=mu, logscale_q=ls))
    if len(sizes) != streams.num_lanes:
        raise ConfigError(f"lane_sizes has {len(sizes)} lanes, the streams have {streams.num_lanes}")
    if which == "constriction":
        out = _decode_constriction(streams, mu, ls, lo, hi, sizes, strict)
    else:
        out, status = native(_cpu.rans_decode, streams.words, streams.lane_words, mu, ls, sizes, lo, hi, floor)
        _status.raise_for_status(status, strict)
    if is_torch(mu_q):
        import torch

        return torch.from_numpy(out).to(mu_q.device)
    return out


def _decode_constriction(streams: RansStreams, mu: np.ndarray, ls: np.ndarray, lo: int, hi: int,
                         sizes: np.ndarray, strict: bool) -> np.ndarray:
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    parts = []
    for lane in range(streams.num_lanes):
        a, b = bounds[lane], bounds[lane + 1]
        try:
            coder = _constriction.start_lane(streams.lane(lane))
        except ValueError as exc:
            raise BitstreamError(f"rANS lane {lane}: {exc}") from exc
        parts.append(_constriction.decode_lane(coder, mu[a:b], ls[a:b], lo, hi))
        if strict and not coder.is_empty():
            raise BitstreamError(f"rANS lane {lane}: the stream does not end after its last symbol")
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
