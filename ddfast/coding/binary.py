"""Byte-level reading and writing for the .ddf container: varints, zigzag, fixed-width fields.

A varint is unsigned LEB128 (7 bits per byte, low group first, high bit set on all but the last
byte; canonical: no superfluous zero groups, at most 10 bytes). Signed values are zigzag-mapped
(0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) before they become varints. Fixed-width fields are
little-endian. Every read is bounds-checked and fails with a BitstreamError that names the field
and its byte offset in the file.
"""
from __future__ import annotations

import struct

import numpy as np

from ddfast.errors import BitstreamError

_MAX_VARINT_BYTES = 10


def zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def varint(value: int) -> bytes:
    """Unsigned LEB128 of a non-negative int."""
    if value < 0:
        raise ValueError(f"varint of a negative value {value}")
    out = bytearray()
    while True:
        group = value & 0x7F
        value >>= 7
        if value:
            out.append(group | 0x80)
        else:
            out.append(group)
            return bytes(out)


def varint_size(value: int) -> int:
    """Bytes of varint(value)."""
    return max(1, (int(value).bit_length() + 6) // 7)


class Writer:
    """Appends fields to a growing byte buffer."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def __len__(self) -> int:
        return len(self.buffer)

    def u8(self, value: int) -> None:
        self.buffer.append(value)

    def uvarint(self, value: int) -> None:
        self.buffer += varint(value)

    def svarint(self, value: int) -> None:
        self.buffer += varint(zigzag(value))

    def f32(self, value: float) -> None:
        self.buffer += struct.pack("<f", value)

    def u32(self, value: int) -> None:
        self.buffer += struct.pack("<I", value)

    def raw(self, data: bytes) -> None:
        self.buffer += data

    def words(self, words: np.ndarray) -> None:
        self.buffer += np.asarray(words, dtype=np.uint32).astype("<u4", copy=False).tobytes()

    def floats(self, values: np.ndarray) -> None:
        self.buffer += np.asarray(values, dtype=np.float32).astype("<f4", copy=False).tobytes()


class Reader:
    """Reads fields from ``data[start:end]``; errors name ``where`` and the absolute byte offset."""

    def __init__(self, data: bytes | memoryview, start: int = 0, end: int | None = None, where: str = "file") -> None:
        self.data = memoryview(data)
        self.pos = start
        self.end = len(self.data) if end is None else end
        self.where = where

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def fail(self, message: str, at: int | None = None) -> BitstreamError:
        return BitstreamError(f"{self.where}, byte {self.pos if at is None else at}: {message}")

    def take(self, count: int, what: str) -> memoryview:
        if count < 0 or count > self.remaining:
            raise self.fail(f"{what} needs {count} bytes but only {self.remaining} remain (truncated file?)")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def uvarint(self, what: str, maximum: int | None = None) -> int:
        start = self.pos
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            byte = self.u8(what)
            value |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:
                if i > 0 and byte == 0:
                    raise self.fail(f"{what}: non-canonical varint", start)
                if maximum is not None and value > maximum:
                    raise self.fail(f"{what} is {value}, at most {maximum} is allowed", start)
                return value
        raise self.fail(f"{what}: varint longer than {_MAX_VARINT_BYTES} bytes", start)

    def svarint(self, what: str, limit: int | None = None) -> int:
        start = self.pos
        value = unzigzag(self.uvarint(what))
        if limit is not None and abs(value) > limit:
            raise self.fail(f"{what} is {value}, its magnitude may be at most {limit}", start)
        return value

    def f32(self, what: str) -> float:
        return struct.unpack("<f", self.take(4, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def words(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * count, what), dtype="<u4").astype(np.uint32)

    def floats(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * count, what), dtype="<f4").astype(np.float32)
