"""The .ddf container: the golden file, header fields, and the errors a damaged file gets."""
import hashlib
import json
import zlib
from pathlib import Path

import pytest

import ddfast
from ddfast.codec import CodecConfig
from ddfast.coding import decode, encode, quantize_at
from ddfast.coding.binary import Reader, varint
from ddfast.coding.container import FORMAT_VERSION, MAGIC, Header, read_header, unpack, write_header
from ddfast.errors import BitstreamError

from coding_helpers import FINE_STEPS, content_digest, random_set

GOLDEN = Path(__file__).parent / "data"


def test_golden_file_decodes_to_its_recorded_content_and_re_encodes_to_its_bytes():
    data = (GOLDEN / "golden.ddf").read_bytes()
    record = json.loads((GOLDEN / "golden.json").read_text())
    assert record["format_version"] == FORMAT_VERSION
    assert hashlib.sha256(data).hexdigest() == record["file_sha256"]
    qset = decode(data)
    assert content_digest(qset) == record["content_sha256"]
    assert encode(qset, 64) == data
    images, labels = ddfast.decompress(data)
    assert images.shape == (5, 3, 12, 10) and labels.tolist() == [0, 0, 0, 1, 1]


def test_header_fields_round_trip():
    header = Header(3, (128, 96), (5, 1, 7), 4, CodecConfig(synthesis="v5-320", arm_context=64, arm_depth=3, n_grids=5,
                                                             gain=8.0, upsample_kernel=12),
                    1234, ((0.1, 0.2, 0.3), (0.5, 0.25, 0.125)), 0.0125)
    data = write_header(header)
    back = read_header(Reader(data, where="header"))
    assert back.config == header.config and back.images_per_class == header.images_per_class
    assert back.slice_size == 4 and back.lane_symbols == 1234 and back.image_size == (128, 96)
    assert back.normalization[0] == pytest.approx(header.normalization[0], rel=1e-7)  # stored as float32
    assert back.normalization[1] == header.normalization[1] and back.syn_lr == pytest.approx(0.0125)


@pytest.fixture(scope="module")
def small_file() -> bytes:
    return encode(quantize_at(random_set([3, 2], (12, 10), 3, 16, 2, 2, seed=1), FINE_STEPS), 64)


def _with_crc(data: bytes, start: int, end: int) -> bytes:
    """Recompute the CRC32 stored after data[start:end]."""
    out = bytearray(data)
    out[end:end + 4] = zlib.crc32(bytes(out[start:end])).to_bytes(4, "little")
    return bytes(out)


def test_damage_is_reported_with_what_and_where(small_file):
    data = small_file
    cases = {
        b"PNG\x00" + data[4:]: "not a .ddf file",
        data[:4] + bytes([FORMAT_VERSION + 1]) + data[5:]: "unsupported .ddf format version 2",
        data[:9]: "header",
        data + b"\x00": "unexpected bytes after the last section",
    }
    container = unpack(data)
    first, start, end = container.spans[1]
    flipped = bytearray(data)
    flipped[start + 3] ^= 0x10
    cases[bytes(flipped)] = r"section 1 \(slice 1, class 0\), bytes \d+-\d+: CRC32 mismatch"
    cases[data[:end - 2]] = "section 1"
    header_flip = bytearray(data)
    header_flip[8] ^= 0x01
    cases[bytes(header_flip)] = "header.*CRC32 mismatch"
    for damaged, message in cases.items():
        with pytest.raises(BitstreamError, match=message):
            ddfast.decompress(damaged)
    with pytest.raises(ddfast.ConfigError, match="bytes"):
        ddfast.decompress("not bytes")


def test_header_limits_are_checked_before_anything_is_allocated(small_file):
    head = write_header(Header(1, (8192, 8192), (1_000_000,) * 300, None, CodecConfig(), 16384))
    data = MAGIC + bytes([FORMAT_VERSION]) + varint(len(head)) + head + zlib.crc32(head).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match="too large"):
        ddfast.decompress(data)
    # A damaged section whose CRC was fixed up still fails inside the section, naming it.
    container = unpack(small_file)
    _, start, end = container.spans[0]
    damaged = bytearray(small_file)
    damaged[start] = 200  # the ARM weight step exponent
    with pytest.raises(BitstreamError, match="section 0.*arm weight step exponent 200"):
        ddfast.decompress(_with_crc(bytes(damaged), start, end))


def test_decoder_reports_damaged_lanes(small_file):
    container = unpack(small_file)
    _, start, end = container.spans[2]
    damaged = bytearray(small_file)
    damaged[end - 1] ^= 0x5A  # the last latent word of the last lane
    try:
        ddfast.decompress(_with_crc(bytes(damaged), start, end))
    except BitstreamError as err:
        assert "section 2" in str(err)
    # (a changed word may also decode to other latents: rANS has no redundancy; the CRC catches it)
