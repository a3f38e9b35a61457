"""DSA: each operation against its definition, Siamese mode, seeding."""
import math

import pytest
import torch

from ddfast.distill import dsa as D
from ddfast.errors import ConfigError


def _ramp(b=2, c=3, h=8, w=8):
    return torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w) + 1.0


def test_flip_flips_only_where_r_below_prob():
    x = _ramp()
    out = D.flip(x, torch.tensor([0.2, 0.7]))
    assert torch.equal(out[0], x[0].flip(-1))
    assert torch.equal(out[1], x[1])


def test_crop_translates_with_zero_fill():
    x = _ramp(b=1)
    out = D.crop(x, torch.tensor([2]), torch.tensor([-3]))
    expected = torch.zeros_like(x)
    for i in range(8):
        for j in range(8):
            if 0 <= i + 2 < 8 and 0 <= j - 3 < 8:
                expected[0, :, i, j] = x[0, :, i + 2, j - 3]
    assert torch.equal(out, expected)


def test_crop_op_is_a_bounded_shift():
    x = _ramp(b=1, h=16, w=16)
    aug = D.DSA("crop", seed=0)
    shift = D.crop_shift(16)
    assert shift == 2
    for s in range(20):
        out = aug(x, seed=s, siamese=True)
        matches = [
            (tx, ty)
            for tx in range(-shift, shift + 1)
            for ty in range(-shift, shift + 1)
            if torch.equal(out, D.crop(x, torch.tensor([tx]), torch.tensor([ty])))
        ]
        assert len(matches) == 1


def test_cutout_zeros_a_square_of_the_reference_size():
    x = torch.ones(1, 2, 32, 32)
    size = D.cutout_size(32)
    assert size == 16 and D.cutout_size(128) == 64
    out = D.cutout(x, torch.tensor([10]), torch.tensor([20]), (size, size))
    zero = out[0, 0] == 0
    assert zero.sum() == 16 * 16
    rows, cols = zero.nonzero(as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 17, 12, 27)
    assert torch.equal(out[0, 0], out[0, 1])
    corner = D.cutout(x, torch.tensor([0]), torch.tensor([0]), (size, size))
    assert (corner[0, 0] == 0).sum() == 8 * 8


def test_cutout_op_zeros_at_most_one_square():
    x = torch.ones(16, 1, 32, 32)
    out = D.DSA("cutout", seed=3)(x)
    zeros = (out == 0).flatten(1).sum(1)
    assert (zeros <= 256).all() and (zeros >= 64).all()


def test_scale_and_rotate_matrices():
    theta = D.scale_theta(torch.tensor([1.1, 0.9]), torch.tensor([0.8, 1.2]))
    assert torch.allclose(theta[0], torch.tensor([[1.1, 0, 0], [0, 0.8, 0]]))
    a = torch.tensor([0.3])
    rot = D.rotate_theta(a)[0]
    c, s = math.cos(0.3), math.sin(0.3)
    assert torch.allclose(rot, torch.tensor([[c, -s, 0], [s, c, 0]]))


@pytest.mark.parametrize("align", [True, False])
def test_affine_identity_is_exact(align):
    x = torch.randn(2, 3, 8, 8)
    out = D.affine(x, D.scale_theta(torch.ones(2), torch.ones(2)), align)
    assert torch.allclose(out, x, atol=1e-5)


def test_rotate_quarter_turn_is_rot90_with_align_corners():
    x = torch.randn(1, 1, 9, 9)
    out = D.affine(x, D.rotate_theta(torch.tensor([math.pi / 2])), True)
    assert torch.allclose(out, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)


def test_scale_samples_at_scaled_coordinates():
    # sx = 0.5: the output spans the middle half of the input (zoom in), so the centre is kept
    x = torch.arange(9.0).view(1, 1, 1, 9).expand(1, 1, 9, 9).contiguous()
    out = D.affine(x, D.scale_theta(torch.tensor([0.5]), torch.tensor([1.0])), True)
    assert torch.allclose(out[0, 0, 0], torch.linspace(2, 6, 9), atol=1e-5)


def test_colour_formulas():
    x = torch.randn(2, 3, 4, 4)
    r = torch.tensor([0.25, 0.75])
    assert torch.allclose(D.brightness(x, r), x + (r.view(-1, 1, 1, 1) - 0.5))
    m = x.mean(1, keepdim=True)
    assert torch.allclose(D.saturation(x, r), (x - m) * (2 * r.view(-1, 1, 1, 1)) + m)
    m = x.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(D.contrast(x, r), (x - m) * (r.view(-1, 1, 1, 1) + 0.5) + m)


@pytest.mark.parametrize("op", D.OPERATIONS)
def test_siamese_shares_parameters_and_batches(op):
    aug = D.DSA(op, seed=0)
    real, syn = torch.randn(5, 3, 16, 16), torch.randn(2, 3, 16, 16)
    joint = aug(torch.cat([real, syn]), seed=1234, siamese=True)
    assert torch.allclose(aug(real, seed=1234, siamese=True), joint[:5], atol=1e-6)
    assert torch.allclose(aug(syn, seed=1234, siamese=True), joint[5:], atol=1e-6)
    same = aug(real[:1].expand(4, -1, -1, -1), seed=99, siamese=True)
    assert torch.allclose(same, same[:1].expand_as(same), atol=1e-6)


@pytest.mark.parametrize("op", ["color", "crop", "scale", "rotate"])
def test_non_siamese_draws_per_sample(op):
    x = torch.randn(1, 3, 16, 16).expand(8, -1, -1, -1)
    out = D.DSA(op, seed=0)(x)
    assert not torch.allclose(out, out[:1].expand_as(out))


def test_fixed_seed_reproduces_and_seeds_differ():
    x = torch.randn(6, 3, 16, 16)
    a = [D.DSA(seed=7)(x) for _ in range(4)]
    b = [D.DSA(seed=7)(x) for _ in range(4)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    aug = D.DSA(seed=7)
    outs = [aug(x) for _ in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    assert torch.equal(aug(x, seed=5), aug(x, seed=5))


@pytest.mark.parametrize("op", D.OPERATIONS)
def test_operations_are_differentiable(op):
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    D.DSA(op, seed=1)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_configuration_raises():
    with pytest.raises(ConfigError, match="blur"):
        D.DSA("crop_blur")
    with pytest.raises(ConfigError):
        D.DSA()(torch.randn(1, 3, 8, 8), siamese=True)
    x = torch.randn(2, 3, 8, 8)
    assert D.DSA("none")(x) is x


def test_seeding_helpers():
    from ddfast.distill.seeding import SEED_RANGE, derive_seed, fresh_seed, seeded_generator

    torch.manual_seed(5)
    a = fresh_seed()
    torch.manual_seed(5)
    assert fresh_seed() == a and 0 <= a < SEED_RANGE
    assert fresh_seed(torch.Generator().manual_seed(1)) == fresh_seed(torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3, generator=seeded_generator(7)), torch.rand(3, generator=seeded_generator(7)))
    torch.manual_seed(5)
    first = D.DSA(seed=None).draw_seed()
    torch.manual_seed(5)
    assert D.DSA(seed=None).draw_seed() == first  # unseeded parts follow torch.manual_seed
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(2, 1)
