"""IncrementalDecoder: lane states for autoregressive decoding, one symbol per lane per step."""
from __future__ import annotations

from typing import Any

import numpy as np

from ddfast import _cpu
from ddfast.errors import BitstreamError, ConfigError
from ddfast.rans import _constriction, _cuda, _status
from ddfast.rans._arrays import check_floor, check_support, int_array, is_torch, native
from ddfast.rans.coder import Backend, as_streams, select_backend
from ddfast.rans.streams import RansStreams


class _ConstrictionLanes:
    """Reference lane states: one constriction AnsCoder per lane (per-symbol Python calls)."""

    def __init__(self, streams: RansStreams, lo: int, hi: int) -> None:
        self.num_lanes = streams.num_lanes
        self._lo, self._hi = lo, hi
        self._coders = []
        for lane in range(streams.num_lanes):
            try:
                self._coders.append(_constriction.start_lane(streams.lane(lane)))
            except ValueError as exc:
                raise BitstreamError(f"rANS lane {lane}: {exc}") from exc

    def step(self, ids: np.ndarray, mu: np.ndarray, ls: np.ndarray) -> np.ndarray:
        if not len(ids) == len(mu) == len(ls):  # the cpp lanes' check and message
            raise ConfigError("lane_ids, mu_q and logscale_q must have the same length")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_lanes):
            raise ConfigError(f"lane ids must lie in [0, {self.num_lanes})")
        if len(np.unique(ids)) != len(ids):
            raise ConfigError("a lane id appears twice in one step")
        out = np.empty(len(ids), dtype=np.int32)
        for i, lane in enumerate(ids):
            out[i] = _constriction.decode_lane(self._coders[lane], mu[i:i + 1], ls[i:i + 1], self._lo, self._hi)[0]
        return out

    def status(self) -> np.ndarray:
        return np.zeros(self.num_lanes, dtype=np.uint8)

    def remaining_words(self) -> np.ndarray:
        return np.array([c.num_words() for c in self._coders], dtype=np.int64)

    def end_status(self) -> np.ndarray:
        return np.array([_status.OK if c.is_empty() else _status.NONZERO_STATE for c in self._coders],
                        dtype=np.uint8)


class IncrementalDecoder:
    """Decodes lanes symbol by symbol, the parameters of each symbol supplied when it is decoded.

    ``decode_step(lane_ids, mu_q, logscale_q)`` decodes the next symbol of each listed lane (ids
    distinct) and returns them in the order of lane_ids. Backends: "cpp" (numpy in, numpy out;
    lane ids are checked before any lane changes), "cuda" (states on the GPU, CUDA tensors in and
    out) and "constriction" (reference, float model). ``finish()`` checks that every lane ended
    exactly. Decoding past a lane's end is deterministic, as in the batch decoder. ``floor``: the
    model's smallest frequency, as in ``encode`` (cpp backend only for floors above 1).
    """

    def __init__(self, streams: Any, lo: int, hi: int, *, backend: Backend = "auto",
                 device: Any = None, floor: int = 1) -> None:
        streams = as_streams(streams)
        lo, hi = check_support(lo, hi)
        on_gpu = device is not None and str(device).startswith("cuda")
        if backend == "auto":
            backend = "cuda" if on_gpu and _cuda.available() else "cpp"
        self.backend = select_backend(backend)
        floor = check_floor(floor, lo, hi, self.backend)
        self.lo, self.hi = lo, hi
        if self.backend == "cuda":
            self._lanes = _cuda.LaneDecoder(streams, lo, hi, device if on_gpu else "cuda")
        elif self.backend == "constriction":
            self._lanes = _ConstrictionLanes(streams, lo, hi)
        else:
            self._lanes = native(_cpu.RansLaneDecoder, streams.words, streams.lane_words, lo, hi, floor)
        _status.raise_for_status(self._lanes.status(), strict=False)

    @property
    def num_lanes(self) -> int:
        """Number of lanes being decoded."""
        return self._lanes.num_lanes

    def decode_step(self, lane_ids: Any, mu_q: Any, logscale_q: Any, *, validate: bool = True) -> Any:
        """One symbol for each lane in lane_ids, decoded with its (MU, LS); int32 array/tensor.

        validate=False skips the CUDA backend's lane-id check (a device sync) for callers that
        guarantee distinct in-range ids; the CPU backends always check. ConfigError (before any
        lane changes) for bad arguments.
        """
        if self.backend == "cuda":
            return self._lanes.step(lane_ids, mu_q, logscale_q, validate=validate)
        # The lanes check lengths and ids before touching any lane.
        out = native(self._lanes.step, int_array(lane_ids, "lane_ids", np.int64), int_array(mu_q, "mu_q"),
                     int_array(logscale_q, "logscale_q"))
        if type(mu_q) is not np.ndarray and is_torch(mu_q):
            import torch

            return torch.from_numpy(out)
        return out

    def remaining_words(self) -> np.ndarray:
        """Words not yet read, per lane (int64)."""
        return self._lanes.remaining_words()

    def finish(self, strict: bool = True) -> None:
        """BitstreamError unless every lane has ended exactly (all words read, final state 0, no
        impossible refill): the guarantee of ``decode(strict=True)``, with the same limit -- a
        damaged stream that is the exact encoding of other symbols passes (the .ddf CRCs catch it).

        Without strict only damage found while decoding is reported.
        """
        status = self._lanes.end_status() if strict else self._lanes.status()
        _status.raise_for_status(status, strict=True, remaining=self.remaining_words())
