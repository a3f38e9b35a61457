"""ddfast.ops: each fast path against its plain twin on random inputs of awkward sizes."""
import pytest
import torch

import ddfast
from ddfast import ops
from ddfast.ops import torch_ops


@pytest.mark.parametrize("widths,relus", [
    ([6, 40, 3], [True, False]),
    ([6, 24, 7, 3], [True, True, False]),
    ([5, 9], [True]),                      # a ReLU on the last layer
    ([1, 1], [False]),
])
def test_pointwise_mlp_matches_generic_autograd(widths, relus):
    gen = torch.Generator().manual_seed(sum(widths))
    s, p = 3, 37
    x = torch.randn(s, p, widths[0], generator=gen, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(s, a, b, generator=gen, dtype=torch.float64, requires_grad=True)
               for a, b in zip(widths, widths[1:])]
    biases = [torch.randn(s, b, generator=gen, dtype=torch.float64, requires_grad=True) for b in widths[1:]]
    upstream = torch.randn(s, p, widths[-1], generator=gen, dtype=torch.float64)
    inputs = [x, *weights, *biases]
    fast = torch_ops.pointwise_mlp(x, weights, biases, relus)
    fast_grads = torch.autograd.grad((fast * upstream).sum(), inputs)
    ref = torch_ops.pointwise_mlp_reference(x, weights, biases, relus)
    ref_grads = torch.autograd.grad((ref * upstream).sum(), inputs)
    assert torch.allclose(fast, ref)
    for a, b in zip(fast_grads, ref_grads):
        assert torch.allclose(a, b)


def test_pointwise_mlp_gradcheck():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    w = [torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True),
         torch.randn(2, 4, 2, generator=gen, dtype=torch.float64, requires_grad=True)]
    b = [torch.randn(2, 4, generator=gen, dtype=torch.float64, requires_grad=True),
         torch.randn(2, 2, generator=gen, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(lambda *t: torch_ops.pointwise_mlp(t[0], t[1:3], t[3:5], [True, False]),
                                    (x, *w, *b))


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ddfast.ConfigError, match="unknown ops backend 'cuda'"):
        ops.laplace_rate(torch.zeros(1), torch.zeros(1), torch.zeros(1), backend="cuda")


def _dyadic(gen, *shape):
    """Small multiples of 1/8: every product and sum below is exact in float32, in any order."""
    return torch.randint(-8, 9, shape, generator=gen).float() / 8


@pytest.mark.parametrize("s,p,widths,relus", [
    (3, 77, [6, 40, 3], [True, False]),          # the v4 synthesis head (narrow output layer)
    (2, 45, [6, 24, 7, 3], [True, True, False]),  # a v5-like head
    (4, 67, [16, 16, 16, 2], [True, True, False]),  # the ARM at C = 16 (fixed-width fast path)
    (2, 35, [32, 32, 2], [True, False]),         # the ARM at C = 32
    (1, 5, [3, 17], [True]),                     # fewer pixels than a tile, ReLU last
])
def test_native_cpu_mlp_is_exact_on_dyadic_inputs(s, p, widths, relus):
    from ddfast import _cpu

    gen = torch.Generator().manual_seed(p)
    x = _dyadic(gen, s, p, widths[0]).requires_grad_(True)
    weights = [_dyadic(gen, s, a, b).requires_grad_(True) for a, b in zip(widths, widths[1:])]
    biases = [_dyadic(gen, s, b).requires_grad_(True) for b in widths[1:]]
    upstream = _dyadic(gen, s, p, widths[-1])
    assert torch_ops._native_mlp(x) is _cpu
    got = torch_ops.pointwise_mlp(x, weights, biases, relus)
    got_grads = torch.autograd.grad((got * upstream).sum(), [x, *weights, *biases])
    want = torch_ops.pointwise_mlp_reference(x, weights, biases, relus)
    want_grads = torch.autograd.grad((want * upstream).sum(), [x, *weights, *biases])
    assert torch.equal(got, want)
    for a, b in zip(got_grads, want_grads):
        assert torch.equal(a, b)


def test_native_cpu_mlp_rejects_mismatched_shapes():
    from ddfast import _cpu

    x = torch.zeros(2, 5, 6).numpy()
    with pytest.raises(ValueError, match="weight 0 must be"):
        _cpu.mlp_forward(x, [torch.zeros(2, 7, 4).numpy()], [torch.zeros(2, 4).numpy()], [True])
    with pytest.raises(ValueError, match="bias 0 must be"):
        _cpu.mlp_forward(x, [torch.zeros(2, 6, 4).numpy()], [torch.zeros(2, 5).numpy()], [True])
    with pytest.raises(ValueError, match="grad_out must be"):
        _cpu.mlp_backward(x, [torch.zeros(2, 6, 4).numpy()], [torch.zeros(2, 4).numpy()], [True],
                          torch.zeros(2, 5, 3).numpy(), True)


def test_polyphase_taps_cover_every_kernel_entry_once():
    for k in (4, 8, 12):
        kernel = torch.arange(1.0, k * k + 1).reshape(1, k, k)
        taps = torch_ops.polyphase_taps(kernel)
        values = taps[taps != 0]
        assert sorted(values.tolist()) == list(range(1, k * k + 1))
