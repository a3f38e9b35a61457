"""RansStreams: the coded lanes of one encode call, and their byte serialization.

Each lane is one stream in constriction's ``AnsCoder`` format: its uint32 words in the order
``AnsCoder.get_compressed()`` returns them (the decoder reads from the end). ``to_bytes`` writes

    varint  n_lanes
    varint  lane_words[0], ..., lane_words[n_lanes - 1]   (words per lane)
    uint32  the words of lane 0, then lane 1, ...          (little-endian)

where a varint is unsigned LEB128 (7 bits per byte, least significant group first, high bit set
on every byte but the last; canonical: no superfluous zero groups, at most 9 bytes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddfast.errors import ArgumentTypeError, BitstreamError, ConfigError
from ddfast.rans._arrays import to_numpy

_MAX_VARINT_BYTES = 9


def _varints(values: np.ndarray) -> bytes:
    """Unsigned LEB128 encoding of non-negative int64 values, concatenated."""
    v = values.astype(np.uint64)
    groups = np.stack([(v >> np.uint64(7 * j)) & np.uint64(0x7F) for j in range(_MAX_VARINT_BYTES)], axis=1)
    length = np.ones(len(v), dtype=np.int64)
    for j in range(1, _MAX_VARINT_BYTES):
        length += (v >> np.uint64(7 * j)) != 0
    j = np.arange(_MAX_VARINT_BYTES)
    cont = j[None, :] < (length[:, None] - 1)
    data = groups.astype(np.uint8) | (cont.astype(np.uint8) << 7)
    return data[j[None, :] < length[:, None]].tobytes()


def _read_varints(buf: np.ndarray, start: int, count: int, what: str) -> tuple[np.ndarray, int]:
    """Read `count` varints from buf[start:]; returns (values int64, end offset)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64), start
    region = buf[start:]
    ends = np.flatnonzero(region < 0x80)[:count]
    if len(ends) < count:
        raise BitstreamError(f"rANS lane table truncated while reading {what}")
    seg = region[: ends[-1] + 1]
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _MAX_VARINT_BYTES:
        raise BitstreamError(f"rANS lane table: a varint in {what} is longer than {_MAX_VARINT_BYTES} bytes")
    if np.any((lengths > 1) & (seg[ends] == 0)):
        raise BitstreamError(f"rANS lane table: non-canonical varint in {what}")
    group = np.repeat(np.arange(count), lengths)
    shift = (np.arange(len(seg)) - starts[group]) * 7
    parts = (seg & 0x7F).astype(np.uint64) << shift.astype(np.uint64)
    values = np.bitwise_or.reduceat(parts, starts)
    if np.any(values >= np.uint64(2**62)):
        raise BitstreamError(f"rANS lane table: value too large in {what}")
    return values.astype(np.int64), start + len(seg)


@dataclass(frozen=True)
class RansStreams:
    """All lanes' words concatenated in lane order (uint32) and each lane's word count (int64);
    ConfigError unless they are those arrays and the counts add up to the words."""

    words: np.ndarray
    lane_words: np.ndarray

    def __post_init__(self) -> None:
        words = np.ascontiguousarray(to_numpy(self.words, "words"))
        lane_words = np.ascontiguousarray(to_numpy(self.lane_words, "lane_words"))
        if words.dtype != np.uint32 or words.ndim != 1:
            raise ConfigError(f"words must be a one-dimensional uint32 array, got {words.dtype} {words.shape}")
        if lane_words.dtype != np.int64 or lane_words.ndim != 1:
            raise ConfigError("lane_words must be a one-dimensional int64 array")
        if lane_words.size and lane_words.min() < 0:
            raise ConfigError("lane_words has a negative entry")
        if lane_words.size and lane_words.max() > words.size:  # also keeps the int64 sum from wrapping
            raise ConfigError(f"lane_words has an entry of {int(lane_words.max())}, but there are {words.size} words")
        if int(lane_words.sum()) != words.size:
            raise ConfigError(f"lane_words adds up to {int(lane_words.sum())}, but there are {words.size} words")
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "lane_words", lane_words)

    @classmethod
    def from_lanes(cls, lanes: list[np.ndarray]) -> "RansStreams":
        """Pack per-lane uint32 word arrays (e.g. from constriction) into one RansStreams."""
        arrays = [to_numpy(lane, f"lane {i}", np.uint32).ravel() for i, lane in enumerate(lanes)]
        words = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint32)
        return cls(words, np.array([len(a) for a in arrays], dtype=np.int64))

    @property
    def num_lanes(self) -> int:
        """Number of lanes (streams)."""
        return len(self.lane_words)

    @property
    def offsets(self) -> np.ndarray:
        """Word offset of each lane, plus the total (num_lanes + 1 entries)."""
        return np.concatenate(([0], np.cumsum(self.lane_words))).astype(np.int64)

    @property
    def num_bits(self) -> int:
        """Size of all lanes' words in bits (32 per word; the lane table not included)."""
        return 32 * int(self.words.size)

    def lane(self, i: int) -> np.ndarray:
        """Words of lane i (a view), exactly what constriction's AnsCoder(words) expects;
        ArgumentTypeError unless i is an integer, ConfigError unless 0 <= i < num_lanes."""
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise ArgumentTypeError(f"lane index must be an integer in [0, {self.num_lanes}), got {i!r}")
        if not 0 <= i < self.num_lanes:
            raise ConfigError(f"lane index must be an integer in [0, {self.num_lanes}), got {i!r}")
        off = self.offsets
        return self.words[off[i]:off[i + 1]]

    def to_bytes(self) -> bytes:
        """Serialize (lane table of varints, then little-endian words); see the module doc."""
        header = _varints(np.array([self.num_lanes], dtype=np.int64)) + _varints(self.lane_words)
        return header + self.words.astype("<u4", copy=False).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "RansStreams":
        """Parse to_bytes output; BitstreamError if it is truncated, padded or malformed,
        ArgumentTypeError unless data is bytes-like."""
        try:
            buf = np.frombuffer(data, dtype=np.uint8)
        except TypeError:
            raise ArgumentTypeError(f"rANS streams are bytes, got {type(data).__name__}") from None
        (n_lanes,), pos = _read_varints(buf, 0, 1, "the lane count")
        if n_lanes > len(buf):
            raise BitstreamError(f"rANS lane table claims {n_lanes} lanes in {len(buf)} bytes")
        lane_words, pos = _read_varints(buf, pos, int(n_lanes), "the lane word counts")
        if lane_words.size and lane_words.max() > len(buf) // 4:
            raise BitstreamError(f"rANS lane table claims a lane of {int(lane_words.max())} words in {len(buf)} bytes")
        total = int(lane_words.sum())
        if len(buf) - pos != 4 * total:
            raise BitstreamError(
                f"rANS payload holds {len(buf) - pos} bytes, but the lane table needs {4 * total} "
                f"({total} words)")
        words = np.frombuffer(data, dtype="<u4", offset=pos, count=total).astype(np.uint32)
        return cls(words, lane_words)
