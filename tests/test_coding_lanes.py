"""Wavefront order and lane plans: coverage, causality, lane sizes, and the native order against the numpy one."""
import numpy as np
import pytest

from ddfast import _cpu, rans
from ddfast.coding.intarm import FREQUENCY_FLOOR
from ddfast.coding.lanes import Geometry, coding_order, lane_plan
from ddfast.errors import ConfigError


def _lane_orders(geometry, plan):
    """Per lane: (slice, slice images, flat indices, steps) in coding order."""
    out = []
    for slice_, image_begin, image_count, lane_begin, lane_count in plan.units.tolist():
        for lane in range(lane_begin, lane_begin + lane_count):
            image, flat, step = coding_order(geometry, image_count, *plan.lanes[lane])
            out.append((slice_, image + image_begin, flat, step))
    return out


@pytest.mark.parametrize("size,grids,context,sizes,lane_symbols", [
    ((32, 32), 6, 16, [64, 64], 16384),   # CIFAR: whole images per lane
    ((32, 32), 6, 16, [7, 1, 3], 2000),   # short last lanes, a one-image slice
    ((13, 9), 4, 8, [5, 3], 50),          # images larger than a lane: several lanes per image
    ((128, 128), 6, 32, [1, 2], 4096),    # ImageNet-sized images cut into row ranges
    ((20, 11), 5, 64, [2], 1),            # one lane per row
])
def test_plan_covers_every_latent_once_in_a_causal_order(size, grids, context, sizes, lane_symbols):
    geometry = Geometry.of(size, grids, context)
    plan = lane_plan(geometry, sizes, lane_symbols)
    seen = [np.zeros((n, geometry.image_latents), dtype=np.int64) for n in sizes]
    step_of = np.zeros(geometry.image_latents, dtype=np.int64)
    for g, (h, w) in enumerate(geometry.grid_shapes):
        r, x = np.divmod(np.arange(h * w), w)
        step_of[geometry.grid_offset[g]:geometry.grid_offset[g + 1]] = x + geometry.shift * r
    for slice_, image, flat, step in _lane_orders(geometry, plan):
        np.add.at(seen[slice_], (image, flat), 1)
        assert np.all(np.diff(step) >= 0)
        assert np.array_equal(step, step_of[flat])
    assert all(np.all(s == 1) for s in seen)
    # Every context position of a latent is decoded at an earlier step.
    for g, (h, w) in enumerate(geometry.grid_shapes):
        for dy, dx in geometry.offsets:
            y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            inside = (y + dy >= 0) & (x + dx >= 0) & (x + dx < w)
            assert np.all((x + dx + geometry.shift * (y + dy))[inside] < (x + geometry.shift * y)[inside])


def test_lanes_hold_at_least_lane_symbols_where_a_slice_has_them():
    geometry = Geometry.of((32, 32), 6, 16)
    m = geometry.image_latents
    plan = lane_plan(geometry, [64, 5, 13], 4 * m)
    per_lane = {}
    for slice_, image, flat, step in _lane_orders(geometry, plan):
        per_lane.setdefault(slice_, []).append(len(flat))
    assert per_lane[0] == [4 * m] * 16
    assert per_lane[1] == [5 * m]          # fewer symbols than one lane: a single lane
    assert sorted(per_lane[2]) == [4 * m, 4 * m, 5 * m]  # 13 images: lanes of 4, 4 and 5
    big = Geometry.of((128, 128), 6, 32)
    plan = lane_plan(big, [2], 5000)
    sizes = [len(f) for _, _, f, _ in _lane_orders(big, plan)]
    assert len(sizes) == 2 * (big.image_latents // 5000) and min(sizes) >= 5000 - 128
    assert plan.units[:, 2].tolist() == [1, 1]  # split images are units of their own
    with pytest.raises(ConfigError, match="lane_symbols"):
        lane_plan(big, [2], 0)


def test_native_lane_encoder_uses_the_numpy_coding_order():
    """Lanes written by the C++ encoder decode with parameters taken in coding_order's order."""
    rng = np.random.default_rng(0)
    geometry = Geometry.of((13, 9), 4, 16)
    sizes = [3, 2]
    plan = lane_plan(geometry, sizes, 60)
    latents = rng.integers(-3, 4, (2, 3, geometry.image_latents)).astype(np.int32)
    latents[1, 2:] = 0
    weights = rng.integers(-200, 200, (2, 2 * 256 + 32)).astype(np.int32)
    biases = rng.integers(-4000, 4000, (2, 2 * 16 + 2)).astype(np.int64)
    grids, offsets = geometry.arrays()
    support = np.array([[-3, 3], [-3, 3]], np.int32)
    words, lane_words = _cpu.latent_encode(latents, weights, biases, 2, grids, offsets, geometry.shift, plan.units,
                                           plan.lanes, support)
    mu, ls = _cpu.latent_arm(latents, weights, biases, 2, grids, offsets, geometry.shift)
    symbols, mus, lss, counts = [], [], [], []
    for slice_, image, flat, _ in _lane_orders(geometry, plan):
        symbols.append(latents[slice_, image, flat])
        mus.append(mu[slice_, image, flat])
        lss.append(ls[slice_, image, flat])
        counts.append(len(flat))
    decoded = rans.decode(rans.RansStreams(words, lane_words), np.concatenate(mus), np.concatenate(lss), -3, 3,
                          np.array(counts), floor=FREQUENCY_FLOOR)
    np.testing.assert_array_equal(decoded, np.concatenate(symbols))
    out, status = _cpu.latent_decode(words, lane_words, weights, biases, 2, grids, offsets, geometry.shift, plan.units,
                                     plan.lanes, support, 2, 3)
    assert not status.any()
    np.testing.assert_array_equal(out, latents)
