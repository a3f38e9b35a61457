"""The .ddf round trip: exact integers and images for many shapes, class subsets, the reference decoder,
the constriction oracle, sizes, determinism."""
import numpy as np
import pytest
import torch

import ddfast
from ddfast.coding import decode, encode, post_quantize, quantize_at
from ddfast.coding.decoder import parse
from ddfast.coding.intarm import FREQUENCY_FLOOR, arm_reference, split_layers
from ddfast.coding.lanes import coding_order
from ddfast.coding.reference import decode_slice_latents, decompress_reference
from ddfast.ops.torch_ops import neighbour_index
from ddfast.rans import laplace_cdf_table

from coding_helpers import FINE_STEPS, random_set

SHAPES = {  # counts, image size, channels, context, depth, slice size, synthesis, lane symbols
    "c8-rgb-split": ([5, 3], (13, 9), 3, 8, 1, 2, "v4-40", 64),
    "c16-gray": ([4, 4, 4], (28, 28), 1, 16, 2, None, "v4-160", 16384),
    "c32-split-odd": ([7, 1], (20, 11), 3, 32, 3, 3, "v5-240", 200),
    "c64-one-image": ([1, 1], (17, 30), 3, 64, 2, None, "v4-40", 500),
    "c16-spc100": ([100], (8, 8), 1, 16, 4, None, "v4-40", 1000),
    "c24-depth0": ([2, 3], (9, 7), 3, 24, 0, None, "v4-40", 16384),
}


def _check_round_trip(syn, qset, lane_symbols):
    data = encode(qset, lane_symbols)
    back = decode(data)
    assert torch.equal(back.latents, qset.latents)
    for name, values in qset.tensors.items():
        assert torch.equal(back.tensors[name], values), name
        assert torch.equal(back.integers(name), qset.integers(name))
    for module, steps in qset.steps.items():
        assert torch.equal(back.steps[module], steps)
    images, labels = ddfast.decompress(data)
    expected_images, expected_labels = qset.to_synthetic_set()()
    assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
    assert len(data) == ddfast.inspect(data, estimate=False).total_bytes
    return data


@pytest.mark.parametrize("name", SHAPES)
def test_round_trip_is_exact(name):
    counts, size, channels, context, depth, slice_size, synthesis, lane_symbols = SHAPES[name]
    syn = random_set(counts, size, channels, context, depth, slice_size, synthesis, seed=len(name))
    data = _check_round_trip(syn, quantize_at(syn, FINE_STEPS), lane_symbols)
    assert encode(decode(data), lane_symbols) == data  # re-encoding the decoded set gives the same bytes


def test_round_trip_after_the_post_quantization_search_and_with_float32_modules():
    syn = random_set([3, 2], (12, 10), 3, 16, 2, 2, seed=7)
    qset = post_quantize(syn, 5e-6)
    _check_round_trip(syn, qset, 100)
    raw = post_quantize(syn, 1e-30)  # no step passes: synthesis and upsampling stay float32
    assert (raw.steps["synthesis"][:, 0] == 255).all()
    _check_round_trip(syn, raw, 100)


def test_class_subsets_decode_alone_with_their_own_labels():
    syn = random_set([3, 5, 2], (10, 9), 1, 16, 2, 2, seed=8)
    data = encode(quantize_at(syn, FINE_STEPS), 80)
    images, labels = ddfast.decompress(data)
    part_images, part_labels = ddfast.decompress(data, classes=[2, 0])
    keep = (labels == 0) | (labels == 2)
    assert torch.equal(part_images, images[keep]) and torch.equal(part_labels, labels[keep])
    part = decode(data, classes=[1])
    assert part.class_ids == (1,) and part.images_per_class == (5,)
    for bad in ([3], [0, 0], [], ["x"]):
        with pytest.raises(ddfast.ConfigError, match="classes"):
            ddfast.decompress(data, classes=bad)


def test_header_metadata_round_trips():
    syn = random_set([2, 2], (8, 8), 3, 8, 1, seed=9)
    syn.metadata["normalization"] = ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])
    data = ddfast.compress(syn, 5e-5, syn_lr=0.01)
    q = decode(data)
    assert q.normalization[0] == pytest.approx((0.4914, 0.4822, 0.4465), rel=1e-6)
    assert q.syn_lr == pytest.approx(0.01)
    info = ddfast.inspect(data)
    assert info.normalization == q.normalization and info.syn_lr == q.syn_lr
    with pytest.raises(ddfast.ConfigError, match="normalization"):
        ddfast.compress(syn, normalization=([0.5], [0.2]))
    with pytest.raises(ddfast.ConfigError, match="lane_symbols"):
        ddfast.compress(syn, lane_symbols=0)


def test_fast_decoder_equals_the_plain_reference_decoder():
    syn = random_set([3, 2], (13, 9), 3, 32, 2, 2, seed=10)
    data = encode(quantize_at(syn, FINE_STEPS), 60)
    fast = decode(data)
    parsed = parse(data)
    arm = fast.fixed_point_arm()
    for j, n in enumerate(fast.layout.slice_sizes):
        np.testing.assert_array_equal(decode_slice_latents(parsed, arm, j), fast.latents[j, :n].numpy())
    images, labels = ddfast.decompress(data)
    ref_images, ref_labels = decompress_reference(data)
    assert torch.equal(labels, ref_labels)
    assert (images - ref_images).abs().max() <= 2 / 65535


def test_latent_lanes_decode_with_constriction_driven_by_the_integer_arm():
    """Independent oracle: constriction's AnsCoder with a Categorical model whose rows are the integer
    model's frequencies (weights p - 1, see the entropy-coding notes), fed autoregressively with the
    integer ARM's (MU, LS) from the torch twin."""
    constriction = pytest.importorskip("constriction")
    syn = random_set([2, 1], (7, 6), 1, 16, 2, 2, seed=11)
    qset = quantize_at(syn, FINE_STEPS)
    data = encode(qset, 40)
    parsed = parse(data)
    weights, biases = qset.fixed_point_arm()
    g = parsed.geometry
    neighbours = neighbour_index(g.grid_shapes, g.offsets)
    for j, content in enumerate(parsed.data):
        lo, hi = content.support
        layer_w, layer_b = split_layers(weights[j], biases[j], 16, 2)
        latents = torch.zeros(qset.layout.slice_sizes[j], g.image_latents + 1, dtype=torch.int64)
        bounds = np.concatenate(([0], np.cumsum(content.lane_words)))
        first = parsed.plan.slice_lanes[j][0]
        for _, image_begin, image_count, lane_begin, lane_count in parsed.plan.units[parsed.plan.units[:, 0] == j]:
            for lane in range(lane_begin, lane_begin + lane_count):
                words = content.words[bounds[lane - first]:bounds[lane - first + 1]]
                coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, np.uint32))
                images, flats, _ = coding_order(g, image_count, *parsed.plan.lanes[lane])
                for image, flat in zip(images + image_begin, flats):
                    mu, ls = arm_reference(latents[image, neighbours[flat]].reshape(1, -1), layer_w, layer_b)
                    row = laplace_cdf_table(mu.numpy().astype(np.int32), ls.numpy().astype(np.int32), lo, hi,
                                            floor=FREQUENCY_FLOOR)
                    probabilities = np.diff(row[0].astype(np.float64)) - 1.0
                    model = constriction.stream.model.Categorical(perfect=False)
                    latents[image, flat] = int(coder.decode(model, probabilities[None, :])[0]) + lo
                assert coder.is_empty()
        np.testing.assert_array_equal(latents[:, :-1].numpy(), qset.latents[j, :qset.layout.slice_sizes[j]].numpy())


def test_file_size_is_itemized_and_overhead_is_small():
    syn = random_set([16, 16, 16, 16], (32, 32), 3, 16, 4, None, "v4-480", seed=12, latent_scale=1.0)
    data = ddfast.compress(syn, 5e-7)
    info = ddfast.inspect(data)
    assert sum(info.bytes.values()) == len(data) == info.total_bytes
    assert info.bytes_per_class == len(data) / 4
    assert info.overhead_per_slice <= 64
    per_slice = [sum(v for k, v in s.bytes.items() if k not in ("weights", "latents")) for s in info.slices]
    assert max(per_slice) <= 64
    # Real latent bytes against the integer model's code length and the float estimate.
    assert 8 * info.bytes["latents"] >= info.latent_bits
    assert 8 * info.bytes["latents"] <= 1.02 * info.estimated_latent_bits


def test_encoding_is_deterministic():
    syn = random_set([3, 2], (12, 10), 3, 16, 2, 2, seed=13)
    assert ddfast.compress(syn, 5e-6) == ddfast.compress(syn, 5e-6)
