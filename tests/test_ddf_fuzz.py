"""Bounded, seeded fuzzing of the .ddf format (ddfast.coding.container / slices / weights).

Two small valid files are damaged in thousands of ways:

- plain mutations (bit flips, byte overwrites, insertions, deletions, truncations, appended bytes,
  non-canonical or wrong length varints): the CRCs and the framing must catch every one of them, so
  ``decompress`` and ``inspect`` raise BitstreamError;
- deep mutations behind the checksums (a section's or the header's bytes changed and its CRC32
  recomputed, including targeted edits of steps, latent supports, weight method tables, lane word
  counts and lane words): the parsers and decoders must raise BitstreamError or decode (rANS has no
  redundancy, so some edits decode to other images), never raise anything else.

Every decode is timed against a generous bound; the loops are finite by construction, and a
faulthandler watchdog dumps the stacks and exits should a decode ever hang. Failures are
collected and reported with the seed, the mutation and its byte offset.
"""
from __future__ import annotations

import contextlib
import faulthandler
import re
import struct
import time
import traceback
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import ddfast
from ddfast import coding
from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.coding.binary import Reader, varint, zigzag
from ddfast.coding.container import FORMAT_VERSION, MAGIC, unpack
from ddfast.coding.intarm import MAX_ABS_LATENT
from ddfast.coding.quantized import tensor_specs
from ddfast.coding.slices import MAX_EXPONENTS, STEP_FIELDS

SEED = 0xDDF
STEPS = {"arm": (8, 16), "synthesis": (12, 12), "upsampling": (12, 0)}
DECODE_LIMIT_S = 2.0       # any single decompress / inspect call, damaged or not
HANG_GUARD_S = 240         # a whole test; beyond it faulthandler dumps every stack and exits
PLAIN_PER_FILE = 1500      # random plain mutations per file
DEEP_PER_FILE = 500        # random mutations behind the CRCs per file
ISOLATION_PER_FILE = 40    # damaged other-class sections while decoding one class
MAX_REPORTED = 25
# A BitstreamError must say where the damage is.
LOCATION = re.compile(r"byte|section|header|magic|version", re.IGNORECASE)


@dataclass(frozen=True)
class FileSpec:
    name: str
    counts: tuple[int, ...]
    image_size: tuple[int, int]
    channels: int
    context: int
    depth: int
    slice_size: int | None
    lane_symbols: int
    seed: int


FILES = (
    # 3 slices (class 0 split 2 + 1), 64-symbol lanes: several lanes per slice.
    FileSpec("rgb-12x10", (3, 2), (12, 10), 3, 16, 2, 2, 64, 1),
    # a 1-channel odd-sized set, context 32, one lane per slice (default lane length).
    FileSpec("gray-9x13", (3, 1), (9, 13), 1, 32, 1, 2, coding.DEFAULT_LANE_SYMBOLS, 2),
)


@dataclass
class Sample:
    """A valid file, its parts and its reference decode."""

    spec: FileSpec
    data: bytes
    head: bytes                 # header field bytes (what the header CRC covers)
    payloads: list[bytes]       # section payloads
    spans: tuple                # unpack(data).spans
    header_bytes: int           # magic .. header CRC
    images: torch.Tensor
    labels: torch.Tensor
    qset: coding.QuantizedSet
    slice_parts: list[dict[str, int]]   # per section: bytes of parameters, weights, lane_table, latents
    slice_lanes: list[int]
    slice_class: tuple[int, ...]
    num_tensors: int


def _randomize(syn: SyntheticSet, seed: int) -> None:
    """Random non-trivial weights; latents with |round(gain * y)| <= 30."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in syn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        limit = 30 / syn.config.gain
        syn.stack.latents.mul_(2.0).clamp_(-limit, limit)


def split(data: bytes) -> tuple[bytes, list[bytes]]:
    """(header field bytes, section payloads) of a valid file."""
    container = unpack(data)
    r = Reader(data, len(MAGIC) + 1)
    length = r.uvarint("header length")
    head = bytes(data[r.pos:r.pos + length])
    return head, [bytes(data[start:end]) for _, start, end in container.spans]


def join(head: bytes, payloads: list[bytes]) -> bytes:
    """A file with consistent framing: lengths and CRC32s recomputed for the given parts."""
    parts = [MAGIC, bytes([FORMAT_VERSION]), varint(len(head)), head, zlib.crc32(head).to_bytes(4, "little")]
    for payload in payloads:
        parts += [varint(len(payload)), payload, zlib.crc32(payload).to_bytes(4, "little")]
    return b"".join(parts)


def _make_sample(spec: FileSpec) -> Sample:
    cfg = CodecConfig(synthesis="v4-40", arm_context=spec.context, arm_depth=spec.depth)
    syn = SyntheticSet(list(spec.counts), spec.image_size, channels=spec.channels, config=cfg,
                       slice_size=spec.slice_size)
    _randomize(syn, spec.seed)
    qset = coding.quantize_at(syn, STEPS)
    assert int(qset.latents.abs().max()) <= 30
    data = coding.encode(qset, lane_symbols=spec.lane_symbols)
    head, payloads = split(data)
    assert join(head, payloads) == data
    container = unpack(data)
    images, labels = ddfast.decompress(data, device="cpu")
    info = ddfast.inspect(data, estimate=False)
    return Sample(spec, data, head, payloads, container.spans, container.header_bytes, images, labels,
                  coding.decode(data),
                  [dict(s.bytes) for s in info.slices], [s.lanes for s in info.slices],
                  container.header.layout.slice_class, len(tensor_specs(syn.config, spec.channels)))


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    out = [_make_sample(spec) for spec in FILES]
    assert out[0].slice_lanes[0] > 1, "the first file should have several lanes per slice"
    assert len(set(out[1].slice_class)) < len(out[1].slice_class), "the second file should split a class"
    return out


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Run with ``count`` intra-op threads (None: unchanged). Thousands of tiny decodes on two shared
    cores are many times slower with spinning OpenMP workers, so most tests decode single-threaded."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture()
def single_thread():
    with torch_threads(1):
        yield


@pytest.fixture()
def hang_guard():
    """Dump every thread's stack and exit if a test runs far beyond its budget (a hung decoder)."""
    faulthandler.dump_traceback_later(HANG_GUARD_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ---------------------------------------------------------------------------------------------
# Running decodes and collecting failures


@dataclass
class Outcome:
    kind: str                    # "ok", "bitstream" or "other"
    value: object                # the result or the exception
    seconds: float
    trace: str = ""


def _call(fn, *args, **kwargs) -> Outcome:
    start = time.perf_counter()
    try:
        value = fn(*args, **kwargs)
        kind, trace = "ok", ""
    except ddfast.BitstreamError as err:
        value, kind, trace = err, "bitstream", ""
    except Exception as err:  # noqa: BLE001 -- anything else is a finding
        value, kind, trace = err, "other", "".join(traceback.format_exception(err)[-6:])
    return Outcome(kind, value, time.perf_counter() - start, trace)


def _decompress(data: bytes, classes=None):
    return ddfast.decompress(data, device="cpu", classes=classes)


@dataclass
class Fuzz:
    """Checks mutated files of one sample and records what went wrong."""

    sample: Sample
    test: str
    failures: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0

    def where(self, pos: int) -> str:
        """The part of the original file byte ``pos`` belongs to."""
        s = self.sample
        if pos < len(MAGIC):
            return "magic"
        if pos == len(MAGIC):
            return "version"
        if pos < s.header_bytes:
            return "header"
        for index, (first, start, end) in enumerate(s.spans):
            if pos < start:
                return f"section {index} length"
            if pos < end:
                return f"section {index} payload +{pos - start}"
            if pos < end + 4:
                return f"section {index} CRC32"
        return "end of file"

    def _fail(self, what: str, message: str, outcome: Outcome | None = None) -> None:
        text = f"[{self.sample.spec.name}, seed {SEED:#x}, {self.test}] {what}: {message}"
        self.failures.append(text)
        if outcome is not None and outcome.trace and len(self.traces) < 3:
            self.traces.append(f"{text}\n{outcome.trace}")

    def _timed(self, what: str, outcome: Outcome, call: str) -> None:
        self.slowest = max(self.slowest, outcome.seconds)
        if outcome.seconds > DECODE_LIMIT_S:
            self._fail(what, f"{call} took {outcome.seconds:.2f} s (limit {DECODE_LIMIT_S} s)")

    def _identical(self, what: str, data: bytes) -> None:
        out = _call(_decompress, data)
        self._timed(what, out, "decompress")
        if out.kind != "ok":
            self._fail(what, f"unchanged bytes failed to decode: {out.value!r}", out)
        elif not (torch.equal(out.value[0], self.sample.images) and torch.equal(out.value[1], self.sample.labels)):
            self._fail(what, "unchanged bytes decoded to other images")

    def _bitstream_message(self, what: str, err: Exception, call: str) -> None:
        if not LOCATION.search(str(err)):
            self._fail(what, f"{call}: BitstreamError without a location: {err!r}")

    def rejected(self, data: bytes, what: str) -> None:
        """A damaged file that the framing/CRCs must catch: BitstreamError from decompress and inspect."""
        self.counts["rejected"] = self.counts.get("rejected", 0) + 1
        if data == self.sample.data:
            self._identical(what, data)
            return
        for call, fn in (("decompress", _decompress), ("inspect", ddfast.inspect)):
            out = _call(fn, data)
            self._timed(what, out, call)
            if out.kind == "ok":
                self._fail(what, f"{call} accepted the damaged file")
            elif out.kind == "other":
                self._fail(what, f"{call} raised {type(out.value).__name__}: {out.value}", out)
            else:
                self._bitstream_message(what, out.value, call)

    def decoded_or_rejected(self, data: bytes, what: str) -> None:
        """A file damaged behind its CRCs: BitstreamError or a decode, from decompress and inspect alike."""
        self.counts["deep"] = self.counts.get("deep", 0) + 1
        if data == self.sample.data:
            self._identical(what, data)
            return
        out = _call(_decompress, data)
        self._timed(what, out, "decompress")
        if out.kind == "other":
            self._fail(what, f"decompress raised {type(out.value).__name__}: {out.value}", out)
            return
        if out.kind == "bitstream":
            self._bitstream_message(what, out.value, "decompress")
        else:
            images, labels = out.value
            self.counts["deep decoded"] = self.counts.get("deep decoded", 0) + 1
            if images.dim() != 4 or images.shape[0] != labels.shape[0]:
                self._fail(what, f"decoded {tuple(images.shape)} images with {tuple(labels.shape)} labels")
            if not torch.isfinite(images).all():
                self.counts["deep decoded non-finite"] = self.counts.get("deep decoded non-finite", 0) + 1
        info = _call(ddfast.inspect, data)
        self._timed(what, info, "inspect")
        if info.kind == "other":
            self._fail(what, f"inspect raised {type(info.value).__name__}: {info.value}", info)
        elif info.kind != out.kind:
            self._fail(what, f"decompress and inspect disagree: {out.kind} ({out.value!r:.200}) vs "
                             f"{info.kind} ({info.value!r:.200})")

    def finish(self) -> None:
        print(f"{self.sample.spec.name} {self.test}: {self.counts}, slowest call {self.slowest * 1e3:.1f} ms")
        if self.failures:
            shown = "\n".join(self.failures[:MAX_REPORTED])
            more = f"\n... and {len(self.failures) - MAX_REPORTED} more" if len(self.failures) > MAX_REPORTED else ""
            traces = "\n\n".join(self.traces)
            pytest.fail(f"{len(self.failures)} fuzz failures:\n{shown}{more}\n\nfirst tracebacks:\n{traces}",
                        pytrace=False)


def _rng(sample: Sample, test: str) -> np.random.Generator:
    return np.random.default_rng([SEED, FILES.index(sample.spec), zlib.crc32(test.encode())])


# ---------------------------------------------------------------------------------------------
# Mutations


def _random_bytes(rng: np.random.Generator, n: int) -> bytes:
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def mutate(rng: np.random.Generator, data: bytes, kind: str, lo: int = 0, hi: int | None = None
           ) -> tuple[bytes, str, int]:
    """One mutation of ``kind`` at a random offset in [lo, hi) of ``data``: (bytes, description, offset)."""
    hi = len(data) if hi is None else hi
    out = bytearray(data)
    if kind == "flip":
        pos, bit = int(rng.integers(lo, hi)), int(rng.integers(8))
        out[pos] ^= 1 << bit
        return bytes(out), f"flip bit {bit} of byte {pos}", pos
    if kind == "overwrite":
        pos = int(rng.integers(lo, hi))
        value = (out[pos] + int(rng.integers(1, 256))) % 256
        desc = f"overwrite byte {pos} {out[pos]:#04x} -> {value:#04x}"
        out[pos] = value
        return bytes(out), desc, pos
    if kind == "insert":
        pos, extra = int(rng.integers(lo, hi + 1)), _random_bytes(rng, int(rng.integers(1, 9)))
        out[pos:pos] = extra
        return bytes(out), f"insert {extra.hex()} at byte {pos}", pos
    if kind == "delete":
        n = int(rng.integers(1, 9))
        pos = int(rng.integers(lo, max(lo, hi - n) + 1))
        desc = f"delete {len(out[pos:pos + n])} bytes at {pos} ({bytes(out[pos:pos + n]).hex()})"
        del out[pos:pos + n]
        return bytes(out), desc, pos
    if kind == "truncate":
        pos = int(rng.integers(lo, hi))
        return bytes(out[:pos]), f"truncate to {pos} bytes", pos
    if kind == "append":
        extra = _random_bytes(rng, int(rng.integers(1, 9)))
        return bytes(out) + extra, f"append {extra.hex()}", len(out)
    raise AssertionError(kind)


PLAIN_KINDS = ("flip", "overwrite", "insert", "delete", "truncate", "append")


def test_fuzz_files_are_valid(samples):
    """The reference files decode, and split/join reproduces them byte for byte."""
    for s in samples:
        assert join(s.head, s.payloads) == s.data
        assert s.images.shape == (sum(s.spec.counts), s.spec.channels, *s.spec.image_size)
        assert torch.isfinite(s.images).all()
        qset = coding.decode(s.data)
        assert coding.encode(qset, lane_symbols=s.spec.lane_symbols) == s.data


@pytest.mark.parametrize("index", range(len(FILES)), ids=[f.name for f in FILES])
def test_plain_mutations_are_rejected(samples, index, hang_guard, single_thread):
    """Random flips, overwrites, insertions, deletions, truncations and appended bytes: BitstreamError."""
    s = samples[index]
    fuzz = Fuzz(s, "plain")
    rng = _rng(s, "plain")
    for i in range(PLAIN_PER_FILE):
        kind = PLAIN_KINDS[i % len(PLAIN_KINDS)]
        data, desc, pos = mutate(rng, s.data, kind)
        fuzz.rejected(data, f"#{i} {desc} ({fuzz.where(min(pos, len(s.data) - 1))})")
    fuzz.finish()


@pytest.mark.parametrize("index", range(len(FILES)), ids=[f.name for f in FILES])
def test_every_truncation_and_header_bit_flip_is_rejected(samples, index, hang_guard, single_thread):
    """Truncation at every length (0 .. len-1), and every single bit flip of the framing before the sections."""
    s = samples[index]
    fuzz = Fuzz(s, "exhaustive")
    for n in range(len(s.data)):
        fuzz.rejected(s.data[:n], f"truncate to {n} bytes ({fuzz.where(n)})")
    for pos in range(s.header_bytes):
        for bit in range(8):
            out = bytearray(s.data)
            out[pos] ^= 1 << bit
            fuzz.rejected(bytes(out), f"flip bit {bit} of byte {pos} ({fuzz.where(pos)})")
    # The framing of every section and the end of the file, bit by bit.
    for first, start, end in s.spans:
        for pos in [*range(first, start), *range(end, end + 4), start, end - 1]:
            for bit in range(8):
                out = bytearray(s.data)
                out[pos] ^= 1 << bit
                fuzz.rejected(bytes(out), f"flip bit {bit} of byte {pos} ({fuzz.where(pos)})")
    fuzz.finish()


def _varint_variants(value: int, maximum: int) -> list[tuple[bytes, str]]:
    """Other encodings of a varint field: other values, and the same value non-canonically."""
    out = []
    for other in sorted({0, 1, value - 1, value + 1, value - 4, value + 4, value + 127, value + 128, 2 * value,
                         maximum, maximum + 1, 2 ** 32, 2 ** 63, 2 ** 70 - 1}):
        if other >= 0 and other != value:
            out.append((varint(other), f"value {value} -> {other}"))
    canonical = varint(value)
    padded = bytes([canonical[-1] | 0x80, 0x00])
    out.append((canonical[:-1] + padded, f"value {value} padded with a zero group"))
    out.append((canonical[:-1] + bytes([canonical[-1] | 0x80, 0x80, 0x00]), f"value {value} padded twice"))
    out.append((b"\xff" * 10 + b"\x01", "11-byte varint"))
    out.append((b"\x80" * 9 + b"\x00", "10-byte zero varint"))
    return out


@pytest.mark.parametrize("index", range(len(FILES)), ids=[f.name for f in FILES])
def test_length_varints_are_checked(samples, index, hang_guard, single_thread):
    """The header length and every section length, set to other values or non-canonical encodings."""
    s = samples[index]
    fuzz = Fuzz(s, "lengths")
    fields = [(len(MAGIC) + 1, len(s.head), "header length")]
    fields += [(first, end - start, f"section {i} length") for i, (first, start, end) in enumerate(s.spans)]
    for pos, value, name in fields:
        size = len(varint(value))
        for encoded, desc in _varint_variants(value, len(s.data)):
            fuzz.rejected(s.data[:pos] + encoded + s.data[pos + size:], f"{name} at byte {pos}: {desc}")
    fuzz.finish()


# ---------------------------------------------------------------------------------------------
# Behind the checksums


def _section_regions(s: Sample, index: int) -> dict[str, tuple[int, int]]:
    """Byte ranges of one section payload's parts (parameters, method table, weights, lane table, words)."""
    parts = s.slice_parts[index]
    p, w, t = parts["parameters"], parts["weights"], parts["lane_table"]
    table = (s.num_tensors + 1) // 2
    return {"parameters": (0, p), "method table": (p, p + table), "weights": (p + table, p + w),
            "lane table": (p + w, p + w + t), "lane words": (p + w + t, len(s.payloads[index]))}


@pytest.mark.parametrize("index", range(len(FILES)), ids=[f.name for f in FILES])
def test_mutations_behind_the_crcs(samples, index, hang_guard, single_thread):
    """Random edits of the header or of one section, CRC32s and lengths recomputed: BitstreamError or a decode."""
    s = samples[index]
    fuzz = Fuzz(s, "deep")
    rng = _rng(s, "deep")
    for i in range(DEEP_PER_FILE):
        kind = PLAIN_KINDS[int(rng.integers(len(PLAIN_KINDS)))]
        target = int(rng.integers(-1, len(s.payloads)))
        if target < 0 or rng.random() < 0.1:
            head, desc, _ = mutate(rng, s.head, kind)
            fuzz.decoded_or_rejected(join(head, s.payloads), f"#{i} header fields: {desc}")
            continue
        regions = {name: r for name, r in _section_regions(s, target).items() if r[1] > r[0]}
        name = list(regions)[int(rng.integers(len(regions)))]
        lo, hi = regions[name]
        payload, desc, _ = mutate(rng, s.payloads[target], kind, lo, hi)
        payloads = list(s.payloads)
        payloads[target] = payload
        fuzz.decoded_or_rejected(join(s.head, payloads), f"#{i} section {target} {name}: {desc} (payload offsets)")
    fuzz.finish()


@pytest.mark.parametrize("index", range(len(FILES)), ids=[f.name for f in FILES])
def test_header_fields_behind_the_crc(samples, index, hang_guard, single_thread):
    """Every header byte set to a handful of other values, the header CRC recomputed."""
    s = samples[index]
    fuzz = Fuzz(s, "header fields")
    for pos in range(len(s.head)):
        old = s.head[pos]
        for value in sorted({old ^ 1, old ^ 0x80, old ^ 0x40, (old + 1) % 256, (old - 1) % 256, 0, 0xFF}):
            if value == old:
                continue
            head = s.head[:pos] + bytes([value]) + s.head[pos + 1:]
            fuzz.decoded_or_rejected(join(head, s.payloads), f"header field byte {pos}: {old:#04x} -> {value:#04x}")
    fuzz.finish()


def _header_fields(s: Sample) -> list[list]:
    """The header as [name, kind, value] fields (container.py's layout), to edit and re-serialize."""
    r = Reader(s.head)
    fields = [["channels", "uv", r.uvarint("")], ["height", "uv", r.uvarint("")], ["width", "uv", r.uvarint("")]]
    classes = r.uvarint("")
    fields.append(["classes", "uv", classes])
    fields += [[f"count {c}", "uv", r.uvarint("")] for c in range(classes)]
    fields.append(["slice size", "uv", r.uvarint("")])
    fields += [[name, "u8", r.u8("")] for name in ("synthesis", "context", "depth", "grids", "kernel")]
    fields.append(["gain", "f32", r.f32("")])
    fields.append(["lane symbols", "uv", r.uvarint("")])
    fields.append(["flags", "u8", r.u8("")])
    assert fields[-1][2] == 0 and not r.remaining
    return fields


def _write_fields(fields: list[list]) -> bytes:
    out = b""
    for _, kind, value in fields:
        out += {"uv": lambda v: varint(v), "u8": lambda v: bytes([v]), "f32": lambda v: struct.pack("<f", v),
                "raw": lambda v: v}[kind](value)
    return out


@pytest.mark.parametrize("index", range(len(FILES)), ids=[f.name for f in FILES])
def test_header_field_values_behind_the_crc(samples, index, hang_guard, single_thread):
    """Each header field set to other values (valid, extreme and invalid), the header CRC recomputed."""
    s = samples[index]
    fuzz = Fuzz(s, "header values")
    fields = _header_fields(s)
    assert _write_fields(fields) == s.head
    names = [f[0] for f in fields]
    nan, inf = float("nan"), float("inf")
    candidates = {
        "channels": [0, 1, 2, 3, 4, 16, 17, 2 ** 40],
        "height": [0, 1, 2, 3, 7, 64, 127, 128, 1000, 8192, 8193],
        "width": [0, 1, 2, 3, 7, 64, 127, 128, 1000, 8192, 8193],
        "classes": [0, 1, 3, 100_001],
        "slice size": [0, 1, 2, 3, 4, 1_000_000, 1_000_001],
        "synthesis": list(range(9)) + [255],
        "context": [0, 1, 8, 16, 24, 32, 64, 65, 255],
        "depth": [0, 1, 2, 3, 4, 16, 17, 255],
        "grids": list(range(14)) + [255],
        "kernel": [0, 3, 4, 8, 12, 16, 64, 252, 255],
        "gain": [0.0, -16.0, 1e-30, 1.0, 8.0, 32.0, 1e30, inf, -inf, nan, 1.5e-45],
        "lane symbols": [0, 1, 2, 63, 64, 65, 200, 16383, 16384, 2 ** 31, 2 ** 31 + 1],
        "flags": [4, 128, 255],
    }
    for c in range(len(s.spec.counts)):
        candidates[f"count {c}"] = [0, 1, 2, 3, 4, 1_000_000, 1_000_001]
    for name, values in candidates.items():
        i = names.index(name)
        for value in values:
            if value == fields[i][2]:
                continue
            edited = [list(f) for f in fields]
            edited[i][2] = value
            fuzz.decoded_or_rejected(join(_write_fields(edited), s.payloads),
                                     f"header {name} {fields[i][2]} -> {value}")
    # Classes added or removed with their counts, and bytes after the last field.
    at = names.index("slice size")
    counts = [f[2] for f in fields if f[0].startswith("count ")]
    for new_counts in (counts + [1], counts[:-1], counts[::-1], [sum(counts)], [1] * sum(counts)):
        if not new_counts:
            continue
        edited = fields[:names.index("classes")] + [["classes", "uv", len(new_counts)]]
        edited += [[f"count {c}", "uv", n] for c, n in enumerate(new_counts)] + fields[at:]
        fuzz.decoded_or_rejected(join(_write_fields(edited), s.payloads), f"header counts {counts} -> {new_counts}")
    fuzz.rejected(join(s.head + b"\x00", s.payloads), "header with a trailing zero byte")
    fuzz.rejected(join(s.head[:-1], s.payloads), "header without its flags byte")
    # The optional fields: normalization (flag 1) and syn_lr (flag 2) change no image; broken ones are refused.
    c = s.spec.channels
    flags = names.index("flags")

    def with_tail(flag: int, tail: bytes) -> bytes:
        edited = [list(f) for f in fields]
        edited[flags][2] = flag
        return join(_write_fields(edited) + tail, s.payloads)

    mean_std = struct.pack(f"<{2 * c}f", *([0.5] * c + [0.25] * c))
    for flag, tail, what in ((1, mean_std, "normalization"), (2, struct.pack("<f", 0.01), "syn_lr"),
                             (3, mean_std + struct.pack("<f", 0.01), "normalization and syn_lr")):
        data = with_tail(flag, tail)
        out = _call(_decompress, data)
        fuzz._timed(what, out, "decompress")
        if out.kind != "ok" or not torch.equal(out.value[0], s.images):
            fuzz._fail(f"header with {what}", f"did not decode to the same images: {out.value!r:.200}", out)
        qset = _call(coding.decode, data)
        if qset.kind == "ok" and (flag & 1) and qset.value.normalization != ((0.5,) * c, (0.25,) * c):
            fuzz._fail(f"header with {what}", f"normalization read back as {qset.value.normalization}")
        if qset.kind == "ok" and (flag & 2) and qset.value.syn_lr != struct.unpack("<f", struct.pack("<f", 0.01))[0]:
            fuzz._fail(f"header with {what}", f"syn_lr read back as {qset.value.syn_lr}")
    bad_tails = [(1, b"", "normalization flag without values"), (2, b"", "syn_lr flag without a value"),
                 (1, mean_std[:-4], "normalization one float short"),
                 (1, mean_std + b"\0", "normalization and a stray byte"),
                 (1, struct.pack(f"<{2 * c}f", *([0.5] * c + [0.0] * c)), "normalization with std 0"),
                 (1, struct.pack(f"<{2 * c}f", *([nan] * c + [0.25] * c)), "normalization with NaN means"),
                 (1, struct.pack(f"<{2 * c}f", *([0.5] * c + [inf] * c)), "normalization with infinite stds"),
                 (2, struct.pack("<f", nan), "syn_lr NaN"), (2, struct.pack("<f", inf), "syn_lr infinite"),
                 (3, struct.pack("<f", 0.01), "both flags, syn_lr only")]
    for flag, tail, what in bad_tails:
        fuzz.rejected(with_tail(flag, tail), f"header with {what}")
    fuzz.finish()


SMALL_FILE_LIMIT_S = 0.5   # a header whose claims no file of this size can hold: refused as fast as it is read
# Decoding work follows the declared size (a valid file may code a long tail of zero-cost latents in
# no words at all), so a file declaring a large set is decoded before its damage shows; bounded here.
DECLARED_SET_LIMIT_S = 10.0

def _claims(s: Sample, counts: list[int], slice_size: int, lane_symbols: int | None = None,
            image: tuple[int, int, int] | None = None) -> bytes:
    """The sample's header with other class counts / slice size / lane length / image shape (CRC valid)."""
    fields = _header_fields(s)
    names = [f[0] for f in fields]
    out = fields[:names.index("classes")] + [["classes", "uv", len(counts)]]
    out += [[f"count {c}", "uv", n] for c, n in enumerate(counts)]
    out += [list(f) for f in fields[names.index("slice size"):]]
    names = [f[0] for f in out]
    out[names.index("slice size")][2] = slice_size
    if lane_symbols is not None:
        out[names.index("lane symbols")][2] = lane_symbols
    if image is not None:
        for name, value in zip(("channels", "height", "width"), image):
            out[names.index(name)][2] = value
    return _write_fields(out)


def test_header_claims_beyond_the_file_are_refused_in_bounded_time(samples, hang_guard, single_thread):
    """A few-KB file whose header claims a huge set: BitstreamError.

    Claims no file of its size can hold (more sections than bytes, more values than MAX_TOTAL_VALUES)
    are refused before anything is allocated. A claim it could hold is decoded before the damage
    shows, in time proportional to the declared set (rANS codes a tail of zero-cost latents in no
    words, so the file's size does not bound a valid set)."""
    s = samples[1]
    fuzz = Fuzz(s, "claims")
    cases = [
        # 20 classes x 10^6 images of 1x1 pixel, one image per slice: 2 * 10^7 slices, no section at all.
        (join(_claims(s, [1_000_000] * 20, 1, image=(1, 1, 1)), []), "2e7 slices, no sections",
         SMALL_FILE_LIMIT_S),
        # 2 classes x 10^6 images of 3x4096x4096: beyond MAX_TOTAL_VALUES.
        (join(_claims(s, [1_000_000, 1], 0, image=(3, 4096, 4096)), [s.payloads[0], s.payloads[2]]),
         "3e13 values", SMALL_FILE_LIMIT_S),
        # class 0 claims 2 * 10^4 images in one slice of one lane (lane length 2^31): decoded, then refused.
        (join(_claims(s, [20_000, 1], 0, lane_symbols=2 ** 31), [s.payloads[0], s.payloads[2]]),
         "class 0 with 2e4 images in one lane", DECLARED_SET_LIMIT_S),
    ]
    for data, what, limit in cases:
        assert len(data) < 5000
        out = _call(_decompress, data)
        fuzz.slowest = max(fuzz.slowest, out.seconds)
        if out.kind != "bitstream":
            fuzz._fail(what, f"decompress gave {out.kind}: {out.value!r:.200}", out)
        if out.seconds > limit:
            fuzz._fail(what, f"a {len(data)}-byte file took {out.seconds:.2f} s to refuse "
                             f"(limit {limit} s): {out.value!r:.160}")
    fuzz.finish()


def _parse_params(payload: bytes) -> tuple[list[int], int, int, int]:
    """(step exponents, lo, hi, end offset of the parameters) of a section payload."""
    r = Reader(payload)
    steps = [r.u8("step") for _ in STEP_FIELDS]
    lo = r.svarint("lo")
    hi = lo + r.uvarint("span")
    return steps, lo, hi, r.pos


def _parse_lane_table(payload: bytes, start: int, lanes: int) -> tuple[list[int], int]:
    r = Reader(payload, start)
    counts = [r.uvarint("lane") for _ in range(lanes)]
    return counts, r.pos


@pytest.mark.parametrize("index", range(len(FILES)), ids=[f.name for f in FILES])
def test_targeted_section_fields_behind_the_crc(samples, index, hang_guard):
    """Steps, latent support, weight methods, lane word counts and lane words, edited with valid CRCs.

    The file with several lanes per slice decodes with the default thread count (lanes of damaged
    streams decoded in parallel), the other single-threaded."""
    s = samples[index]
    with torch_threads(None if max(s.slice_lanes) > 1 else 1):
        _targeted_section_fields(s)


def _targeted_section_fields(s: Sample) -> None:
    fuzz = Fuzz(s, "targeted")
    rng = _rng(s, "targeted")

    def check(target: int, payload: bytes, what: str) -> None:
        payloads = list(s.payloads)
        payloads[target] = payload
        fuzz.decoded_or_rejected(join(s.head, payloads), f"section {target}: {what}")

    def strict(target: int, payload: bytes, what: str) -> None:
        payloads = list(s.payloads)
        payloads[target] = payload
        fuzz.rejected(join(s.head, payloads), f"section {target}: {what} (must be rejected)")

    for target, payload in enumerate(s.payloads):
        steps, lo, hi, params_end = _parse_params(payload)
        rest = payload[params_end:]
        head_steps = bytes(steps)

        # Quantization steps: other valid exponents, the limits, RAW and invalid codes.
        for f, (module, which) in enumerate(STEP_FIELDS):
            top = MAX_EXPONENTS[(module, which)]
            for value in sorted({0, 1, steps[f] - 1, steps[f] + 1, top, top + 1, 100, 254, 255}):
                if 0 <= value <= 255 and value != steps[f]:
                    edited = payload[:f] + bytes([value]) + payload[f + 1:]
                    check(target, edited, f"{module} {'bias' if which else 'weight'} step {steps[f]} -> {value}")

        # Latent support [lo, hi].
        m = MAX_ABS_LATENT
        supports = {(lo + 1, hi), (lo - 1, hi), (lo, hi + 1), (lo, hi - 1), (lo, lo), (hi, hi), (0, 0), (-m, m),
                    (-m - 1, hi), (lo, m + 1), (-m, -m), (m, m), (lo - 100, hi + 100)}
        for new_lo, new_hi in sorted(supports):
            if new_hi < new_lo:
                continue
            edited = head_steps + varint(zigzag(new_lo)) + varint(new_hi - new_lo) + rest
            what = f"latent support [{lo}, {hi}] -> [{new_lo}, {new_hi}]"
            if new_lo < -m or new_hi > m:
                strict(target, edited, what)
            else:
                check(target, edited, what)
        padded = head_steps + bytes([varint(zigzag(lo))[0] | 0x80, 0]) + varint(hi - lo) + rest
        if len(varint(zigzag(lo))) == 1:
            strict(target, padded, "latent support lo as a non-canonical varint")

        # Weight method table: each tensor's nibble set to other methods.
        regions = _section_regions(s, target)
        table_start, _ = regions["method table"]
        for t in range(s.num_tensors):
            byte = table_start + t // 2
            shift = 4 * (t % 2)
            old = (payload[byte] >> shift) & 0xF
            for method in sorted({0, 5, 12, 13, 14, 15, (old + 1) % 16}):
                if method == old:
                    continue
                value = (payload[byte] & ~(0xF << shift) & 0xFF) | (method << shift)
                edited = payload[:byte] + bytes([value]) + payload[byte + 1:]
                check(target, edited, f"tensor {t} coding method {old} -> {method}")

        # Lane word counts and lane words.
        lanes = s.slice_lanes[target]
        table_lo, _ = regions["lane table"]
        counts, words_at = _parse_lane_table(payload, table_lo, lanes)
        before = payload[:table_lo]
        words = [payload[words_at + 4 * sum(counts[:l]):words_at + 4 * sum(counts[:l + 1])] for l in range(lanes)]

        def rebuild(new_counts, new_words=None, before=before, words=words):
            new_words = words if new_words is None else new_words
            return before + b"".join(varint(c) for c in new_counts) + b"".join(new_words)

        assert rebuild(counts) == payload
        for l in range(lanes):
            for delta in (-1, 1):
                if counts[l] + delta >= 0:
                    changed = list(counts)
                    changed[l] += delta
                    strict(target, rebuild(changed), f"lane {l} word count {counts[l]} -> {changed[l]} (total changed)")
            changed = list(counts)
            changed[l] = 0
            strict(target, rebuild(changed, words[:l] + [b""] + words[l + 1:]) + words[l],
                   f"lane {l} word count -> 0, its words left over after the last lane")
            if counts[l] < 0x80:
                table = b"".join(bytes([c | 0x80, 0]) if j == l else varint(c) for j, c in enumerate(counts))
                strict(target, before + table + b"".join(words), f"lane {l} word count as a non-canonical varint")
            # The lane's words: last dropped, a zero word appended, a random word appended, reversed.
            for desc, new in (("last word dropped", words[l][:-4]), ("zero word appended", words[l] + bytes(4)),
                              ("random word appended", words[l] + _random_bytes(rng, 4)),
                              ("first word dropped", words[l][4:]),
                              ("words reversed", b"".join(words[l][j:j + 4] for j in range(len(words[l]) - 4, -1, -4))),
                              ("last word zeroed", words[l][:-4] + bytes(4) if words[l] else b""),
                              ("emptied", b"")):
                if new == words[l]:
                    continue
                changed = list(counts)
                changed[l] = len(new) // 4
                check(target, rebuild(changed, words[:l] + [new] + words[l + 1:]), f"lane {l} {desc}")
        for l in range(lanes - 1):
            # Words moved across a lane boundary (the total stays the same), and two lanes swapped.
            for k in (1, 2):
                if counts[l] >= k:
                    changed = list(counts)
                    changed[l] -= k
                    changed[l + 1] += k
                    check(target, rebuild(changed), f"{k} word(s) moved from lane {l} to lane {l + 1}")
                if counts[l + 1] >= k:
                    changed = list(counts)
                    changed[l] += k
                    changed[l + 1] -= k
                    check(target, rebuild(changed), f"{k} word(s) moved from lane {l + 1} to lane {l}")
            swapped = list(counts)
            swapped[l], swapped[l + 1] = counts[l + 1], counts[l]
            new_words = list(words)
            new_words[l], new_words[l + 1] = words[l + 1], words[l]
            check(target, rebuild(swapped, new_words), f"lanes {l} and {l + 1} swapped")
    # Whole sections swapped between slices (each with its own valid CRC).
    for a in range(len(s.payloads)):
        for b in range(a + 1, len(s.payloads)):
            payloads = list(s.payloads)
            payloads[a], payloads[b] = payloads[b], payloads[a]
            fuzz.decoded_or_rejected(join(s.head, payloads), f"sections {a} and {b} swapped")
    fuzz.finish()


@pytest.mark.parametrize("index", range(len(FILES)), ids=[f.name for f in FILES])
def test_other_classes_damage_does_not_matter(samples, index, hang_guard, single_thread):
    """A damaged section of one class: the other classes still decode, to exactly their latents and weights
    (and their images up to float rounding: the synthesis then runs on a smaller batch)."""
    s = samples[index]
    fuzz = Fuzz(s, "isolation")
    rng = _rng(s, "isolation")
    classes = sorted(set(s.slice_class))
    starts = np.concatenate(([0], np.cumsum(s.spec.counts)))
    for i in range(ISOLATION_PER_FILE):
        damaged = classes[i % len(classes)]
        keep = [c for c in classes if c != damaged]
        sections = [j for j, c in enumerate(s.slice_class) if c == damaged]
        j = sections[int(rng.integers(len(sections)))]
        _, start, end = s.spans[j]
        kind = ("flip", "overwrite")[i % 2]
        data, desc, pos = mutate(rng, s.data, kind, start, end + 4)
        what = f"#{i} {desc} ({fuzz.where(pos)}), decoding classes {keep}"
        out = _call(coding.decode, data, "cpu", keep)
        fuzz._timed(what, out, "decode")
        if out.kind != "ok":
            fuzz._fail(what, f"decode of the undamaged classes failed: {out.value!r}", out)
            continue
        got, ref = out.value, s.qset.subset(keep)
        same = (torch.equal(got.latents, ref.latents) and got.classes == tuple(keep)
                and all(torch.equal(got.steps[m], ref.steps[m]) for m in ref.steps)
                and all(torch.equal(got.tensors[k], ref.tensors[k]) for k in ref.tensors))
        if not same:
            fuzz._fail(what, "the undamaged classes decoded to other latents, steps or weights")
        out = _call(_decompress, data, keep)
        fuzz._timed(what, out, "decompress")
        if out.kind != "ok":
            fuzz._fail(what, f"decompress of the undamaged classes failed: {out.value!r}", out)
            continue
        expected = torch.cat([s.images[starts[c]:starts[c + 1]] for c in keep])
        labels = [c for c in keep for _ in range(s.spec.counts[c])]
        if out.value[1].tolist() != labels or not torch.allclose(out.value[0], expected, rtol=1e-5,
                                                                  atol=1e-6 * float(expected.abs().max())):
            fuzz._fail(what, "the undamaged classes decoded to other images or labels")
        fuzz.rejected(data, what.replace(f", decoding classes {keep}", ", decoding all classes"))
    fuzz.finish()
