"""torch.library.opcheck on every Triton custom op: schema, fake (meta) implementation, autograd
registration and AOT dispatch (which traces the backward op too), on small odd shapes.

Without a GPU the kernels run on CPU tensors under ``TRITON_INTERPRET=1`` (set by conftest.py).
Also checks that every op in the ddfast namespace, Triton or native, has an opcheck case here or
in test_cpu_opcheck.py.
"""
import importlib
import pkgutil

import pytest
import torch
from torch.library import opcheck

import ddfast.ops
from ddfast.codec.context import context_offsets
from ddfast.ops import torch_ops
from ddfast.ops._registry import NAMESPACE
from test_cpu_opcheck import CASES as NATIVE_CASES

try:
    from ddfast.ops import triton_ops
except ImportError as error:
    pytest.skip(f"the Triton ops cannot be loaded here: {error}", allow_module_level=True)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
_GRIDS = ((5, 3), (3, 2), (2, 1))
_LATENTS = sum(h * w for h, w in _GRIDS)


def _randn(*shape, scale=0.5, grad=True):
    return (torch.randn(*shape, generator=_GEN) * scale).to(DEVICE).requires_grad_(grad)


_GEN = torch.Generator().manual_seed(0)

CASES = {
    "gather_context": lambda: (triton_ops._gather_context, (
        _randn(3, _LATENTS),
        *triton_ops._context_tables(_GRIDS, tuple(map(tuple, context_offsets(8))), torch.device(DEVICE)))),
    "laplace_rate": lambda: (triton_ops._laplace_rate, (_randn(37, scale=4), _randn(37), _randn(37, scale=3))),
    "upsample_level": lambda: (triton_ops._upsample_level, (
        _randn(2, 3, 5, 4),
        torch_ops.polyphase_taps(_randn(2, 8, 8, grad=False)).requires_grad_(True), 9, 7)),
    "mlp2": lambda: (triton_ops._mlp2, (_randn(2, 9, 5), _randn(2, 5, 11), _randn(2, 11), _randn(2, 11, 3),
                                        _randn(2, 3))),
}


def _registered_ops() -> set[str]:
    """Names of every custom op in the ddfast namespace, after importing every ddfast.ops module."""
    for module in pkgutil.iter_modules(ddfast.ops.__path__):
        importlib.import_module(f"ddfast.ops.{module.name}")
    prefix = f"{NAMESPACE}::"
    return {name[len(prefix):] for name in torch._C._dispatch_get_all_op_names() if name.startswith(prefix)}


def test_every_registered_op_has_an_opcheck_case():
    ops = _registered_ops()
    forward = {name for name in ops if not name.endswith("_backward")}
    assert forward == {name.split("[")[0] for name in (*CASES, *NATIVE_CASES)}  # "op[variant]" cases count for op
    # a backward op is checked through its forward's autograd and AOT-dispatch tests
    assert {name.removesuffix("_backward") for name in ops - forward} <= forward


@pytest.mark.parametrize("name", sorted(CASES))
def test_triton_op_passes_opcheck(name):
    op, args = CASES[name]()
    results = opcheck(op, args)
    assert set(results.values()) == {"SUCCESS"}, results
