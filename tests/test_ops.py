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


def test_polyphase_taps_cover_every_kernel_entry_once():
    for k in (4, 8, 12):
        kernel = torch.arange(1.0, k * k + 1).reshape(1, k, k)
        taps = torch_ops.polyphase_taps(kernel)
        values = taps[taps != 0]
        assert sorted(values.tolist()) == list(range(1, k * k + 1))
