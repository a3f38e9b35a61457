"""torch.library.opcheck on every native CPU custom op: schema, fake (meta) implementation,
autograd registration and AOT dispatch (which traces the backward op too)."""
import pytest
import torch
from torch.library import opcheck

from ddfast.codec.context import context_offsets
from ddfast.codec.layout import grid_shapes
from ddfast.ops import cpu_ops, torch_ops


def _randn(*shape, grad=True):
    t = torch.randn(*shape, generator=_GEN) / 2
    return t.requires_grad_(grad)


_GEN = torch.Generator().manual_seed(0)
_GRIDS = grid_shapes((6, 5), 3)
_LATENTS = sum(h * w for h, w in _GRIDS)

CASES = {
    "cpu_mlp": lambda: (cpu_ops._mlp, (_randn(2, 9, 5), [_randn(2, 5, 7), _randn(2, 7, 3)],
                                       [_randn(2, 7), _randn(2, 3)], [True, True])),
    "cpu_head": lambda: (cpu_ops._head, (_randn(2, 9, 6), _randn(2, 6, 12), _randn(2, 12), _randn(2, 12, 3),
                                         _randn(2, 3))),
    "cpu_arm": lambda: (cpu_ops._arm, (_randn(2, 9, 16), [_randn(2, 16, 16), _randn(2, 16, 2)],
                                       [_randn(2, 16), _randn(2, 2)])),
    "cpu_latent_rate": lambda: (cpu_ops._latent_rate, (
        _randn(2, 3, _LATENTS).mul(4).detach().requires_grad_(True),
        cpu_ops.neighbour_table(tuple(_GRIDS), tuple(map(tuple, context_offsets(16)))),
        [_randn(2, 16, 16), _randn(2, 16, 2)], [_randn(2, 16), _randn(2, 2)])),
    "cpu_conv3": lambda: (cpu_ops._conv3, (_randn(2, 3, 3, 5, 4), _randn(2, 3, 3, 3, 3), _randn(2, 3), True, False)),
    "cpu_conv3[channels_last]": lambda: (cpu_ops._conv3, (_randn(2, 3, 5, 4, 3), _randn(2, 3, 3, 3, 3), _randn(2, 3),
                                                          False, True)),
    "cpu_upsample_pyramid": lambda: (cpu_ops._upsample_pyramid, (
        _randn(2, 3, _LATENTS), torch_ops.polyphase_taps(_randn(2, 8, 8)).detach().requires_grad_(True),
        [h for h, _ in _GRIDS], [w for _, w in _GRIDS])),
    "cpu_laplace_rate": lambda: (cpu_ops._laplace_rate, (_randn(37), _randn(37), _randn(37))),
    "cpu_noisy_softround": lambda: (cpu_ops._noisy_softround, (_randn(37).mul(6), _randn(37, grad=False), 0.3)),
}


def test_every_native_op_has_an_opcheck_case():
    forward_ops = {op._name for op in vars(cpu_ops).values()
                   if isinstance(op, torch._library.custom_ops.CustomOpDef) and not op._name.endswith("_backward")}
    assert forward_ops == {name.split("[")[0] for name in CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_native_op_passes_opcheck(name):
    op, args = CASES[name]()
    results = opcheck(op, args)
    assert set(results.values()) == {"SUCCESS"}, results
