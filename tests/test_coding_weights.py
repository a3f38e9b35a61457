"""Weight coding: exp-Golomb (native) against the reference count, per-tensor method choice, exact bits."""
import numpy as np
import pytest

from ddfast import _cpu
from ddfast.coding.binary import Reader, Writer
from ddfast.coding.weights import (
    EG_MAX_ORDER,
    METHOD_RANS,
    METHOD_ZERO,
    choose_code,
    coded_bits,
    exp_golomb_bits,
    read_tensors,
    write_tensors,
)
from ddfast.errors import BitstreamError


def _reference_bits(values, k):
    """The reference's count: 2 floor(log2(|s| / 2^k + 1)) + k + 1 + [s != 0]."""
    return sum(2 * int(np.floor(np.log2(abs(int(s)) / 2 ** k + 1))) + k + 1 + (s != 0) for s in values)


def test_exp_golomb_round_trips_and_matches_the_reference_count():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.laplace(0, 40, 500).round(), [0, 1, -1, 65535, -65535, 2 ** 12, 2 ** 12 - 1]])
    values = values.astype(np.int64)
    counts = exp_golomb_bits(values)
    for k in range(EG_MAX_ORDER + 1):
        assert counts[k] == _reference_bits(values, k)
        data = _cpu.eg_encode(values, np.full(len(values), k, np.int32))
        assert len(data) == (counts[k] + 7) // 8
        decoded, end = _cpu.eg_decode(data, 0, np.full(len(values), k, np.int32), 65535)
        np.testing.assert_array_equal(decoded, values)
        assert end == counts[k]


def test_exp_golomb_decoder_refuses_truncated_and_out_of_range_codes():
    orders = np.zeros(3, np.int32)
    data = _cpu.eg_encode(np.array([5, -300, 7]), orders)
    with pytest.raises(ValueError, match="runs past the end"):
        _cpu.eg_decode(data[:2], 0, orders, 65535)
    with pytest.raises(ValueError, match="beyond"):
        _cpu.eg_decode(data, 0, orders, 100)
    with pytest.raises(ValueError, match="overlong prefix"):
        _cpu.eg_decode(bytes(8), 0, np.zeros(1, np.int32), 65535)
    with pytest.raises(ValueError, match="order"):
        _cpu.eg_encode(np.array([1]), np.array([13], np.int32))


def test_each_tensor_gets_its_cheapest_code_and_the_bits_written_are_the_bits_counted():
    rng = np.random.default_rng(1)
    tensors = [
        rng.laplace(0, 30, 3000).round().astype(np.int64),  # large, Laplace-shaped: rANS
        np.zeros(17, np.int64),                              # all zero
        rng.integers(-3, 4, 9),                              # small: exp-Golomb
        rng.laplace(0, 2000, 100).round().clip(-65535, 65535).astype(np.int64),
        np.array([65535, -65535, 0]),
    ]
    codes = [choose_code(t) for t in tensors]
    assert codes[0].method == METHOD_RANS and codes[1].method == METHOD_ZERO and codes[2].method <= EG_MAX_ORDER
    for t, code in zip(tensors, codes):
        eg = 4 + int(exp_golomb_bits(t).min())
        assert code.bits <= eg and coded_bits(t) == code.bits
    out = Writer()
    write_tensors(out, tensors)
    counted = sum(coded_bits(t) for t in tensors)
    # Uncounted: the byte padding of the nibble table (< 8 bits) and of the exp-Golomb bit string (< 8 bits).
    assert counted <= 8 * len(out) < counted + 12
    decoded = read_tensors(Reader(bytes(out.buffer)), [t.size for t in tensors], "test")
    for t, d in zip(tensors, decoded):
        np.testing.assert_array_equal(d, t)


def test_damaged_weight_sections_raise_bitstream_errors():
    tensors = [np.arange(-40, 40, dtype=np.int64) * 7, np.array([3, -1])]
    out = Writer()
    write_tensors(out, tensors)
    data = bytearray(out.buffer)
    with pytest.raises(BitstreamError, match="unknown coding method"):
        read_tensors(Reader(bytes([0xFF]) + bytes(data[1:])), [80, 2], "weights")
    with pytest.raises(BitstreamError, match="truncated|runs past|needs"):
        read_tensors(Reader(bytes(data[:-3])), [80, 2], "weights")
