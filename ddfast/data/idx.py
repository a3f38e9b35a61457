"""Reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

An IDX file is: two zero bytes, a type code (0x08 = unsigned byte, ...), the number of
dimensions d, then d big-endian uint32 sizes, then the values in row-major order, big-endian.
So the image files start with magic 0x00000803 and the label files with 0x00000801.
Every inconsistency (bad magic, short header, truncated or oversized payload, broken gzip)
is reported as a ``DatasetError`` naming the file.
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np

from ddfast.errors import DatasetError

#: IDX type code -> numpy dtype (big-endian as stored).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The largest (decompressed) IDX file read: 2 GiB, 40 times the Fashion-MNIST training images.
MAX_IDX_BYTES = 1 << 31
CHUNK = 1 << 20

MAGIC_IMAGES_U8 = 0x00000803  #: uint8, 3 dimensions (N, rows, cols)
MAGIC_LABELS_U8 = 0x00000801  #: uint8, 1 dimension (N)


def _describe_magic(magic: int) -> str:
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    kind = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
            0x0D: "float32", 0x0E: "float64"}.get(code, f"unknown type 0x{code:02x}")
    return f"0x{magic:08x} ({kind}, {ndim} dimension{'s' if ndim != 1 else ''})"


def _declared_bytes(prefix: bytes) -> int | None:
    """The whole file's size in bytes that an IDX header declares, once ``prefix`` holds the
    header (None before that, or when the prefix is no IDX header; parse_idx then says why)."""
    if len(prefix) < 4 or prefix[:2] != b"\x00\x00" or prefix[2] not in IDX_TYPES:
        return None
    header = 4 + 4 * prefix[3]
    if len(prefix) < header:
        return None
    dims = [int.from_bytes(prefix[4 + 4 * i: 8 + 4 * i], "big") for i in range(prefix[3])]
    return header + math.prod(dims) * IDX_TYPES[prefix[2]].itemsize


def _gunzip_capped(raw: bytes, path: Path) -> bytes:
    """Decompress a gzip file no further than the IDX header inside declares (and MAX_IDX_BYTES),
    so that a small file cannot expand into gigabytes of memory before it is found wrong."""
    out = bytearray()
    limit = MAX_IDX_BYTES
    pending = raw
    try:
        while pending:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = pending
            while data:
                out += stream.decompress(data[:CHUNK], limit + 1 - len(out))
                data = stream.unconsumed_tail + data[CHUNK:]
                declared = _declared_bytes(bytes(out[:1024]))
                if declared is not None:
                    if declared > MAX_IDX_BYTES:
                        raise DatasetError(f"{path}: the IDX header declares {declared} bytes, more than the "
                                           f"{MAX_IDX_BYTES} this reader accepts")
                    limit = declared
                if len(out) > limit:
                    raise DatasetError(f"{path}: the gzip stream holds more than the {limit} bytes "
                                       f"{'its IDX header declares' if declared is not None else 'allowed'}")
                if stream.eof:
                    break
            if not stream.eof:
                raise DatasetError(f"{path} is a damaged or truncated gzip file: the stream ends early")
            pending = stream.unused_data
    except zlib.error as exc:
        raise DatasetError(f"{path} is a damaged or truncated gzip file: {exc}") from exc
    return bytes(out)


def read_file_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is a gzip stream (detected by its magic bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        return _gunzip_capped(raw, path)
    return raw


def parse_idx(data: bytes, source: str, expect_magic: int | None = None) -> np.ndarray:
    """Parse IDX bytes into an array (native byte order). ``source`` names the file in errors.

    With ``expect_magic`` the 4-byte magic number must equal it (e.g. ``MAGIC_IMAGES_U8``).
    """
    if len(data) < 4:
        raise DatasetError(f"{source}: truncated IDX file ({len(data)} bytes, no header)")
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or code not in IDX_TYPES or ndim == 0:
        want = f"; expected {_describe_magic(expect_magic)}" if expect_magic is not None else ""
        raise DatasetError(f"{source}: bad IDX magic number 0x{magic:08x}{want}")
    if expect_magic is not None and magic != expect_magic:
        raise DatasetError(
            f"{source}: IDX magic number is {_describe_magic(magic)}; "
            f"expected {_describe_magic(expect_magic)}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{source}: truncated IDX header ({len(data)} bytes, need {header} for {ndim} dims)"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_TYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    actual = len(data) - header
    shape = " x ".join(str(d) for d in dims)
    if actual < expected:
        raise DatasetError(
            f"{source}: truncated IDX file: header says {shape} values ({expected} bytes) "
            f"but only {actual} bytes follow"
        )
    if actual > expected:
        raise DatasetError(
            f"{source}: IDX file has {actual - expected} unexpected bytes after the "
            f"{shape} values it declares"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else array


def read_idx(path: Path, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into a read-only numpy array."""
    return parse_idx(read_file_bytes(path), str(path), expect_magic)
