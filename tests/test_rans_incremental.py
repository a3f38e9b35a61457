"""IncrementalDecoder: lanes decoded one symbol per step in any interleaving, as a wavefront would."""
from __future__ import annotations

import numpy as np
import pytest

import ddfast.rans as rans
from ddfast.errors import BitstreamError
from test_rans_helpers import laplace_data, random_lane_sizes


def _schedule_decode(decoder, sizes, mu_q, ls_q, seed):
    """Decode every lane in random steps (a random subset of unfinished lanes per step)."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    done = np.zeros(len(sizes), dtype=np.int64)
    out = np.full(int(offsets[-1]), -999, dtype=np.int32)
    while np.any(done < sizes):
        live = np.flatnonzero(done < sizes)
        ids = rng.permutation(live[rng.random(len(live)) < 0.7])
        idx = offsets[ids] + done[ids]
        out[idx] = decoder.decode_step(ids, mu_q[idx], ls_q[idx])
        done[ids] += 1
    return out


def test_random_schedules_match_the_batch_decoder():
    sizes = random_lane_sizes(60, 400, seed=40)
    sym, mu_q, ls_q, _, _ = laplace_data(int(sizes.sum()), -255, 255, seed=41)
    streams = rans.encode(sym, mu_q, ls_q, -255, 255, sizes)
    decoder = rans.IncrementalDecoder(streams, -255, 255)
    assert decoder.num_lanes == len(sizes)
    np.testing.assert_array_equal(_schedule_decode(decoder, sizes, mu_q, ls_q, seed=42), sym)
    assert np.all(decoder.remaining_words() == 0)
    decoder.finish()


def test_bad_steps_leave_every_lane_untouched():
    sizes = np.array([50, 50, 50])
    sym, mu_q, ls_q, _, _ = laplace_data(150, -30, 30, seed=43)
    decoder = rans.IncrementalDecoder(rans.encode(sym, mu_q, ls_q, -30, 30, sizes), -30, 30)
    before = decoder.remaining_words().copy()
    two = mu_q[:2], ls_q[:2]
    with pytest.raises(ValueError, match="lane id 3 at index 1 is outside"):
        decoder.decode_step([0, 3], *two)
    with pytest.raises(ValueError, match="lane id 1 appears twice"):
        decoder.decode_step([1, 1], *two)
    with pytest.raises(ValueError, match="same length"):
        decoder.decode_step([0, 1, 2], *two)
    with pytest.raises(ValueError, match="must hold integers"):
        decoder.decode_step([0, 1], mu_q[:2].astype(float), ls_q[:2])
    np.testing.assert_array_equal(decoder.remaining_words(), before)
    np.testing.assert_array_equal(_schedule_decode(decoder, sizes, mu_q, ls_q, seed=44), sym)
    decoder.finish()


def test_finish_reports_unfinished_and_damaged_lanes():
    sizes = np.array([400, 400])
    sym, mu_q, ls_q, _, _ = laplace_data(800, -255, 255, seed=45)
    streams = rans.encode(sym, mu_q, ls_q, -255, 255, sizes)
    decoder = rans.IncrementalDecoder(streams, -255, 255)
    decoder.decode_step([0, 1], mu_q[[0, 400]], ls_q[[0, 400]])
    with pytest.raises(BitstreamError, match="rANS lane 0: .*words are left over"):
        decoder.finish()
    decoder.finish(strict=False)
    bad = rans.RansStreams(np.append(streams.words, np.uint32(0)), streams.lane_words + [0, 1])
    with pytest.raises(BitstreamError, match="rANS lane 1: its last word is 0"):
        rans.IncrementalDecoder(bad, -255, 255)


def test_torch_inputs_and_constriction_backend():
    torch = pytest.importorskip("torch")
    sizes = np.array([30, 20])
    sym, mu_q, ls_q, _, _ = laplace_data(50, -20, 20, seed=46)
    decoder = rans.IncrementalDecoder(rans.encode(sym, mu_q, ls_q, -20, 20, sizes), -20, 20)
    got = decoder.decode_step(torch.tensor([1, 0]), torch.from_numpy(mu_q[[30, 0]]), torch.from_numpy(ls_q[[30, 0]]))
    assert isinstance(got, torch.Tensor)
    assert got.tolist() == [sym[30], sym[0]]
    ref = rans.encode(sym, mu_q, ls_q, -20, 20, sizes, backend="constriction")
    ref_decoder = rans.IncrementalDecoder(ref, -20, 20, backend="constriction")
    np.testing.assert_array_equal(_schedule_decode(ref_decoder, sizes, mu_q, ls_q, seed=47), sym)
    ref_decoder.finish()
