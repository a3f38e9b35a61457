"""RansStreams: lane views and the byte serialization (varint lane table + little-endian words)."""
from __future__ import annotations

import numpy as np
import pytest

import ddfast.rans as rans
from ddfast.errors import BitstreamError
from test_rans_helpers import laplace_data


def _streams():
    sym, mu_q, ls_q, _, _ = laplace_data(3000, -100, 100, seed=30)
    sizes = np.array([1000, 0, 1, 1999])
    return rans.encode(sym, mu_q, ls_q, -100, 100, sizes), sym, mu_q, ls_q, sizes


def test_bytes_round_trip_and_layout():
    streams, sym, mu_q, ls_q, sizes = _streams()
    data = streams.to_bytes()
    back = rans.RansStreams.from_bytes(data)
    np.testing.assert_array_equal(back.words, streams.words)
    np.testing.assert_array_equal(back.lane_words, streams.lane_words)
    np.testing.assert_array_equal(rans.decode(back, mu_q, ls_q, -100, 100, sizes), sym)
    # layout: varint lane count, varint word counts, then the words little-endian
    assert data[0] == 4
    header = len(data) - 4 * streams.words.size
    assert np.array_equal(np.frombuffer(data[header:], dtype="<u4"), streams.words)


def test_lane_views_are_constriction_streams():
    constriction = pytest.importorskip("constriction")
    streams, sym, mu_q, ls_q, sizes = _streams()
    p = np.diff(rans.laplace_cdf_table(mu_q, ls_q, -100, 100).astype(np.int64), axis=1)
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    model = constriction.stream.model.Categorical(perfect=False)
    for lane in range(streams.num_lanes):
        a, b = bounds[lane], bounds[lane + 1]
        coder = constriction.stream.stack.AnsCoder(streams.lane(lane))
        if b > a:
            np.testing.assert_array_equal(coder.decode(model, (p[a:b] - 1).astype(np.float64)) - 100, sym[a:b])
        assert coder.is_empty()


@pytest.mark.parametrize("counts", [[], [0], [0, 0, 5], [127, 128, 300]])
def test_varint_lane_tables(counts):
    words = np.arange(1, sum(counts) + 1, dtype=np.uint32)
    streams = rans.RansStreams(words, np.array(counts, dtype=np.int64))
    back = rans.RansStreams.from_bytes(streams.to_bytes())
    np.testing.assert_array_equal(back.lane_words, counts)
    np.testing.assert_array_equal(back.words, words)


def test_large_counts_use_multi_byte_varints():
    streams = rans.RansStreams(np.ones(2**21 + 3, dtype=np.uint32), np.array([2**21, 3], dtype=np.int64))
    data = streams.to_bytes()
    assert data[:6] == bytes([2, 0x80, 0x80, 0x80, 0x01, 3])
    assert rans.RansStreams.from_bytes(data).lane_words.tolist() == [2**21, 3]


def test_malformed_bytes_raise_bitstream_error():
    streams, *_ = _streams()
    data = streams.to_bytes()
    cases = [
        (b"", "truncated"),
        (data[:3], "truncated|lane table"),
        (data[:-1], "payload holds"),
        (data + b"\0", "payload holds"),
        (bytes([1, 0x80, 0x00]), "non-canonical"),
        (bytes([1]) + b"\xff" * 10 + b"\x01", "longer than"),
        (bytes([0x90, 0x4e]), "claims 10000 lanes"),
        (bytes([1, 0x90, 0x4e, 0, 0, 0, 0]), "claims a lane of 10000 words"),
    ]
    for blob, match in cases:
        with pytest.raises(BitstreamError, match=match):
            rans.RansStreams.from_bytes(blob)


def test_inconsistent_streams_are_rejected():
    with pytest.raises(ValueError, match="adds up to 3"):
        rans.RansStreams(np.zeros(2, np.uint32), np.array([1, 2], np.int64))
    with pytest.raises(ValueError, match="has an entry of 3, but there are 2 words"):
        rans.RansStreams(np.zeros(2, np.uint32), np.array([3], np.int64))
    with pytest.raises(ValueError, match="uint32"):
        rans.RansStreams(np.zeros(2, np.int32), np.array([2], np.int64))
    with pytest.raises(ValueError, match="negative"):
        rans.RansStreams(np.zeros(2, np.uint32), np.array([3, -1], np.int64))
