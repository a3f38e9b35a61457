"""The batched multi-slice codec against its per-slice reference twin, causality, layout, API errors."""
import pytest
import torch

import ddfast
from ddfast.codec import CodecConfig, SliceLayout, SyntheticSet
from ddfast.codec.reference import slice_contexts, slice_forward
from ddfast.ops import torch_ops

SMALL = CodecConfig(synthesis="v4-40", arm_context=16, arm_depth=2)


def _randomize(syn: SyntheticSet, seed: int) -> None:
    """Give every weight (including the zero-initialized ones) random values, so tests see them all."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in syn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        syn.stack.latents.mul_(4.0)


@pytest.mark.parametrize("counts,slice_size,image_size,channels,context", [
    ([4, 4, 4], None, (16, 16), 3, 16),
    ([7, 3], 3, (13, 9), 1, 8),           # a split class (7 -> 3 + 2 + 2) and odd sizes
    ([5, 1, 6], 4, (20, 11), 3, 32),
    ([2], None, (7, 5), 3, 64),
])
def test_batched_forward_equals_per_slice_loop(counts, slice_size, image_size, channels, context):
    cfg = CodecConfig(synthesis="v5-240", arm_context=context, arm_depth=3)
    syn = SyntheticSet(counts, image_size, channels=channels, config=cfg, slice_size=slice_size)
    _randomize(syn, 0)
    for training in (False, True):
        syn.train(training)
        gen = torch.Generator().manual_seed(5)
        noise = syn.quantizer.sample_noise(syn.stack.latents, gen)
        images, labels, bits = syn.forward_with_rate(noise=noise)
        quantized = syn.quantized_latents(noise=noise)
        ref_images, ref_bits = [], []
        for i, size in enumerate(syn.layout.slice_sizes):
            img, b = slice_forward(syn.stack, i, quantized[i], size)
            ref_images.append(img)
            ref_bits.append(b.sum())
        reference = torch.cat(ref_images)
        assert torch.allclose(images, reference, atol=1e-5 * reference.abs().max().item(), rtol=1e-5)
        assert torch.allclose(bits, torch.stack(ref_bits), rtol=1e-5)
        assert labels.tolist() == [c for c, n in enumerate(counts) for _ in range(n)]


def test_batched_gradients_equal_per_slice_loop():
    syn = SyntheticSet([5, 2], (12, 10), channels=3, config=SMALL, slice_size=3).double()
    _randomize(syn, 1)
    weights = torch.randn(7, 3, 12, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noise = syn.quantizer.sample_noise(syn.stack.latents, torch.Generator().manual_seed(3))
    images, _, bits = syn.forward_with_rate(noise=noise)
    ((images * weights).sum() + 0.01 * bits.sum()).backward()
    batched = [p.grad.clone() for p in syn.parameters()]
    assert all(g.abs().sum() > 0 for g in batched)
    syn.zero_grad()
    quantized = syn.quantized_latents(noise=noise)
    start = 0
    for i, size in enumerate(syn.layout.slice_sizes):
        img, b = slice_forward(syn.stack, i, quantized[i], size)
        ((img * weights[start:start + size]).sum() + 0.01 * b.sum()).backward(retain_graph=True)
        start += size
    for got, (name, p) in zip(batched, syn.named_parameters()):
        assert torch.allclose(got, p.grad, atol=1e-9 * p.grad.abs().max().item(), rtol=1e-8), name


@pytest.mark.parametrize("context", [8, 16, 24, 32, 64])
def test_rate_is_causal_by_perturbation(context):
    """mu and scale at a position never depend on that latent or later ones (raster order, same grid)."""
    cfg = CodecConfig(synthesis="v4-40", arm_context=context, arm_depth=2)
    syn = SyntheticSet(2, (9, 11), num_classes=2, channels=3, config=cfg)
    _randomize(syn, 3)
    stack = syn.stack
    q = torch.round(stack.latents.detach() * 16).reshape(4, -1)
    shapes = stack.grid_shapes

    def params(latents):
        ctx = torch_ops.gather_context(latents, shapes, stack.context_offsets)
        mu, s = stack.arm(ctx.reshape(2, 2 * q.shape[1], -1))
        return torch.stack([mu, s], -1).reshape(4, q.shape[1], 2)

    base = params(q)
    grid_start = 0
    checked_influence = False
    for h, w in shapes[:3]:
        for pos in [0, (h // 2) * w + w // 2, h * w - 1]:
            target = grid_start + pos
            bumped = q.clone()
            bumped[1, target] += 7.0
            moved = (params(bumped) - base).abs().amax(-1)
            assert moved[[0, 2, 3]].max() == 0, "other images must not move"
            assert moved[1, :target + 1].max() == 0, "earlier positions and the latent itself must not move"
            assert moved[1, grid_start + h * w:].max() == 0, "other grids must not move"
            later = moved[1, target + 1:grid_start + h * w]
            checked_influence |= bool(later.numel() and later.max() > 0)
        grid_start += h * w
    assert checked_influence, "a perturbation should reach some later position"


def test_unfold_contexts_equal_shifted_contexts():
    shapes = [(5, 3), (3, 2), (1, 1), (33, 17)]
    m = sum(h * w for h, w in shapes)
    latents = torch.randn(4, m)
    for c in (8, 16, 24, 32, 64):
        offsets = ddfast.codec.context_offsets(c)
        assert torch.equal(torch_ops.gather_context(latents, shapes, offsets),
                           slice_contexts(latents, shapes, offsets))


def test_rate_bits_measure_the_latest_forward():
    syn = SyntheticSet(3, 8, num_classes=2, channels=1, config=SMALL)
    syn.train()
    noise = syn.quantizer.sample_noise(syn.stack.latents, torch.Generator().manual_seed(0))
    syn(noise=noise)
    bits_after_forward = syn.rate_bits()
    expected = syn.stack.rate(syn.quantized_latents(noise=noise)).sum(dim=(1, 2))
    assert torch.allclose(bits_after_forward, expected)
    with torch.no_grad():
        syn.stack.latents.add_(0.3)  # an optimizer step: the cached quantization is stale now
    assert not torch.allclose(syn.rate_bits(), bits_after_forward)


def test_eval_mode_decodes_integer_latents_deterministically():
    syn = SyntheticSet(2, 8, num_classes=2, channels=3, config=SMALL).eval()
    q = syn.quantized_latents()
    assert torch.equal(q, torch.round(q))
    first, _ = syn()
    levels = first.double() * 65535
    assert torch.allclose(levels, levels.round(), atol=1e-2)  # 16-bit output levels
    second, _ = syn()
    assert torch.equal(first, second)
    syn.train()
    noisy, _ = syn()
    assert not torch.equal(noisy, first)


def test_layout_splits_classes_evenly_and_never_empty():
    layout = SliceLayout.build([718, 10], slice_size=360)
    assert layout.slice_sizes == (359, 359, 10) and layout.slice_class == (0, 0, 1)
    exact = SliceLayout.build([8, 8], slice_size=4)
    assert exact.slice_sizes == (4, 4, 4, 4)
    assert SliceLayout.build([7], slice_size=3).slice_sizes == (3, 2, 2)
    assert SliceLayout.build([5, 3]).labels().tolist() == [0] * 5 + [1] * 3


def test_split_class_images_are_class_major():
    syn = SyntheticSet([5, 2], 8, channels=1, config=SMALL, slice_size=2).eval()
    images, labels = syn()
    assert images.shape == (7, 1, 8, 8) and labels.tolist() == [0] * 5 + [1] * 2
    assert syn.num_slices == 4
    assert torch.equal(syn.class_bits(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([6.0, 4.0]))


def test_synthetic_set_configuration_errors():
    with pytest.raises(ddfast.ConfigError, match="num_classes"):
        SyntheticSet(3, 8)
    with pytest.raises(ddfast.ConfigError, match="at least one image"):
        SyntheticSet([3, 0], 8)
    with pytest.raises(ddfast.ConfigError, match="slice_size"):
        SyntheticSet([3], 8, slice_size=0)
    with pytest.raises(ddfast.ConfigError, match="image_size"):
        SyntheticSet([3], (8, 0))
    with pytest.raises(ddfast.ConfigError, match="unknown ops backend 'gpu'"):
        SyntheticSet([3], 8, backend="gpu")
    with pytest.raises(ddfast.ConfigError, match="arm_depth"):
        CodecConfig(arm_depth=-1)
    with pytest.raises(ddfast.ConfigError, match="upsample_kernel"):
        CodecConfig(upsample_kernel=7)
    with pytest.raises(ddfast.ConfigError, match="unknown CodecConfig fields"):
        CodecConfig.from_dict({"synthesis": "v4-40", "colour": 1})


def test_parameter_counts_of_a_slice():
    syn = SyntheticSet(4, 32, num_classes=10, config=CodecConfig(synthesis="v4-480", arm_context=32, arm_depth=4))
    counts = syn.num_parameters()
    assert counts == {"arm": 4 * (32 * 32 + 32) + 2 * 32 + 2, "upsampling": 64, "synthesis": 4971}
    assert counts["arm"] == 4290  # reference/codec.md section 2.9
    assert syn.num_latents() == 40 * sum(h * w for h, w in syn.stack.grid_shapes)
