"""The Triton paths of ddfast.ops, registered as torch custom ops (``torch.ops.ddfast.*``).

Each op has a fake (meta) implementation, so torch.compile can trace through it, and an autograd
formula whose backward is another custom op (both registered by ``ddfast.ops._registry``). The
kernels live in ``ddfast.kernels``; on a CPU they run only under ``TRITON_INTERPRET=1`` (that is how
the tests check them without a GPU). Importing this module raises ImportError whenever Triton
cannot be used here, so ``ddfast.ops`` falls back to its other backends. Type hints stay real
objects (no ``from __future__ import annotations``): they are the ops' schemas, readable by torch 2.4.
"""
from functools import lru_cache
from typing import Sequence

import torch
from torch import Tensor

from ddfast.ops._registry import register_op
from ddfast.ops.torch_ops import neighbour_index, run_pyramid

try:
    from ddfast.kernels import gather as gather_kernels
    from ddfast.kernels import laplace as laplace_kernels
    from ddfast.kernels import mlp as mlp_kernels
    from ddfast.kernels import upsample as upsample_kernels
except Exception as error:  # not only ImportError: a Triton without a usable backend or built for another torch
    raise ImportError(f"ddfast's Triton kernels cannot be loaded: {type(error).__name__}: {error}") from error

# -- causal contexts ---------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _context_tables(grid_shapes: tuple, offsets: tuple, device: torch.device) -> tuple[Tensor, Tensor]:
    """(index [M, C], inverse [M, C]) int32 on ``device``: each slot's neighbour, and the slots reading each latent."""
    index = neighbour_index(grid_shapes, offsets)
    total, c = index.shape
    slots = torch.arange(total * c).reshape(total, c)
    inverse = torch.full((total + 1, c), -1, dtype=torch.int64)
    column = torch.arange(c).expand(total, c)
    inverse[index.reshape(-1), column.reshape(-1)] = slots.reshape(-1)
    return index.to(device, torch.int32), inverse[:total].to(device, torch.int32).contiguous()


@register_op("gather_context_backward", fake=lambda grad, inverse: grad.new_empty(grad.shape[:2]))
def _gather_context_backward(grad: Tensor, inverse: Tensor) -> Tensor:
    return gather_kernels.gather_backward(grad, inverse)


@register_op("gather_context", fake=lambda latents, index, inverse: latents.new_empty(latents.shape[0], *index.shape),
             save=lambda inputs, output: inputs[2:],
             backward=lambda ctx, grad: (_gather_context_backward(grad, *ctx.saved), None, None))
def _gather_context(latents: Tensor, index: Tensor, inverse: Tensor) -> Tensor:
    return gather_kernels.gather_forward(latents, index)


def gather_context(latents: Tensor, grid_shapes: Sequence[tuple[int, int]],
                   offsets: Sequence[tuple[int, int]]) -> Tensor:
    """Triton twin of torch_ops.gather_context."""
    index, inverse = _context_tables(tuple(map(tuple, grid_shapes)), tuple(map(tuple, offsets)), latents.device)
    return _gather_context(latents, index, inverse)


# -- Laplace rate ------------------------------------------------------------------------------


# three distinct fake outputs: one tensor three times would read as aliased outputs to AOT autograd
@register_op("laplace_rate_backward", fake=lambda x, mu, log_scale, grad: tuple(torch.empty_like(x) for _ in range(3)))
def _laplace_rate_backward(x: Tensor, mu: Tensor, log_scale: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return laplace_kernels.rate_backward(x, mu, log_scale, grad)


@register_op("laplace_rate", fake=lambda x, mu, log_scale: torch.empty_like(x),
             backward=lambda ctx, grad: _laplace_rate_backward(*ctx.saved, grad))
def _laplace_rate(x: Tensor, mu: Tensor, log_scale: Tensor) -> Tensor:
    return laplace_kernels.rate_forward(x, mu, log_scale)


def laplace_rate(x: Tensor, mu: Tensor, log_scale: Tensor) -> Tensor:
    """Triton twin of torch_ops.laplace_rate (inputs broadcast to x's shape)."""
    mu, log_scale = mu.expand_as(x), log_scale.expand_as(x)
    return _laplace_rate(x, mu, log_scale)


# -- upsampling pyramid ------------------------------------------------------------------------


@register_op("upsample_level_backward", fake=lambda x, taps, grad: (torch.empty_like(x), torch.empty_like(taps)))
def _upsample_level_backward(x: Tensor, taps: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    return upsample_kernels.upsample_level_backward(x, taps, grad)


@register_op("upsample_level", fake=lambda x, taps, out_h, out_w: x.new_empty(*x.shape[:2], out_h, out_w),
             save=lambda inputs, output: inputs[:2],
             backward=lambda ctx, grad: (*_upsample_level_backward(*ctx.saved, grad), None, None))
def _upsample_level(x: Tensor, taps: Tensor, out_h: int, out_w: int) -> Tensor:
    return upsample_kernels.upsample_level(x, taps, (out_h, out_w))


def upsample_pyramid(latents: Tensor, grid_shapes: Sequence[tuple[int, int]], kernel: Tensor) -> Tensor:
    """Triton twin of torch_ops.upsample_pyramid (one polyphase kernel launch per level)."""
    return run_pyramid(latents, grid_shapes, kernel, lambda maps, taps, size: _upsample_level(maps, taps, *size))


# -- fused synthesis head ----------------------------------------------------------------------


@register_op("mlp2_backward", fake=lambda x, w1, b1, w2, grad: (
    torch.empty_like(x), torch.empty_like(w1), torch.empty_like(b1), torch.empty_like(w2),
    grad.new_empty(grad.shape[0], grad.shape[2])))
def _mlp2_backward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, grad: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return mlp_kernels.mlp2_backward(x, w1, b1, w2, grad)


@register_op("mlp2", fake=lambda x, w1, b1, w2, b2: x.new_empty(x.shape[0], x.shape[1], w2.shape[2]),
             save=lambda inputs, output: inputs[:4],
             backward=lambda ctx, grad: _mlp2_backward(*ctx.saved, grad))
def _mlp2(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    return mlp_kernels.mlp2_forward(x, w1, b1, w2, b2)


def supports_fused_mlp(relus: Sequence[bool]) -> bool:
    """The fused kernel covers the v4 head: two layers, ReLU after the first only."""
    return tuple(relus) == (True, False)


def pointwise_mlp(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], relus: Sequence[bool]) -> Tensor:
    """Triton twin of torch_ops.pointwise_mlp for the two-layer head."""
    (w1, w2), (b1, b2) = weights, biases
    return _mlp2(x, w1, b1, w2, b2)
