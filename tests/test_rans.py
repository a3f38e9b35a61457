"""rANS coder: round trips, the integer model against independent oracles, rate, errors."""
from __future__ import annotations

import numpy as np
import pytest

import ddfast.rans as rans
from ddfast import _cpu
from ddfast.errors import BitstreamError
from test_rans_helpers import laplace_data, load_table_generator, random_lane_sizes, reference_cdf

constriction = pytest.importorskip("constriction")


def _categorical_words(sym, mu_q, ls_q, lo, hi):
    """constriction's AnsCoder + Categorical fed our integer frequencies (oracle of §10)."""
    p = np.diff(rans.laplace_cdf_table(mu_q, ls_q, lo, hi).astype(np.int64), axis=1)
    weights = (p - 1).astype(np.float64)
    coder = constriction.stream.stack.AnsCoder()
    model = constriction.stream.model.Categorical(perfect=False)
    coder.encode_reverse((sym - lo).astype(np.int32), model, weights)
    return coder.get_compressed(), model, weights


# --- round trips -----------------------------------------------------------------------------

def test_roundtrip_many_lanes_sizes_1_to_1e5():
    sizes = np.concatenate((random_lane_sizes(300, 3000, seed=1), [1, 0, 100_000]))
    sym, mu_q, ls_q, _, _ = laplace_data(int(sizes.sum()), -255, 255, seed=2)
    streams = rans.encode(sym, mu_q, ls_q, -255, 255, sizes)
    assert streams.num_lanes == len(sizes)
    assert np.all(streams.lane_words[sizes == 0] == 0)
    out = rans.decode(streams, mu_q, ls_q, -255, 255, sizes)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, sym)


def test_roundtrip_wide_support_2pow15():
    lo, hi = -(2**15), 2**15
    sym, mu_q, ls_q, _, _ = laplace_data(20_000, lo, hi, seed=3, mu_sd=20_000.0, scale_range=(0.01, 400.0))
    rng = np.random.default_rng(4)
    edges = rng.random(len(sym)) < 0.02
    sym[edges] = rng.choice([lo, hi, lo + 1, hi - 1], edges.sum())
    sizes = random_lane_sizes(40, 2000, seed=5)
    sizes[-1] += len(sym) - sizes.sum()
    streams = rans.encode(sym, mu_q, ls_q, lo, hi, sizes)
    np.testing.assert_array_equal(rans.decode(streams, mu_q, ls_q, lo, hi, sizes), sym)


@pytest.mark.parametrize("lo,hi", [(0, 0), (-1, 0), (-3, 5), (100, 300)])
def test_roundtrip_small_and_offset_supports(lo, hi):
    rng = np.random.default_rng(abs(lo) + hi)
    n = 3000
    sym = rng.integers(lo, hi + 1, n).astype(np.int32)
    mu_q = rng.integers(-(2**31), 2**31 - 1, n, dtype=np.int64).astype(np.int32)
    mu_q[::2] = rng.integers((lo - 3) * 256, (hi + 3) * 256 + 1, n // 2 + n % 2)
    ls_q = rng.integers(-3000, 3000, n).astype(np.int32)  # beyond both clamps too
    streams = rans.encode(sym, mu_q, ls_q, lo, hi, [n // 3, 0, n - n // 3])
    np.testing.assert_array_equal(rans.decode(streams, mu_q, ls_q, lo, hi, [n // 3, 0, n - n // 3]), sym)
    if lo == hi:
        assert streams.words.size == 0  # a certain symbol costs nothing


def test_extreme_parameters_and_edge_symbols():
    lo, hi = -255, 255
    mu_vals = [-(2**31), -(2**31) + 1, lo * 256 - 1, lo * 256, 0, hi * 256, hi * 256 + 128, 2**31 - 1]
    ls_vals = [-(2**31), rans.LS_MIN, rans.LS_MIN + 1, 0, rans.LS_MAX - 1, rans.LS_MAX, 2**31 - 1]
    grid_mu, grid_ls, grid_sym = np.meshgrid(mu_vals, ls_vals, [lo, lo + 1, 0, hi - 1, hi], indexing="ij")
    mu_q = grid_mu.ravel().astype(np.int32)
    ls_q = grid_ls.ravel().astype(np.int32)
    sym = grid_sym.ravel().astype(np.int32)
    streams = rans.encode(sym, mu_q, ls_q, lo, hi)
    np.testing.assert_array_equal(rans.decode(streams, mu_q, ls_q, lo, hi), sym)


def test_torch_inputs_give_the_same_words_and_a_tensor_back():
    torch = pytest.importorskip("torch")
    sym, mu_q, ls_q, _, _ = laplace_data(5000, -64, 63, seed=6)
    ref = rans.encode(sym, mu_q, ls_q, -64, 63, [2500, 2500])
    got = rans.encode(torch.from_numpy(sym), torch.from_numpy(mu_q), torch.from_numpy(ls_q), -64, 63,
                      torch.tensor([2500, 2500]))
    np.testing.assert_array_equal(got.words, ref.words)
    out = rans.decode(ref, torch.from_numpy(mu_q), torch.from_numpy(ls_q), -64, 63, [2500, 2500])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int32
    np.testing.assert_array_equal(out.numpy(), sym)


# --- the integer model -------------------------------------------------------------------------

def test_committed_tables_match_the_generator():
    gen = load_table_generator()
    assert gen.HEADER.read_text() == gen.render()


def test_cdf_equals_an_independent_numpy_model():
    gen = load_table_generator()
    rng = np.random.default_rng(7)
    n = 2000
    mu_q = rng.integers(-300 * 256, 300 * 256, n).astype(np.int32)
    mu_q[:10] = [-(2**31), 2**31 - 1, 0, 128, -128, 65280, -65280, 1, -1, 255]
    ls_q = rng.integers(rans.LS_MIN - 200, rans.LS_MAX + 200, n).astype(np.int32)
    for lo, hi in [(-255, 255), (-5, 3)]:
        ours = rans.laplace_cdf_table(mu_q, ls_q, lo, hi)
        np.testing.assert_array_equal(ours, reference_cdf(mu_q, ls_q, lo, hi, gen))


def test_cdf_rows_are_strictly_increasing_from_0_to_2pow24():
    rng = np.random.default_rng(8)
    mu_q = rng.integers(-(2**31), 2**31 - 1, 500, dtype=np.int64).astype(np.int32)
    ls_q = rng.integers(-(2**31), 2**31 - 1, 500, dtype=np.int64).astype(np.int32)
    mu_q[:250] = rng.integers(-70_000, 70_000, 250)
    ls_q[:250] = rng.integers(rans.LS_MIN, rans.LS_MAX + 1, 250)
    cdf = rans.laplace_cdf_table(mu_q, ls_q, -255, 255).astype(np.int64)
    assert np.all(cdf[:, 0] == 0) and np.all(cdf[:, -1] == 2**24)
    assert np.all(np.diff(cdf, axis=1) >= 1)


def test_constriction_categorical_oracle_reproduces_words():
    for lo, hi, n, seed in [(-40, 40, 2000, 9), (-255, 255, 600, 10)]:
        sym, mu_q, ls_q, _, _ = laplace_data(n, lo, hi, seed=seed)
        words, model, weights = _categorical_words(sym, mu_q, ls_q, lo, hi)
        ours = rans.encode(sym, mu_q, ls_q, lo, hi)
        np.testing.assert_array_equal(ours.words, words)
        decoded = constriction.stream.stack.AnsCoder(ours.words).decode(model, weights)
        np.testing.assert_array_equal(decoded + lo, sym)


def test_decoding_past_the_end_matches_constriction():
    sym, mu_q, ls_q, _, _ = laplace_data(400, -20, 20, seed=11)
    streams = rans.encode(sym[:300], mu_q[:300], ls_q[:300], -20, 20)
    ours = rans.decode(streams, mu_q, ls_q, -20, 20, strict=False)
    np.testing.assert_array_equal(ours[:300], sym[:300])
    _, model, weights = _categorical_words(sym, mu_q, ls_q, -20, 20)
    theirs = constriction.stream.stack.AnsCoder(streams.words).decode(model, weights) - 20
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(rans.decode(streams, mu_q, ls_q, -20, 20, strict=False), ours)


def test_constriction_backend_round_trip_and_similar_size():
    sym, mu_q, ls_q, _, _ = laplace_data(20_000, -255, 255, seed=12)
    ref = rans.encode(sym, mu_q, ls_q, -255, 255, [10_000, 10_000], backend="constriction")
    out = rans.decode(ref, mu_q, ls_q, -255, 255, [10_000, 10_000], backend="constriction")
    np.testing.assert_array_equal(out, sym)
    ours = rans.encode(sym, mu_q, ls_q, -255, 255, [10_000, 10_000])
    assert abs(ours.num_bits - ref.num_bits) <= 0.001 * ref.num_bits + 64


def test_size_within_0p01_percent_plus_64_bits_per_lane_of_ideal():
    sym, mu_q, ls_q, mu, b = laplace_data(200_000, -255, 255, seed=13)
    ideal = rans.ideal_bits(sym, mu, b, -255, 255)
    for lanes in (1, 16):
        sizes = np.full(lanes, len(sym) // lanes)
        bits = rans.encode(sym, mu_q, ls_q, -255, 255, sizes).num_bits
        assert bits <= ideal * 1.0001 + 64 * lanes, (lanes, bits, ideal)
    model = rans.model_bits(sym, mu_q, ls_q, -255, 255)
    assert abs(model - ideal) <= 1e-4 * ideal


def test_ideal_bits_matches_a_direct_sum():
    sym, _, _, mu, b = laplace_data(1000, -10, 10, seed=14)

    def cdf(t):
        return np.where(t < mu, 0.5 * np.exp((t - mu) / b), 1 - 0.5 * np.exp(-(t - mu) / b))

    upper = np.where(sym >= 10, 1.0, cdf(sym + 0.5))
    lower = np.where(sym <= -10, 0.0, cdf(sym - 0.5))
    direct = -np.log2(upper - lower).sum()
    assert rans.ideal_bits(sym, mu, b, -10, 10) == pytest.approx(direct, rel=1e-9)


def test_quantize_params_round_trip():
    mu_q, ls_q = rans.quantize_params(np.array([0.0, -1.5, 3.0]), np.array([1.0, np.e, 1e-9]))
    np.testing.assert_array_equal(mu_q, [0, -384, 768])
    np.testing.assert_array_equal(ls_q, [0, 256, rans.LS_MIN])
    assert rans.quantize_params(2.0, 1.0) == (512, 0)
    mu, b = rans.dequantize_params(mu_q, ls_q)
    np.testing.assert_allclose(b, [1.0, np.e, np.exp(-5)])


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mu,scale,match", [
    (0.0, np.nan, "scale must be finite and > 0"),
    (0.0, np.inf, "scale must be finite and > 0"),
    (0.0, -1.0, "scale must be finite and > 0"),
    (0.0, 0.0, "scale must be finite and > 0"),
    (np.nan, 1.0, "mu must be finite"),
    (1e9, 1.0, "mu must be finite"),
])
def test_quantize_params_rejects_bad_floats(mu, scale, match):
    with pytest.raises(ValueError, match=match):
        rans.quantize_params(np.array([1.0, mu]), np.array([1.0, scale]))


def test_bad_arguments_raise_value_error():
    sym, mu_q, ls_q, _, _ = laplace_data(100, -10, 10, seed=15)
    cases = [
        (lambda: rans.encode(np.append(sym[:-1], 11), mu_q, ls_q, -10, 10),
         r"symbol 11 at index 99 is outside the support \[-10, 10\]"),
        (lambda: rans.encode(sym, mu_q[:-1], ls_q, -10, 10), "array lengths differ"),
        (lambda: rans.encode(sym, mu_q, ls_q, 5, 4), "empty support: lo=5 > hi=4"),
        (lambda: rans.encode(sym, mu_q, ls_q, -(2**20), 2**20), "too wide"),
        (lambda: rans.encode(sym, mu_q, ls_q, -10, 10, [50, 49]), "lane_sizes adds up to 99"),
        (lambda: rans.encode(sym, mu_q, ls_q, -10, 10, [101, -1]), "negative"),
        (lambda: rans.encode(sym, mu_q.astype(float), ls_q, -10, 10), "mu_q must hold integers"),
        (lambda: rans.encode(sym, mu_q.astype(np.int64) + 2**40, ls_q, -10, 10), "outside the int32 range"),
        (lambda: rans.encode(sym.reshape(10, 10), mu_q, ls_q, -10, 10), "one-dimensional"),
        (lambda: rans.encode(sym, mu_q, ls_q, -10.5, 10), "must be integers"),
        (lambda: rans.encode(sym, mu_q, ls_q, -10, 10, backend="gpu"), "unknown rANS backend"),
        (lambda: rans.decode(rans.encode(sym, mu_q, ls_q, -10, 10), mu_q, ls_q, -10, 10, [50, 50]),
         "lane_sizes has 2 lanes, the streams have 1"),
        (lambda: rans.decode(rans.encode(sym, mu_q, ls_q, -10, 10), mu_q, ls_q[:5], -10, 10),
         "array lengths differ"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_native_module_rejects_bad_arguments_without_crashing():
    sym, mu_q, ls_q, _, _ = laplace_data(10, -10, 10, seed=16)
    one = np.array([10], dtype=np.int64)
    with pytest.raises(ValueError, match="differ in length"):
        _cpu.rans_encode(sym, mu_q[:5], ls_q, one, -10, 10)
    with pytest.raises(ValueError, match="outside the support"):
        _cpu.rans_encode(sym * 5, mu_q, ls_q, one, -10, 10)
    with pytest.raises(ValueError, match="adds up to"):
        _cpu.rans_decode(np.zeros(3, np.uint32), np.array([5], np.int64), mu_q, ls_q, one, -10, 10)
    with pytest.raises(ValueError, match="too wide"):
        _cpu.laplace_cdf(mu_q, ls_q, -(2**40), 0)
    with pytest.raises(ValueError, match="too large"):
        _cpu.laplace_cdf(np.zeros(2**12, np.int32), np.zeros(2**12, np.int32), -(2**18), 2**18)
    with pytest.raises(TypeError):
        _cpu.rans_encode(sym.astype(np.float64), mu_q, ls_q, one, -10, 10)


def test_damaged_streams_raise_bitstream_error():
    sym, mu_q, ls_q, _, _ = laplace_data(5000, -255, 255, seed=17)
    words = rans.encode(sym, mu_q, ls_q, -255, 255).words
    assert len(words) > 100

    def decode(w, **kw):
        return rans.decode(rans.RansStreams.from_lanes([w]), mu_q, ls_q, -255, 255, **kw)

    cases = [
        (words[:-1], "rANS lane 0: "),                 # the final state cut short
        (np.append(words, np.uint32(0)), "last word is 0"),
        (np.append(np.uint32(7), words), "rANS lane 0: "),
        (np.append(words[:200], words[201:]), "rANS lane 0"),
    ]
    for w, match in cases:
        with pytest.raises(BitstreamError, match=match):
            decode(w)
    with pytest.raises(BitstreamError, match="last word is 0"):
        decode(np.append(words, np.uint32(0)), strict=False)
    with pytest.raises(BitstreamError, match="words are left over"):
        rans.decode(rans.RansStreams.from_lanes([words]), mu_q[:2000], ls_q[:2000], -255, 255)
    decode(words[:-1], strict=False)  # without strict: deterministic output, no error
    with pytest.raises(BitstreamError, match="not end"):
        rans.decode(rans.RansStreams.from_lanes([words[:-1]]), mu_q, ls_q, -255, 255, backend="constriction")


def test_strict_check_catches_most_bit_flips_and_never_crashes():
    # rANS has no redundancy: a flip can turn the stream into another valid one (the .ddf
    # container's CRC covers that); the strict end check and the refill check catch most.
    sym, mu_q, ls_q, _, _ = laplace_data(3000, -255, 255, seed=18)
    words = rans.encode(sym, mu_q, ls_q, -255, 255).words
    rng = np.random.default_rng(19)
    caught = 0
    for _ in range(100):
        w = words.copy()
        w[rng.integers(len(w))] ^= np.uint32(1 << int(rng.integers(32)))
        try:
            rans.decode(rans.RansStreams.from_lanes([w]), mu_q, ls_q, -255, 255)
        except BitstreamError:
            caught += 1
    assert caught >= 50


def test_garbage_streams_decode_deterministically_within_bounds():
    rng = np.random.default_rng(20)
    mu_q = rng.integers(-5000, 5000, 4000).astype(np.int32)
    ls_q = rng.integers(rans.LS_MIN, rans.LS_MAX, 4000).astype(np.int32)
    sizes = np.full(40, 100)
    for trial in range(5):
        lane_words = rng.integers(0, 30, 40)
        words = rng.integers(1, 2**32, lane_words.sum(), dtype=np.uint64).astype(np.uint32)
        streams = rans.RansStreams(words, lane_words.astype(np.int64))
        first = rans.decode(streams, mu_q, ls_q, -300, 300, sizes, strict=False)
        again = rans.decode(streams, mu_q, ls_q, -300, 300, sizes, strict=False)
        np.testing.assert_array_equal(first, again)
        assert first.min() >= -300 and first.max() <= 300
