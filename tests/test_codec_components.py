"""Codec components against the reference facts: Table A1, context tables, rate, quantizer, upsampler."""
import math

import pytest
import torch

import ddfast
from ddfast.codec import context_offsets, wavefront_shift
from ddfast.codec.context import context_padding
from ddfast.codec.quantizer import Quantizer, kumaraswamy_noise, softround
from ddfast.codec.synthesis import StackedSynthesis, synthesis_layers
from ddfast.codec.upsampler import initial_upsampling_kernel
from ddfast.ops import torch_ops

TABLE_A1 = {"v4-40": 571, "v4-160": 1771, "v4-240": 2571, "v4-480": 4971, "v4-960": 9771,
            "v4-1200": 12171, "v5-240": 11611, "v5-320": 15371}


@pytest.mark.parametrize("version,count", sorted(TABLE_A1.items()))
def test_synthesis_parameter_counts_match_table_a1(version, count):
    net = ddfast.Synthesis(version, out_channels=3)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == count
    stacked = StackedSynthesis(4, synthesis_layers(version, 6, 3))
    assert sum(p.numel() for p in stacked.parameters()) == 4 * count


def test_synthesis_single_channel_counts_and_shapes():
    net = ddfast.Synthesis("v4-40", out_channels=1)
    # 6->40 (280) + 40->1 (41) + two 3x3 residual 1->1 convs (10 each)
    assert sum(p.numel() for p in net.parameters()) == 341
    assert net(torch.rand(2, 6, 28, 28)).shape == (2, 1, 28, 28)


def test_latent_grids_follow_the_reference_count_for_the_image_size():
    from ddfast.codec.config import default_grid_count

    assert [default_grid_count((s, s)) for s in (1, 2, 7, 8, 28, 31, 32, 64, 128)] == [1, 2, 3, 4, 5, 5, 6, 6, 6]
    assert default_grid_count((28, 200)) == 5  # the smaller side decides
    mnist = ddfast.SyntheticSet(2, 28, num_classes=2, channels=1, config=ddfast.CodecConfig(synthesis="v4-40"))
    assert mnist.config.n_grids == 5 and mnist.stack.grid_shapes[-1] == (2, 2)
    assert sum(p.numel() for p in mnist.stack.synthesis.parameters()) == 2 * (341 - 40)  # 5 -> 40, not 6 -> 40
    assert ddfast.SyntheticSet(1, 32, num_classes=1, config=ddfast.CodecConfig()).config.n_grids == 6
    fixed = ddfast.SyntheticSet(1, 28, num_classes=1, config=ddfast.CodecConfig(n_grids=6))
    assert fixed.config.n_grids == 6 and fixed.stack.grid_shapes[-1] == (1, 1)
    with pytest.raises(ddfast.ConfigError, match="for_image_size"):
        ddfast.CodecConfig().synthesis_layers(3)
    with pytest.raises(ddfast.ConfigError, match="n_grids"):
        ddfast.CodecConfig(n_grids=0)
    data = ddfast.compress(mnist.eval(), mse_threshold=5e-5)
    assert ddfast.inspect(data).config["n_grids"] == 5
    assert ddfast.decompress(data)[0].shape == (4, 1, 28, 28)


def test_synthesis_init_follows_reference():
    torch.manual_seed(0)
    net = ddfast.Synthesis("v5-240")
    first, second = net.weights[0], net.weights[1]
    assert first.abs().max() <= math.sqrt(1 / 6) / 240 ** 2
    assert second.abs().max() <= math.sqrt(1 / 240) / 40 ** 2
    assert first.abs().max() > 0.5 * math.sqrt(1 / 6) / 240 ** 2
    assert torch.count_nonzero(net.weights[-1]) == 0 and torch.count_nonzero(net.weights[-2]) == 0
    assert all(torch.count_nonzero(b) == 0 for b in net.biases)


def test_bad_synthesis_version_and_channels():
    with pytest.raises(ddfast.ConfigError, match="unknown synthesis version 'v9-1'"):
        ddfast.Synthesis("v9-1")
    with pytest.raises(ddfast.ConfigError, match="out_channels"):
        ddfast.Synthesis("v4-40", out_channels=0)


REFERENCE_TABLES = {
    8: [(-3, 0), (-2, 0), (-1, -1), (-1, 0), (-1, 1), (0, -3), (0, -2), (0, -1)],
    16: [(-3, 0), (-3, 1), (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-1, -3), (-1, -2), (-1, -1),
         (-1, 0), (-1, 1), (-1, 2), (0, -3), (0, -2), (0, -1)],
    24: [(-4, 0), (-3, -2), (-3, -1), (-3, 0), (-3, 1), (-3, 2), (-2, -3), (-2, -2), (-2, -1), (-2, 0),
         (-2, 1), (-2, 2), (-2, 3), (-1, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (-1, 3),
         (0, -4), (0, -3), (0, -2), (0, -1)],
    32: [(-4, -2), (-4, -1), (-4, 0), (-4, 1), (-3, -3), (-3, -2), (-3, -1), (-3, 0), (-3, 1), (-3, 2),
         (-3, 3), (-2, -3), (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-2, 3), (-2, 4), (-1, -4),
         (-1, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (-1, 3), (-1, 4), (0, -4), (0, -3),
         (0, -2), (0, -1)],
}


@pytest.mark.parametrize("size", [8, 16, 24, 32])
def test_context_offsets_equal_reference_tables(size):
    assert list(context_offsets(size)) == REFERENCE_TABLES[size]
    assert context_padding(size) == {8: 3, 16: 3, 24: 4, 32: 4}[size]


def test_context_64_is_causal_unique_and_raster_ordered():
    offsets = context_offsets(64)
    assert len(offsets) == 64 == len(set(offsets))
    assert all(dy < 0 or (dy == 0 and dx < 0) for dy, dx in offsets)
    assert list(offsets) == sorted(offsets)
    assert set(REFERENCE_TABLES[32]) <= set(offsets)
    assert context_padding(64) == 6


def test_wavefront_shifts():
    assert [wavefront_shift(c) for c in (8, 16, 24, 32, 64)] == [2, 3, 4, 5, 6]


@pytest.mark.parametrize("bad", [0, 12, 40, 48])
def test_unsupported_context_size_is_a_config_error(bad):
    with pytest.raises(ddfast.ConfigError, match="context size"):
        ddfast.CodecConfig(arm_context=bad)


def _reference_bits(x: float, mu: float, s: float) -> float:
    """Independent float64 evaluation of -log2(max(F(x+1/2) - F(x-1/2), 2^-16))."""
    b = math.exp(min(max(s - 4.0, -4.6), 5.0))

    def cdf(t):
        z = (t - mu) / b
        return 0.5 * math.exp(z) if z <= 0 else 1.0 - 0.5 * math.exp(-z)

    p = cdf(x + 0.5) - cdf(x - 0.5)
    return -math.log2(max(p, 2.0 ** -16))


def test_laplace_rate_matches_independent_computation():
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(-40, 41, (4000,), generator=gen).double()
    mu = torch.randn(4000, generator=gen, dtype=torch.float64) * 6
    s = torch.rand(4000, generator=gen, dtype=torch.float64) * 14 - 5  # covers both clamps
    bits = torch_ops.laplace_rate(x, mu, s)
    expected = torch.tensor([_reference_bits(*v) for v in zip(x.tolist(), mu.tolist(), s.tolist())],
                            dtype=torch.float64)
    assert torch.allclose(bits, expected, rtol=1e-9, atol=1e-9)
    assert bits.max() == 16.0 and bits.min() >= 0


def test_laplace_rate_is_stable_and_float32_accurate_in_far_tails():
    x = torch.tensor([0.0, 3.0, 200.0, -500.0])
    mu = torch.tensor([0.0, 0.0, 0.0, 0.0])
    s = torch.tensor([0.0, 9.0, 9.0, 9.0])  # b = e^-4 for the first, e^5 for the others
    bits32 = torch_ops.laplace_rate(x, mu, s)
    bits64 = torch_ops.laplace_rate(x.double(), mu.double(), s.double())
    assert torch.isfinite(bits32).all()
    assert torch.allclose(bits32.double(), bits64, rtol=1e-5)
    x.requires_grad_(True)
    torch_ops.laplace_rate(x, mu, s).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_laplace_rate_gradcheck_float64():
    gen = torch.Generator().manual_seed(2)
    x = (torch.randn(64, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    mu = (torch.randn(64, generator=gen, dtype=torch.float64)).requires_grad_(True)
    s = (torch.randn(64, generator=gen, dtype=torch.float64) + 4).requires_grad_(True)
    assert torch.autograd.gradcheck(torch_ops.laplace_rate, (x, mu, s))


def test_quantizer_eval_rounds_and_train_is_differentiable():
    gen = torch.Generator().manual_seed(3)
    y = (torch.randn(1000, generator=gen) * 3).requires_grad_(True)
    q = Quantizer()
    hard = q(y, training=False)
    assert torch.equal(hard, torch.round(y.detach()))
    soft = q(y, training=True, generator=gen)
    assert not torch.equal(soft, torch.round(soft))
    soft.sum().backward()
    assert y.grad.abs().sum() > 0


def test_softround_limits_and_ste():
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    away = (x - torch.round(x)).abs() < 0.45
    assert torch.allclose(softround(x, 1e-3)[away], torch.round(x)[away], atol=1e-9)
    assert torch.allclose(softround(x, 100.0), x, atol=1e-4)
    y = torch.tensor([0.2, 1.7], requires_grad=True)
    out = Quantizer(mode="ste")(y, training=True)
    assert torch.equal(out.detach(), torch.tensor([0.0, 2.0]))
    out.sum().backward()
    y2 = y.detach().clone().requires_grad_(True)
    softround(y2, 0.3).sum().backward()
    assert torch.allclose(y.grad, y2.grad)


def test_softround_mode_applies_softround_twice_with_the_given_noise():
    y = torch.tensor([0.3, -1.2, 2.49])
    noise = torch.tensor([0.1, -0.2, 0.05])
    out = Quantizer(mode="softround", temperature=0.3)(y, training=True, noise=noise)
    assert torch.allclose(out, softround(softround(y, 0.3) + noise, 0.3))


def test_kumaraswamy_noise_range_and_shape():
    gen = torch.Generator().manual_seed(4)
    n = kumaraswamy_noise((20000,), 2.0, generator=gen)
    assert n.min() >= -0.5 and n.max() <= 0.5
    uniform = kumaraswamy_noise((20000,), 1.0, generator=gen)
    assert abs(uniform.mean()) < 0.01 and abs(uniform.var() - 1 / 12) < 0.005
    assert n.abs().mean() < uniform.abs().mean()  # a = 2 concentrates the noise near 0


def test_quantizer_rejects_bad_settings():
    with pytest.raises(ddfast.ConfigError, match="quantizer mode"):
        Quantizer(mode="bogus")
    with pytest.raises(ddfast.ConfigError, match="temperature"):
        Quantizer(temperature=0)
    with pytest.raises(ddfast.ConfigError, match="noise type"):
        Quantizer(noise="pink")


def test_bicubic_kernel_values():
    k = initial_upsampling_kernel(8)
    assert k.shape == (8, 8)
    first_row = [0.0012359619, 0.0037078857, -0.0092010498, -0.0308990479]
    assert torch.allclose(k[0, :4], torch.tensor(first_row), atol=1e-9)
    assert torch.allclose(k[0, 4:], torch.tensor(first_row[::-1]), atol=1e-9)
    assert abs(k[3, 3].item() - 0.7724761963) < 1e-9
    assert abs(k.sum().item() - 4.0) < 1e-6
    for py in range(2):
        for px in range(2):
            assert abs(k[py::2, px::2].sum().item() - 1.0) < 1e-6
    assert torch.allclose(initial_upsampling_kernel(4)[0], torch.tensor([0.0625, 0.1875, 0.1875, 0.0625]))


def test_upsampling_pyramid_keeps_constant_grids_constant():
    shapes = [(13, 7), (7, 4), (4, 2), (2, 1)]
    m = sum(h * w for h, w in shapes)
    latents = torch.full((2, 3, m), 5.0)
    kernels = initial_upsampling_kernel(8).expand(2, 8, 8)
    out = torch_ops.upsample_pyramid(latents, shapes, kernels)
    assert out.shape == (2, 3, 4, 13, 7)
    assert torch.allclose(out, torch.full_like(out, 5.0), atol=1e-5)


def test_quantizer_settings_are_immutable_and_not_shared():
    import dataclasses

    syn_a = ddfast.SyntheticSet(1, 8, num_classes=1, config=ddfast.CodecConfig(synthesis="v4-40"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        syn_a.quantizer.temperature = 0.1
    syn_a.quantizer = dataclasses.replace(syn_a.quantizer, temperature=0.1)
    syn_b = ddfast.SyntheticSet(1, 8, num_classes=1, config=ddfast.CodecConfig(synthesis="v4-40"))
    assert syn_b.quantizer.temperature == 0.3


def test_noise_follows_the_generator_then_moves_to_the_target():
    gen = torch.Generator().manual_seed(0)
    like = torch.zeros(5, dtype=torch.float64, device="meta")
    noise = Quantizer(noise="gaussian").sample_noise(like, gen)
    assert noise.device.type == "meta" and noise.dtype == torch.float64 and noise.shape == (5,)
