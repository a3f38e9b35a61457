"""The Triton paths of ddfast.ops, registered as torch custom ops (``torch.ops.ddfast.*``).

Each op has a fake (meta) implementation, so torch.compile can trace through it, and an autograd
formula whose backward is another custom op. The kernels live in ``ddfast.kernels``; on a CPU
they run only under ``TRITON_INTERPRET=1`` (that is how the tests check them without a GPU).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
from torch import Tensor

from ddfast.kernels import gather as gather_kernels
from ddfast.kernels import laplace as laplace_kernels
from ddfast.kernels import mlp as mlp_kernels
from ddfast.kernels import upsample as upsample_kernels
from ddfast.ops.torch_ops import neighbour_index, run_pyramid

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


@torch.library.custom_op("ddfast::gather_context", mutates_args=())
def _gather_context(latents: Tensor, index: Tensor, inverse: Tensor) -> Tensor:
    return gather_kernels.gather_forward(latents, index)


@_gather_context.register_fake
def _(latents, index, inverse):
    return latents.new_empty(latents.shape[0], index.shape[0], index.shape[1])


@torch.library.custom_op("ddfast::gather_context_backward", mutates_args=())
def _gather_context_backward(grad: Tensor, inverse: Tensor) -> Tensor:
    return gather_kernels.gather_backward(grad, inverse)


@_gather_context_backward.register_fake
def _(grad, inverse):
    return grad.new_empty(grad.shape[0], grad.shape[1])


def _gather_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[2])


def _gather_grad(ctx, grad):
    (inverse,) = ctx.saved_tensors
    return _gather_context_backward(grad, inverse), None, None


_gather_context.register_autograd(_gather_grad, setup_context=_gather_setup)


def gather_context(latents: Tensor, grid_shapes: Sequence[tuple[int, int]],
                   offsets: Sequence[tuple[int, int]]) -> Tensor:
    """Triton twin of torch_ops.gather_context."""
    index, inverse = _context_tables(tuple(map(tuple, grid_shapes)), tuple(map(tuple, offsets)), latents.device)
    return _gather_context(latents, index, inverse)


# -- Laplace rate ------------------------------------------------------------------------------


@torch.library.custom_op("ddfast::laplace_rate", mutates_args=())
def _laplace_rate(x: Tensor, mu: Tensor, log_scale: Tensor) -> Tensor:
    return laplace_kernels.rate_forward(x, mu, log_scale)


@_laplace_rate.register_fake
def _(x, mu, log_scale):
    return torch.empty_like(x)


@torch.library.custom_op("ddfast::laplace_rate_backward", mutates_args=())
def _laplace_rate_backward(x: Tensor, mu: Tensor, log_scale: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return laplace_kernels.rate_backward(x, mu, log_scale, grad)


@_laplace_rate_backward.register_fake
def _(x, mu, log_scale, grad):
    return torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)


def _rate_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _rate_grad(ctx, grad):
    return _laplace_rate_backward(*ctx.saved_tensors, grad)


_laplace_rate.register_autograd(_rate_grad, setup_context=_rate_setup)


def laplace_rate(x: Tensor, mu: Tensor, log_scale: Tensor) -> Tensor:
    """Triton twin of torch_ops.laplace_rate (inputs broadcast to x's shape)."""
    mu, log_scale = mu.expand_as(x), log_scale.expand_as(x)
    return _laplace_rate(x, mu, log_scale)


# -- upsampling pyramid ------------------------------------------------------------------------


@torch.library.custom_op("ddfast::upsample_level", mutates_args=())
def _upsample_level(x: Tensor, taps: Tensor, out_h: int, out_w: int) -> Tensor:
    return upsample_kernels.upsample_level(x, taps, (out_h, out_w))


@_upsample_level.register_fake
def _(x, taps, out_h, out_w):
    return x.new_empty(x.shape[0], x.shape[1], out_h, out_w)


@torch.library.custom_op("ddfast::upsample_level_backward", mutates_args=())
def _upsample_level_backward(x: Tensor, taps: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    return upsample_kernels.upsample_level_backward(x, taps, grad)


@_upsample_level_backward.register_fake
def _(x, taps, grad):
    return torch.empty_like(x), torch.empty_like(taps)


def _up_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])


def _up_grad(ctx, grad):
    x, taps = ctx.saved_tensors
    grad_x, grad_taps = _upsample_level_backward(x, taps, grad)
    return grad_x, grad_taps, None, None


_upsample_level.register_autograd(_up_grad, setup_context=_up_setup)


def upsample_pyramid(latents: Tensor, grid_shapes: Sequence[tuple[int, int]], kernel: Tensor) -> Tensor:
    """Triton twin of torch_ops.upsample_pyramid (one polyphase kernel launch per level)."""
    return run_pyramid(latents, grid_shapes, kernel, lambda maps, taps, size: _upsample_level(maps, taps, *size))


# -- fused synthesis head ----------------------------------------------------------------------


@torch.library.custom_op("ddfast::mlp2", mutates_args=())
def _mlp2(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    return mlp_kernels.mlp2_forward(x, w1, b1, w2, b2)


@_mlp2.register_fake
def _(x, w1, b1, w2, b2):
    return x.new_empty(x.shape[0], x.shape[1], w2.shape[2])


@torch.library.custom_op("ddfast::mlp2_backward", mutates_args=())
def _mlp2_backward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, grad: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return mlp_kernels.mlp2_backward(x, w1, b1, w2, grad)


@_mlp2_backward.register_fake
def _(x, w1, b1, w2, grad):
    return (torch.empty_like(x), torch.empty_like(w1), torch.empty_like(b1), torch.empty_like(w2),
            grad.new_empty(grad.shape[0], grad.shape[2]))


def _mlp2_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:4])


def _mlp2_grad(ctx, grad):
    return _mlp2_backward(*ctx.saved_tensors, grad)


_mlp2.register_autograd(_mlp2_grad, setup_context=_mlp2_setup)


def supports_fused_mlp(relus: Sequence[bool]) -> bool:
    """The fused kernel covers the v4 head: two layers, ReLU after the first only."""
    return tuple(relus) == (True, False)


def pointwise_mlp(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], relus: Sequence[bool]) -> Tensor:
    """Triton twin of torch_ops.pointwise_mlp for the two-layer head."""
    (w1, w2), (b1, b2) = weights, biases
    return _mlp2(x, w1, b1, w2, b2)
