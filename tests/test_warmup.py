"""Phase 1 (init_from_data): batched multi-candidate warm-up and per-slice gradient clipping."""
import pytest
import torch

import ddfast
from ddfast.codec import CodecConfig, CodecStack, SyntheticSet, clip_grad_norm_per_slice
from ddfast.codec.quantizer import WARMUP_QUANTIZER
from ddfast.codec.warmup import _Targets, slice_losses

TINY = CodecConfig(synthesis="v4-40", arm_context=8, arm_depth=1)


def _smooth_images(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 4, 4, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_clip_grad_norm_per_slice_clips_each_slice_independently():
    a = torch.zeros(3, 4, requires_grad=True)
    b = torch.zeros(3, 2, 2, requires_grad=True)
    a.grad = torch.tensor([[3.0, 4.0, 0, 0], [0.03, 0.04, 0, 0], [1.0, 0, 0, 0]])
    b.grad = torch.zeros(3, 2, 2)
    norms = clip_grad_norm_per_slice([a, b], 0.1)
    assert torch.allclose(norms, torch.tensor([5.0, 0.05, 1.0]))
    assert torch.allclose(a.grad[0].norm(), torch.tensor(0.1), atol=1e-6)
    assert torch.allclose(a.grad[1], torch.tensor([0.03, 0.04, 0, 0]))  # already below the limit
    assert torch.allclose(a.grad[2].norm(), torch.tensor(0.1), atol=1e-6)


def test_warm_up_fits_images_and_keeps_the_best_candidate():
    torch.manual_seed(0)
    syn = SyntheticSet([3, 2, 2], 16, channels=1, config=TINY, slice_size=2,
                       generator=torch.Generator().manual_seed(1))
    images = {c: _smooth_images(3, 1, 16, seed=c) for c in range(3)}
    targets = syn.slice_targets(images)
    report = syn.init_from_data(images, beta=1e3, candidates=(3, 2), iterations=(25, 25),
                                generator=torch.Generator().manual_seed(2), progress=False)
    assert report.loss.shape == (syn.num_slices,)
    assert len(report.phase_losses) == 2 and report.phase_losses[0].shape == (3 * syn.num_slices,)
    # The winner of each slice is the best final candidate, and it is what syn now decodes.
    best_final = report.phase_losses[1].reshape(syn.num_slices, 2).min(dim=1).values
    assert torch.allclose(report.loss, best_final, rtol=1e-5)
    syn.eval()
    with torch.no_grad():
        decoded, _ = syn()
    flat_targets = targets[syn.valid]
    mse_after = (decoded - flat_targets).pow(2).mean()
    fresh = SyntheticSet([3, 2, 2], 16, channels=1, config=TINY, slice_size=2).eval()
    with torch.no_grad():
        mse_before = (fresh()[0] - flat_targets).pow(2).mean()
    assert mse_after < 0.5 * mse_before
    assert (report.psnr > 10 * torch.log10(1 / mse_before)).all()


def test_warm_up_in_chunks_matches_shapes_and_improves():
    torch.manual_seed(1)
    syn = SyntheticSet(2, 12, num_classes=2, channels=3, config=TINY)
    images = [_smooth_images(2, 3, 12, seed=c) for c in range(2)]
    targets = _Targets(syn.slice_targets(images), syn.valid, syn.num_pixels_per_slice.float())
    untrained, _, _ = slice_losses(syn.stack, targets, WARMUP_QUANTIZER, False, 1e4)
    report = syn.init_from_data(images, beta=1e4, candidates=(2, 1), iterations=(10, 10),
                                max_slices_per_batch=3, progress=False)
    assert len(report.phase_losses[0]) == 4 and len(report.phase_losses[1]) == 2
    # Every candidate of every chunk was trained (chunks of 3 split the 4 candidates 3 + 1).
    assert report.phase_losses[0].max() < untrained.min()
    assert (report.loss < untrained).all()


def test_slice_losses_ignore_padded_images():
    syn = SyntheticSet([3, 1], 8, channels=1, config=TINY)
    targets = syn.slice_targets([torch.rand(3, 1, 8, 8), torch.rand(1, 1, 8, 8)])
    t = _Targets(targets, syn.valid, syn.num_pixels_per_slice.float())
    loss_a, mse_a, bits_a = slice_losses(syn.stack, t, syn.quantizer, False, 1e3)
    t.images[1, 1:] = 123.0  # garbage in padded positions changes nothing
    loss_b, mse_b, bits_b = slice_losses(syn.stack, t, syn.quantizer, False, 1e3)
    assert torch.equal(loss_a, loss_b) and torch.equal(bits_a, bits_b)


def test_warm_up_errors():
    syn = SyntheticSet(2, 8, num_classes=2, channels=1, config=TINY)
    good = [torch.rand(2, 1, 8, 8)] * 2
    with pytest.raises(ddfast.ConfigError, match="beta"):
        syn.init_from_data(good, beta=0)
    with pytest.raises(ddfast.ConfigError, match="non-increasing"):
        syn.init_from_data(good, beta=1, candidates=(1, 2), iterations=(1, 1))
    with pytest.raises(ddfast.ConfigError, match="one entry per warm-up phase"):
        syn.init_from_data(good, beta=1, candidates=(2,), iterations=(1, 1))
    with pytest.raises(ddfast.ConfigError, match="class 1 needs 2 images, got 1"):
        syn.init_from_data([good[0], torch.rand(1, 1, 8, 8)], beta=1)
    with pytest.raises(ddfast.ConfigError, match=r"expected images of shape \[n, 1, 8, 8\]"):
        syn.init_from_data([torch.rand(2, 3, 8, 8)] * 2, beta=1)
    with pytest.raises(ddfast.ConfigError, match="no images given for class 1"):
        syn.init_from_data({0: good[0]}, beta=1)


def test_uint8_targets_are_scaled_to_unit_range():
    syn = SyntheticSet(1, 4, num_classes=1, channels=1, config=TINY)
    targets = syn.slice_targets([torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)])
    assert torch.equal(targets, torch.ones(1, 1, 1, 4, 4))


def test_stack_select_copies_slices():
    stack = CodecStack(4, 2, (8, 8), 1, TINY)
    picked = stack.select(torch.tensor([3, 1]))
    for a, b in zip(picked.parameters(), stack.parameters()):
        assert torch.equal(a[0], b[3]) and torch.equal(a[1], b[1])
