"""One way to register a ddfast kernel as a torch custom op (``torch.ops.ddfast.<name>``).

``register_op`` does what every op needs: ``torch.library.custom_op`` (schema inferred from the
function's type hints), its fake implementation (so torch.compile and FakeTensor tracing see output
shapes without running the kernel) and, for a differentiable op, the autograd formula with its
setup_context. The formula should call the op's backward, itself registered here as a custom op,
so that AOT autograd traces the backward as one opaque op too.

The hints decide the lowest torch that can register the op: torch 2.4 reads real type objects
only, string hints (``from __future__ import annotations``) need torch 2.5, builtin ``list[...]``
hints torch 2.7 (``typing.List`` works from 2.4); ``tests/test_torch_version.py`` keeps the torch
pin in pyproject.toml equal to what the registered ops need.
"""
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor
from torch.utils import _pytree

if not hasattr(torch.library, "custom_op"):  # torch < 2.4: ddfast.ops falls back to the torch twins
    raise ImportError(f"ddfast's custom ops need torch >= 2.4 (torch.library.custom_op), found {torch.__version__}")

NAMESPACE = "ddfast"

_TENSOR = object()  # marks a saved value that went through ctx.save_for_backward


def _save_inputs(inputs: tuple, output: Any) -> tuple:
    return inputs


def register_op(name: str, *, fake: Callable, backward: Optional[Callable] = None,
                save: Callable[[tuple, Any], Sequence] = _save_inputs) -> Callable[[Callable], Any]:
    """Decorator: the kernel launcher becomes the functional custom op ``ddfast::<name>``.

    ``fake(*inputs)`` builds the outputs' shapes, dtypes and strides only. With ``backward``, the
    op is differentiable: ``save(inputs, output)`` picks what the backward needs (tensors, lists of
    tensors, plain values; default: all inputs), and ``backward(ctx, *grads)`` (one gradient per
    output) returns one gradient, or None, per input, reading those values as ``ctx.saved`` (and
    torch's ``ctx.needs_input_grad``).
    Returns the op (a ``torch.library.CustomOpDef``, callable like the function).
    """
    def decorate(launcher: Callable) -> Any:
        op = torch.library.custom_op(f"{NAMESPACE}::{name}", mutates_args=())(launcher)
        op.register_fake(fake)
        if backward is not None:
            op.register_autograd(_restoring(backward), setup_context=_saving(save))
        return op
    return decorate


def _saving(save: Callable[[tuple, Any], Sequence]) -> Callable:
    """setup_context: tensors of ``save``'s values go to save_for_backward, the rest stay on ctx."""
    def setup_context(ctx, inputs, output):
        leaves, ctx.saved_spec = _pytree.tree_flatten(tuple(save(inputs, output)))
        ctx.save_for_backward(*(leaf for leaf in leaves if isinstance(leaf, Tensor)))
        ctx.saved_leaves = [_TENSOR if isinstance(leaf, Tensor) else leaf for leaf in leaves]
    return setup_context


def _restoring(backward: Callable) -> Callable:
    """The autograd formula: rebuild ``ctx.saved`` as ``save`` returned it, then run ``backward``.

    ``ctx.saved`` is removed again afterwards: an unpacked saved output refers back to this node
    through its grad_fn, so leaving it on ctx would make a reference cycle that keeps the output's
    memory alive until Python's cyclic collector runs (about 55 MB per training step at 100 x 8,
    and fresh memory, page faults included, for every step's outputs).
    """
    def formula(ctx, *grads):
        tensors = iter(ctx.saved_tensors)
        leaves = [next(tensors) if leaf is _TENSOR else leaf for leaf in ctx.saved_leaves]
        ctx.saved = _pytree.tree_unflatten(leaves, ctx.saved_spec)
        try:
            return backward(ctx, *grads)
        finally:
            del ctx.saved
    return formula
