"""The .ddf container: magic, version, a checksummed header, then one checksummed section per slice.

Byte layout (varint = unsigned LEB128, zigzag for signed values; fixed-width fields little-endian):

    magic          4 bytes   89 44 44 46  ("\\x89DDF")
    version        u8        FORMAT_VERSION
    header length  varint
    header         the fields of HEADER_FIELDS, in order (below)
    header CRC32   u32       zlib.crc32 of the header bytes
    then, for every slice in order (slices are class-major; see ddfast.codec.SliceLayout):
    section length varint
    section        the slice's payload (ddfast.coding.slices)
    section CRC32  u32       zlib.crc32 of the section bytes
    then, when flag bit 2 is set, the soft-label section (ddfast.coding.label_section), framed
    the same way: varint length, payload, CRC32
    nothing after that

Header fields:

    channels varint, height varint, width varint, classes varint,
    images_per_class varint x classes, slice_size varint (0: one slice per class),
    synthesis u8 (SYNTHESIS_CODES), arm_context u8, arm_depth u8, grids u8, upsample_kernel u8,
    gain f32, lane_symbols varint, flags u8 (bit 0: normalization, bit 1: syn_lr, bit 2: soft labels),
    [mean f32 x channels, std f32 x channels], [syn_lr f32]

A file without soft labels has flag bit 2 clear and no soft-label section: its bytes are those of
a ddfast without soft labels. Readers refuse unknown flag bits, so a reader older than the
soft-label section refuses a file that has one ("unknown flags 0x4") instead of decoding it
without its labels.

Every slice can be located and checked on its own, so one class decodes without the others.
Damage anywhere raises BitstreamError naming the part and byte offset.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cached_property

from ddfast.codec import CodecConfig
from ddfast.codec.layout import SliceLayout
from ddfast.coding.binary import Reader, Writer, varint
from ddfast.errors import BitstreamError, ConfigError

MAGIC = b"\x89DDF"
FORMAT_VERSION = 1
# Synthesis versions as stored in the header; codes are part of the format and never change.
SYNTHESIS_CODES = {"v4-40": 0, "v4-160": 1, "v4-240": 2, "v4-480": 3, "v4-960": 4, "v4-1200": 5, "v5-240": 6,
                   "v5-320": 7}
_SYNTHESIS_NAMES = {code: name for name, code in SYNTHESIS_CODES.items()}
_FLAG_NORMALIZATION = 1
_FLAG_SYN_LR = 2
_FLAG_SOFT_LABELS = 4

# Limits a header must respect (a file beyond them is refused before anything is allocated).
MAX_CHANNELS = 16
MAX_SIDE = 8192
MAX_CLASSES = 100_000
MAX_IMAGES_PER_CLASS = 1_000_000
MAX_TOTAL_VALUES = 2 ** 32  # images x channels x height x width (16 GiB of float32 images)
GAIN_RANGE = (2.0 ** -10, 2.0 ** 10)
MIN_SECTION_BYTES = 5  # a length byte and a CRC32


@dataclass(frozen=True)
class Header:
    """Everything a decoder needs besides the slices' own sections."""

    channels: int
    image_size: tuple[int, int]
    images_per_class: tuple[int, ...]
    slice_size: int | None
    config: CodecConfig
    lane_symbols: int
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    syn_lr: float | None = None
    soft_labels: bool = False  # a soft-label section follows the slice sections

    @cached_property
    def layout(self) -> SliceLayout:
        return SliceLayout.build(self.images_per_class, self.slice_size)

    @property
    def num_slices(self) -> int:
        """Slices of the set, counted without building its layout."""
        if self.slice_size is None:
            return len(self.images_per_class)
        return sum(-(-n // self.slice_size) for n in self.images_per_class)

    @property
    def num_classes(self) -> int:
        return len(self.images_per_class)


def write_header(h: Header) -> bytes:
    out = Writer()
    out.uvarint(h.channels)
    out.uvarint(h.image_size[0])
    out.uvarint(h.image_size[1])
    out.uvarint(len(h.images_per_class))
    for n in h.images_per_class:
        out.uvarint(n)
    out.uvarint(h.slice_size or 0)
    c = h.config.for_image_size(h.image_size)
    if c.synthesis not in SYNTHESIS_CODES:
        raise ConfigError(f"synthesis version {c.synthesis!r} has no .ddf code")
    for value in (SYNTHESIS_CODES[c.synthesis], c.arm_context, c.arm_depth, c.n_grids, c.upsample_kernel):
        out.u8(value)
    out.f32(c.gain)
    out.uvarint(h.lane_symbols)
    out.u8((_FLAG_NORMALIZATION if h.normalization is not None else 0) | (_FLAG_SYN_LR if h.syn_lr is not None else 0)
           | (_FLAG_SOFT_LABELS if h.soft_labels else 0))
    if h.normalization is not None:
        mean, std = h.normalization
        if len(mean) != h.channels or len(std) != h.channels:
            raise ConfigError(f"normalization needs {h.channels} means and stds, got {len(mean)} and {len(std)}")
        for value in (*mean, *std):
            out.f32(float(value))
    if h.syn_lr is not None:
        out.f32(float(h.syn_lr))
    return bytes(out.buffer)


def read_header(r: Reader) -> Header:
    channels = r.uvarint("channels", maximum=MAX_CHANNELS)
    height = r.uvarint("image height", maximum=MAX_SIDE)
    width = r.uvarint("image width", maximum=MAX_SIDE)
    classes = r.uvarint("number of classes", maximum=MAX_CLASSES)
    if min(channels, height, width, classes) < 1:
        raise r.fail("channels, image sizes and the number of classes must be positive")
    counts = tuple(r.uvarint(f"images of class {c}", maximum=MAX_IMAGES_PER_CLASS) for c in range(classes))
    if min(counts) < 1:
        raise r.fail("every class needs at least one image")
    if sum(counts) * height * width * channels > MAX_TOTAL_VALUES:
        raise r.fail(f"the set is too large ({sum(counts)} images of {channels}x{height}x{width}; at most "
                     f"{MAX_TOTAL_VALUES} values)")
    slice_size = r.uvarint("slice size", maximum=MAX_IMAGES_PER_CLASS) or None
    code = r.u8("synthesis version")
    if code not in _SYNTHESIS_NAMES:
        raise r.fail(f"unknown synthesis version code {code}")
    context, depth, grids, kernel = (r.u8(what) for what in ("ARM context", "ARM depth", "grids", "upsampling kernel"))
    gain = r.f32("gain")
    if not GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
        raise r.fail(f"gain must lie in [2^-10, 2^10], got {gain}")
    try:
        config = CodecConfig(synthesis=_SYNTHESIS_NAMES[code], arm_context=context, arm_depth=depth, n_grids=grids,
                             gain=gain, upsample_kernel=kernel)
    except ConfigError as err:
        raise r.fail(f"invalid codec configuration: {err}") from None
    lane_symbols = r.uvarint("lane length", maximum=2 ** 31)
    if lane_symbols < 1:
        raise r.fail("lane length must be positive")
    flags = r.u8("flags")
    if flags & ~(_FLAG_NORMALIZATION | _FLAG_SYN_LR | _FLAG_SOFT_LABELS):
        raise r.fail(f"unknown flags {flags:#x}")
    normalization = None
    if flags & _FLAG_NORMALIZATION:
        mean = tuple(r.f32("normalization mean") for _ in range(channels))
        std = tuple(r.f32("normalization std") for _ in range(channels))
        if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
            raise r.fail("normalization needs finite means and finite positive stds")
        normalization = (mean, std)
    syn_lr = r.f32("syn_lr") if flags & _FLAG_SYN_LR else None
    if syn_lr is not None and not math.isfinite(syn_lr):
        raise r.fail("syn_lr must be finite")
    if r.remaining:
        raise r.fail(f"{r.remaining} unexpected bytes after the header fields")
    return Header(channels, (height, width), counts, slice_size, config, lane_symbols, normalization, syn_lr,
                  bool(flags & _FLAG_SOFT_LABELS))


@dataclass(frozen=True)
class Container:
    """A parsed file: its header and where each section lies (CRCs are checked by :meth:`section`)."""

    data: memoryview
    header: Header
    header_bytes: int
    spans: tuple[tuple[int, int, int], ...]  # per slice: (framing start, payload start, payload end)
    label_span: tuple[int, int, int] | None = None  # the soft-label section's, when the file has one

    def section(self, index: int) -> Reader:
        """A reader over slice ``index``'s payload, after checking its CRC32."""
        return self._checked(self.spans[index], section_name(self.header.layout, index))

    def label_section(self) -> Reader:
        """A reader over the soft-label section's payload, after checking its CRC32."""
        if self.label_span is None:
            raise ConfigError("this file has no soft-label section")
        return self._checked(self.label_span, LABEL_SECTION_NAME)

    @property
    def label_section_bytes(self) -> int:
        """Bytes of the soft-label section with its length field and CRC32 (0 without one)."""
        if self.label_span is None:
            return 0
        first, _, end = self.label_span
        return end + 4 - first

    def _checked(self, span: tuple[int, int, int], where: str) -> Reader:
        _, start, end = span
        stored = int.from_bytes(self.data[end:end + 4], "little")
        computed = zlib.crc32(self.data[start:end])
        if stored != computed:
            raise BitstreamError(f"{where}, bytes {start}-{end}: CRC32 mismatch (stored {stored:#010x}, "
                                 f"computed {computed:#010x}): the section is damaged")
        return Reader(self.data, start, end, where)

    def framing_bytes(self, index: int) -> int:
        """Bytes of slice ``index``'s length field and CRC32."""
        first, start, _ = self.spans[index]
        return start - first + 4


LABEL_SECTION_NAME = "soft-label section"


def section_name(layout: SliceLayout, index: int) -> str:
    return f"section {index} (slice {index}, class {layout.slice_class[index]})"


def pack(header: Header, sections: list[bytes], label_section: bytes | None = None) -> bytes:
    """Assemble a file from its header, per-slice payloads and, when the header says so, the
    soft-label section's payload."""
    if header.soft_labels != (label_section is not None):
        raise ConfigError("the header's soft-label flag and the soft-label section must come together")
    head = write_header(header)
    parts = [MAGIC, bytes([FORMAT_VERSION]), varint(len(head)), head, zlib.crc32(head).to_bytes(4, "little")]
    for payload in sections + ([label_section] if label_section is not None else []):
        parts += [varint(len(payload)), payload, zlib.crc32(payload).to_bytes(4, "little")]
    return b"".join(parts)


def unpack(data: bytes | bytearray | memoryview) -> Container:
    """Parse the framing of a file: magic, version, header (CRC checked) and section spans."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ConfigError(f"a .ddf file is bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
    r = Reader(view, 0, len(view), "file")
    if bytes(view[:4]) != MAGIC:
        raise BitstreamError("not a .ddf file: it does not start with the magic bytes 89 44 44 46")
    r.pos = 4
    version = r.u8("format version")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported .ddf format version {version} (this ddfast reads version {FORMAT_VERSION})")
    length = r.uvarint("header length")
    start = r.pos
    head = r.take(length, "header")
    stored = r.u32("header CRC32")
    if zlib.crc32(head) != stored:
        raise BitstreamError(f"header, bytes {start}-{start + length}: CRC32 mismatch: the header is damaged")
    header = read_header(Reader(view, start, start + length, "header"))
    header_bytes = r.pos
    sections = header.num_slices + header.soft_labels
    if sections * MIN_SECTION_BYTES > r.remaining:
        raise BitstreamError(f"file, byte {r.pos}: the header declares {sections} sections, but only "
                             f"{r.remaining} bytes follow (each section takes at least {MIN_SECTION_BYTES}; "
                             "truncated file?)")
    layout = header.layout
    spans = []
    for index in range(layout.num_slices):
        spans.append(_framed(r, section_name(layout, index)))
    label_span = _framed(r, LABEL_SECTION_NAME) if header.soft_labels else None
    if r.pos != len(view):
        raise BitstreamError(f"file, byte {r.pos}: {len(view) - r.pos} unexpected bytes after the last section")
    return Container(view, header, header_bytes, tuple(spans), label_span)


def _framed(r: Reader, where: str) -> tuple[int, int, int]:
    """Skip one framed section (length, payload, CRC32); its (framing start, payload start, payload end)."""
    r.where = where
    first = r.pos
    size = r.uvarint("section length")
    begin = r.pos
    r.take(size, "section")
    r.take(4, "section CRC32")
    return first, begin, begin + size
