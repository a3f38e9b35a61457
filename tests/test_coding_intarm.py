"""The integer ARM: native (blocked and per-position) against the int64 torch twin, bounds, float agreement."""
import numpy as np
import pytest
import torch

from ddfast import _cpu
from ddfast.codec.arm import arm_forward_single
from ddfast.coding import quantize_at
from ddfast.coding.intarm import FREQUENCY_FLOOR, MAX_ABS_LATENT, arm_reference, fixed_point_arm, split_layers
from ddfast.coding.lanes import Geometry
from ddfast.errors import ConfigError
from ddfast.ops.torch_ops import neighbour_index
from ddfast.rans import model_bits

from coding_helpers import FINE_STEPS, random_set


def _twin(latents, weights, biases, geometry, context, depth):
    """(MU, LS) of every latent with the torch twin, [S, N, M] each."""
    index = neighbour_index(geometry.grid_shapes, geometry.offsets)
    mus, lss = np.zeros(latents.shape, np.int64), np.zeros(latents.shape, np.int64)
    for s in range(latents.shape[0]):
        layer_w, layer_b = split_layers(weights[s], biases[s], context, depth)
        for n in range(latents.shape[1]):
            padded = torch.cat([torch.from_numpy(latents[s, n]).long(), torch.zeros(1, dtype=torch.long)])
            mu, ls = arm_reference(padded[index], layer_w, layer_b)
            mus[s, n], lss[s, n] = mu.numpy(), ls.numpy()
    return mus, lss


@pytest.mark.parametrize("context,depth,size,weight_bits,bias_bits,latent_max", [
    (8, 0, (7, 5), 10, 20, 30),
    (16, 4, (13, 9), 12, 24, 40),
    (24, 1, (5, 21), 12, 24, 40),
    (32, 2, (20, 11), 9, 20, 30),
    (64, 3, (9, 17), 8, 18, 30),
    (16, 2, (11, 6), 24, 32, MAX_ABS_LATENT),  # at the bounds: saturating activations
])
def test_native_arm_equals_int64_twin(context, depth, size, weight_bits, bias_bits, latent_max):
    gen = torch.Generator().manual_seed(context + depth)
    geometry = Geometry.of(size, 4, context)
    latents = torch.randint(-latent_max, latent_max + 1, (3, 2, geometry.image_latents), generator=gen, dtype=torch.int32)
    k = 2 ** weight_bits
    weights = torch.randint(-k + 1, k, (3, depth * context * context + 2 * context), generator=gen, dtype=torch.int32)
    biases = torch.randint(-2 ** bias_bits + 1, 2 ** bias_bits, (3, depth * context + 2), generator=gen)
    grids, offsets = geometry.arrays()
    args = (latents.numpy(), weights.numpy(), biases.numpy(), depth, grids, offsets, geometry.shift)
    blocked = _cpu.latent_arm(*args)
    scalar = _cpu.latent_arm(*args, blocked=False)
    twin = _twin(latents.numpy(), weights.numpy(), biases.numpy(), geometry, context, depth)
    for native in (blocked, scalar):
        np.testing.assert_array_equal(native[0], twin[0])
        np.testing.assert_array_equal(native[1], twin[1])
    assert len(np.unique(twin[1])) > 1  # the test exercises more than one clamp value


def test_native_arm_refuses_out_of_range_inputs():
    geometry = Geometry.of((6, 6), 3, 8)
    grids, offsets = geometry.arrays()
    latents = np.zeros((1, 1, geometry.image_latents), np.int32)
    weights = np.zeros((1, 16), np.int32)
    biases = np.zeros((1, 2), np.int64)
    latents[0, 0, 5] = MAX_ABS_LATENT + 1
    with pytest.raises(ValueError, match="exceeds"):
        _cpu.latent_arm(latents, weights, biases, 0, grids, offsets, geometry.shift)
    latents[0, 0, 5] = 0
    weights[0, 3] = 2 ** 25
    with pytest.raises(ValueError, match="fixed-point range"):
        _cpu.latent_arm(latents, weights, biases, 0, grids, offsets, geometry.shift)
    weights[0, 3] = 0
    not_causal = np.array([[0, 1]] * 8, np.int32)  # the right neighbour is decoded after its latent
    with pytest.raises(ValueError, match="invalid geometry"):
        _cpu.latent_arm(latents, weights, biases, 0, grids, not_causal, geometry.shift)


def test_fixed_point_arm_is_exact_and_refuses_unquantized_weights():
    syn = random_set([2], (8, 8), context=8, depth=1, seed=3)
    q = quantize_at(syn, FINE_STEPS)
    weights, biases = q.fixed_point_arm()
    hidden = q.tensors["arm.hidden_w.0"][0]
    # Hidden layers are stored [in][out] with the residual identity folded in (Q.8).
    expected = (hidden.double().T * 256 + torch.eye(8, dtype=torch.float64) * 256).reshape(-1)
    np.testing.assert_array_equal(weights[0, :64], expected.numpy())
    np.testing.assert_array_equal(biases[0, :8], (q.tensors["arm.hidden_b.0"][0].double() * 65536).numpy())
    arm = syn.stack.arm
    with pytest.raises(ConfigError, match="fixed-point grid"):
        fixed_point_arm(arm.hidden_w + 1e-3, arm.hidden_b, arm.out_w, arm.out_b)


def test_integer_arm_follows_the_float_arm():
    syn = random_set([3], (16, 16), context=16, depth=2, seed=4)
    q = quantize_at(syn, FINE_STEPS)
    geometry = q.geometry
    weights, biases = q.fixed_point_arm()
    grids, offsets = geometry.arrays()
    latents = q.latents.numpy()
    mu_q, ls_q = _cpu.latent_arm(latents, weights, biases, 2, grids, offsets, geometry.shift)
    t = q.tensors
    context = torch.cat([torch.from_numpy(latents[0]).float(), torch.zeros(3, 1)], dim=1)[
        :, neighbour_index(geometry.grid_shapes, geometry.offsets)]
    mu, s = arm_forward_single(context, torch.stack([t["arm.hidden_w.0"][0], t["arm.hidden_w.1"][0]]),
                               torch.stack([t["arm.hidden_b.0"][0], t["arm.hidden_b.1"][0]]), t["arm.out_w"][0],
                               t["arm.out_b"][0])
    # Rounding of three activations and the output to 2^-8 moves the outputs by a few 2^-8 at most.
    assert (torch.from_numpy(mu_q[0]) / 256 - mu).abs().max() < 0.05
    log_scale = (s - 4).clamp(-4.6, 5)
    assert (torch.from_numpy(ls_q[0]) / 256 - log_scale).abs().max() < 0.05


def test_latent_bits_equal_the_integer_model_code_length():
    syn = random_set([3, 2], (12, 10), context=16, depth=2, slice_size=2, seed=5)
    q = quantize_at(syn, FINE_STEPS)
    geometry = q.geometry
    weights, biases = q.fixed_point_arm()
    grids, offsets = geometry.arrays()
    latents = q.latents.numpy()
    counts = np.array(q.layout.slice_sizes, np.int32)
    support = q.supports()
    bits = _cpu.latent_bits(latents, counts, weights, biases, 2, grids, offsets, geometry.shift, support)
    mu_q, ls_q = _cpu.latent_arm(latents, weights, biases, 2, grids, offsets, geometry.shift)
    for s, n in enumerate(q.layout.slice_sizes):
        expected = model_bits(latents[s, :n].ravel(), mu_q[s, :n].ravel(), ls_q[s, :n].ravel(), *support[s],
                              floor=FREQUENCY_FLOOR)
        assert bits[s] == pytest.approx(expected, rel=1e-12)
