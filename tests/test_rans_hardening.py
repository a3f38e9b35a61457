"""The rANS layer at its boundary: what strict decoding guarantees (seeded fuzz), and arguments
that once wrapped, overflowed or raised raw errors."""
from __future__ import annotations

import numpy as np
import pytest

import ddfast.rans as rans
from ddfast.errors import BitstreamError
from test_rans_helpers import laplace_data

LO, HI = -40, 40


def _mutations(words: np.ndarray, mu_q: np.ndarray, ls_q: np.ndarray, rng: np.random.Generator):
    """(kind, words, mu_q, ls_q) of one damaged stream; the words always differ from the valid ones
    except for the wrong-parameters kind."""
    n = len(words)
    kind = ("trunc_front", "trunc_back", "delete", "zero", "flip", "params")[int(rng.integers(6))]
    w = words.copy()
    if kind == "trunc_front":
        w = w[int(rng.integers(1, n + 1)):]
    elif kind == "trunc_back":
        w = w[:n - int(rng.integers(1, n + 1))]
    elif kind == "delete":
        w = np.delete(w, int(rng.integers(n)))
    elif kind == "zero":
        i = int(rng.integers(n))
        w[i] = 0 if w[i] else 1
    elif kind == "flip":
        w[int(rng.integers(n))] ^= np.uint32(1 << int(rng.integers(32)))
    else:
        mu_q = mu_q.copy()
        mu_q[int(rng.integers(len(mu_q)))] += int(rng.integers(1, 2000))
        return kind, w, mu_q, ls_q
    return kind, w, mu_q, ls_q


def test_strict_decoding_accepts_exactly_the_streams_that_re_encode_to_their_words():
    """A few thousand damaged lanes: strict decoding either raises BitstreamError or returns
    symbols whose encoding is exactly the damaged words (rANS has no redundancy, so such a lane is
    a valid stream of other symbols -- what only the .ddf CRCs can catch); the incremental decoder
    agrees with the batch decoder on every one."""
    rng = np.random.default_rng(2026)
    outcomes: dict[str, list[int]] = {}
    for case in range(3000):
        n = int(rng.integers(1, 60))
        sym, mu_q, ls_q, _, _ = laplace_data(n, LO, HI, seed=case, mu_sd=5.0, scale_range=(0.2, 8.0))
        words = rans.encode(sym, mu_q, ls_q, LO, HI).words
        if len(words) == 0:
            continue
        kind, damaged, mu_d, ls_d = _mutations(words, mu_q, ls_q, rng)
        streams = rans.RansStreams.from_lanes([damaged])
        try:
            decoded = rans.decode(streams, mu_d, ls_d, LO, HI)
        except BitstreamError:
            decoded = None
        incremental = rans.IncrementalDecoder(streams, LO, HI) if len(damaged) == 0 or damaged[-1] else None
        if incremental is not None:
            steps = np.array([incremental.decode_step([0], mu_d[i:i + 1], ls_d[i:i + 1])[0] for i in range(n)])
            try:
                incremental.finish()
                assert decoded is not None and np.array_equal(steps, decoded), (case, kind)
            except BitstreamError:
                assert decoded is None, (case, kind)
        else:
            assert decoded is None, (case, kind)  # a zero last word: no valid initial state
        outcomes.setdefault(kind, [0, 0])[decoded is None] += 1
        if decoded is not None:
            again = rans.encode(decoded, mu_d, ls_d, LO, HI).words
            assert np.array_equal(again, damaged), (case, kind)
            if kind == "params" or np.array_equal(damaged, words):
                continue
            assert not np.array_equal(decoded, sym), (case, kind)  # other symbols, never silently the same
    assert set(outcomes) == {"trunc_front", "trunc_back", "delete", "zero", "flip", "params"}
    for kind in ("flip", "params"):  # changed bits or parameters almost never make another valid stream
        accepted, caught = outcomes[kind]
        assert caught > 0.95 * (accepted + caught), outcomes


def test_quantize_params_refuses_means_whose_q8_value_leaves_int32():
    limit = 2.0**23
    for mu in (limit - 0.001, limit - 2.0**-9, -limit - 0.003):
        with pytest.raises(ValueError, match="mu must be finite"):
            rans.quantize_params(np.array([0.0, mu]), np.array([1.0, 1.0]))
    mu_q, _ = rans.quantize_params(np.array([limit - 0.003, -limit - 0.001]), np.array([1.0, 1.0]))
    assert mu_q.tolist() == [2**31 - 1, -(2**31)]


def test_lane_sizes_and_word_counts_that_overflow_are_refused():
    sym, mu_q, ls_q, _, _ = laplace_data(3, LO, HI, seed=1)
    huge = [2**63 - 1, 2**63 - 1, 5]  # the int64 sum wraps to 3
    for backend in ("cpp", "constriction"):
        with pytest.raises(ValueError, match="lane_sizes has an entry of 9223372036854775807"):
            rans.encode(sym, mu_q, ls_q, LO, HI, huge, backend=backend)
    streams = rans.encode(sym, mu_q, ls_q, LO, HI)
    with pytest.raises(ValueError, match="lane_sizes has an entry"):
        rans.decode(streams, mu_q, ls_q, LO, HI, [2**63 - 1, 2**63 - 1, 5], backend="constriction")
    words = np.arange(1, 4, dtype=np.uint32)
    with pytest.raises(ValueError, match="lane_words has an entry of 9223372036854775807, but there are 3 words"):
        rans.RansStreams(words, np.array(huge, dtype=np.int64))


def test_lane_index_is_checked():
    streams = rans.RansStreams(np.arange(1, 4, dtype=np.uint32), np.array([2, 1], dtype=np.int64))
    assert streams.lane(1).tolist() == [3]
    for bad in (2, 5, -1, -3, 1.0, True):
        with pytest.raises(ValueError, match=r"lane index must be an integer in \[0, 2\)"):
            streams.lane(bad)


def test_incremental_constriction_lanes_check_lengths_before_advancing():
    sizes = np.array([3, 2])
    sym, mu_q, ls_q, _, _ = laplace_data(5, LO, HI, seed=3)
    for backend in ("constriction", "cpp"):
        decoder = rans.IncrementalDecoder(rans.encode(sym, mu_q, ls_q, LO, HI, sizes), LO, HI, backend=backend)
        with pytest.raises(ValueError, match="lane_ids, mu_q and logscale_q must have the same length"):
            decoder.decode_step([0, 1], mu_q[[0]], ls_q[[0, 3]])
        got = decoder.decode_step([0, 1], mu_q[[0, 3]], ls_q[[0, 3]])
        assert got.tolist() == [sym[0], sym[3]], backend  # no lane moved on the failed step


def test_ideal_bits_checks_its_symbols_and_shapes():
    with pytest.raises(ValueError, match=r"symbol 100 at index 0 is outside the support \[-8, 8\]"):
        rans.ideal_bits(np.array([100]), 0.0, 1.0, -8, 8)
    with pytest.raises(ValueError, match="symbols must hold integers"):
        rans.ideal_bits(np.array([0.5]), 0.0, 1.0, -8, 8)
    with pytest.raises(ValueError, match="one value per symbol"):
        rans.ideal_bits(np.array([0, 1, 2]), np.zeros(2), 1.0, -8, 8)
    assert rans.ideal_bits(np.array([0, 1]), np.zeros(2), 1.0, -8, 8) == pytest.approx(
        rans.ideal_bits(np.array([0, 1]), 0.0, np.ones(2), -8, 8))
