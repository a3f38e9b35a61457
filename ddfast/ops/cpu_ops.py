"""The native CPU paths of ddfast.ops (C++ in ``ddfast._cpu``), registered as torch custom ops.

The CPU counterpart of ``triton_ops``: float32 CPU tensors in and out, the torch implementations in
``torch_ops`` as their twins. Each op has a fake implementation (so torch.compile traces through
it) and an autograd formula whose backward is another custom op (both registered by
``ddfast.ops._registry``). The C++ kernels take numpy views of contiguous tensors and release the
GIL. Type hints stay real objects with ``typing.List`` (no ``from __future__ import annotations``,
no builtin ``list[...]``): they are the ops' schemas, readable by torch 2.4.
"""
from functools import lru_cache
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ddfast import _cpu
from ddfast.ops._registry import register_op
from ddfast.ops.torch_ops import neighbour_index, polyphase_taps

HEAD_MAX_IN, HEAD_MAX_OUT = 8, 4
ARM_WIDTHS, ARM_OUT = (16, 32, 64), 2


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _nps(ts: List[Tensor]) -> List[np.ndarray]:
    return [_np(t) for t in ts]


def _tensors(arrays: List[np.ndarray]) -> List[Tensor]:
    return [torch.from_numpy(a) for a in arrays]


def _empty(like: Tensor) -> Tensor:
    """A contiguous tensor shaped like ``like``: what the kernels return, whatever its strides (fakes)."""
    return like.new_empty(like.shape)


def _input_grad(grad_x: Optional[np.ndarray], x: Tensor) -> Tensor:
    """A kernel's input gradient, or an empty tensor where it was not asked for (an op returns tensors only)."""
    return torch.from_numpy(grad_x) if grad_x is not None else x.new_zeros(0)


def _fake_input_grad(x: Tensor, need_grad_x: bool) -> Tensor:
    return _empty(x) if need_grad_x else x.new_empty(0)


def supports(x: Tensor) -> bool:
    """Whether the native kernels take this tensor: float32 on the CPU."""
    return x.device.type == "cpu" and x.dtype == torch.float32


# -- pointwise MLP, any depth ----------------------------------------------------------------------


@register_op("cpu_mlp_backward", fake=lambda x, weights, biases, relus, grad, need_grad_x: (
    _fake_input_grad(x, need_grad_x), [_empty(w) for w in weights], [_empty(b) for b in biases]))
def _mlp_backward(x: Tensor, weights: List[Tensor], biases: List[Tensor], relus: List[bool], grad: Tensor,
                  need_grad_x: bool) -> tuple[Tensor, List[Tensor], List[Tensor]]:
    grad_x, grad_w, grad_b = _cpu.mlp_backward(_np(x), _nps(weights), _nps(biases), relus, _np(grad), need_grad_x)
    return _input_grad(grad_x, x), _tensors(grad_w), _tensors(grad_b)


def _mlp_grad(ctx, grad):
    x, weights, biases, relus = ctx.saved
    need_x = ctx.needs_input_grad[0]
    grad_x, grad_w, grad_b = _mlp_backward(x, weights, biases, relus, grad.contiguous(), need_x)
    return (grad_x if need_x else None), grad_w, grad_b, None


@register_op("cpu_mlp", fake=lambda x, weights, biases, relus: x.new_empty(x.shape[0], x.shape[1],
                                                                           weights[-1].shape[-1]),
             backward=_mlp_grad)
def _mlp(x: Tensor, weights: List[Tensor], biases: List[Tensor], relus: List[bool]) -> Tensor:
    return torch.from_numpy(_cpu.mlp_forward(_np(x), _nps(weights), _nps(biases), relus))


# -- the fused two-layer head (v4 synthesis) ---------------------------------------------------------


@register_op("cpu_head_backward", fake=lambda x, w1, b1, w2, b2, grad, need_grad_x: (
    _fake_input_grad(x, need_grad_x), _empty(w1), _empty(b1), _empty(w2), _empty(b2)))
def _head_backward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, grad: Tensor, need_grad_x: bool
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    grad_x, *grads = _cpu.head_backward(_np(x), _np(w1), _np(b1), _np(w2), _np(b2), _np(grad), need_grad_x)
    return (_input_grad(grad_x, x), *_tensors(grads))


def _head_grad(ctx, grad):
    need_x = ctx.needs_input_grad[0]
    grad_x, *rest = _head_backward(*ctx.saved, grad.contiguous(), need_x)
    return (grad_x if need_x else None), *rest


@register_op("cpu_head", fake=lambda x, w1, b1, w2, b2: x.new_empty(x.shape[0], x.shape[1], w2.shape[2]),
             backward=_head_grad)
def _head(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    return torch.from_numpy(_cpu.head_forward(_np(x), _np(w1), _np(b1), _np(w2), _np(b2)))


# -- the ARM: depth ReLU layers C -> C, then C -> 2 ------------------------------------------------------


@register_op("cpu_arm_backward", fake=lambda x, weights, biases, grad, need_grad_x: (
    _fake_input_grad(x, need_grad_x), [_empty(w) for w in weights], [_empty(b) for b in biases]))
def _arm_backward(x: Tensor, weights: List[Tensor], biases: List[Tensor], grad: Tensor, need_grad_x: bool
                  ) -> tuple[Tensor, List[Tensor], List[Tensor]]:
    grad_x, grad_w, grad_b = _cpu.arm_backward(_np(x), _nps(weights), _nps(biases), _np(grad), need_grad_x)
    return _input_grad(grad_x, x), _tensors(grad_w), _tensors(grad_b)


def _arm_grad(ctx, grad):
    need_x = ctx.needs_input_grad[0]
    grad_x, grad_w, grad_b = _arm_backward(*ctx.saved, grad.contiguous(), need_x)
    return (grad_x if need_x else None), grad_w, grad_b


@register_op("cpu_arm", fake=lambda x, weights, biases: x.new_empty(x.shape[0], x.shape[1], ARM_OUT),
             backward=_arm_grad)
def _arm(x: Tensor, weights: List[Tensor], biases: List[Tensor]) -> Tensor:
    return torch.from_numpy(_cpu.arm_forward(_np(x), _nps(weights), _nps(biases)))


def is_arm(weights: Sequence[Tensor], relus: Sequence[bool]) -> bool:
    """ReLU layers C -> C (C = 16, 32 or 64), then a linear C -> 2: the ARM's shape."""
    width = weights[0].shape[-2]
    return (width in ARM_WIDTHS and tuple(relus) == (True,) * (len(weights) - 1) + (False,)
            and all(w.shape[-2:] == (width, width) for w in weights[:-1])
            and weights[-1].shape[-2:] == (width, ARM_OUT))


def is_head(weights: Sequence[Tensor], relus: Sequence[bool]) -> bool:
    """Two layers, ReLU after the first only, at most 8 inputs and 4 outputs: the fused head."""
    return (tuple(relus) == (True, False) and weights[0].shape[-2] <= HEAD_MAX_IN
            and weights[1].shape[-1] <= HEAD_MAX_OUT)


def pointwise_mlp(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], relus: Sequence[bool]) -> Tensor:
    """Native twin of torch_ops.pointwise_mlp: the fused head or the ARM kernel where the shape is
    theirs, else the general MLP."""
    if is_head(weights, relus):
        (w1, w2), (b1, b2) = weights, biases
        return _head(x, w1, b1, w2, b2)
    if is_arm(weights, relus):
        return _arm(x, list(weights), list(biases))
    return _mlp(x, list(weights), list(biases), [bool(r) for r in relus])


# -- the latent rate: context gather + ARM + Laplace bits in one pass ----------------------------------------


@register_op("cpu_latent_rate_backward", fake=lambda latents, neighbours, weights, biases, grad: (
    _empty(latents), [_empty(w) for w in weights], [_empty(b) for b in biases]))
def _latent_rate_backward(latents: Tensor, neighbours: Tensor, weights: List[Tensor], biases: List[Tensor],
                          grad: Tensor) -> tuple[Tensor, List[Tensor], List[Tensor]]:
    grad_latents, grad_w, grad_b = _cpu.latent_rate_backward(_np(latents), _np(neighbours), _nps(weights),
                                                             _nps(biases), _np(grad))
    return torch.from_numpy(grad_latents), _tensors(grad_w), _tensors(grad_b)


def _latent_rate_grad(ctx, grad):
    latents, neighbours, weights, biases = ctx.saved
    grad_latents, grad_w, grad_b = _latent_rate_backward(latents, neighbours, weights, biases, grad.contiguous())
    return grad_latents, None, grad_w, grad_b


@register_op("cpu_latent_rate", fake=lambda latents, neighbours, weights, biases: _empty(latents),
             backward=_latent_rate_grad)
def _latent_rate(latents: Tensor, neighbours: Tensor, weights: List[Tensor], biases: List[Tensor]) -> Tensor:
    return torch.from_numpy(_cpu.latent_rate_forward(_np(latents), _np(neighbours), _nps(weights), _nps(biases)))


def latent_rate(latents: Tensor, grid_shapes: Sequence[tuple[int, int]], offsets: Sequence[tuple[int, int]],
                weights: Sequence[Tensor], biases: Sequence[Tensor]) -> Tensor:
    """Native twin of ops.latent_rate(backend="torch"): gather, ARM and rate in one pass."""
    neighbours = neighbour_table(tuple(map(tuple, grid_shapes)), tuple(map(tuple, offsets)))
    return _latent_rate(latents, neighbours, list(weights), list(biases))


@lru_cache(maxsize=64)
def neighbour_table(grid_shapes: tuple[tuple[int, int], ...], offsets: tuple[tuple[int, int], ...]) -> Tensor:
    """torch_ops.neighbour_index as the int32 [M, C] table the native kernel reads."""
    return neighbour_index(grid_shapes, offsets).to(torch.int32)


# -- the synthesis's residual 3x3 convs ---------------------------------------------------------------


def _planar_shape(x: Tensor, channels_last: bool) -> tuple[int, ...]:
    """The [S, n, C, H, W] shape of the kernel's output, for x [S, n, C, H, W] or (channels last) [S, n, H, W, C]."""
    s, n = x.shape[:2]
    return (s, n, x.shape[4], x.shape[2], x.shape[3]) if channels_last else tuple(x.shape)


@register_op("cpu_conv3_backward", fake=lambda x, y, weight, bias, grad, relu, need_grad_x, channels_last: (
    _fake_input_grad(x, need_grad_x), _empty(weight), _empty(bias)))
def _conv3_backward(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor, grad: Tensor, relu: bool, need_grad_x: bool,
                    channels_last: bool) -> tuple[Tensor, Tensor, Tensor]:
    grad_x, grad_w, grad_b = _cpu.conv3_backward(_np(x), _np(y), _np(weight), _np(bias), _np(grad), relu, need_grad_x,
                                                 channels_last)
    return _input_grad(grad_x, x), torch.from_numpy(grad_w), torch.from_numpy(grad_b)


def _conv3_grad(ctx, grad):
    x, y, weight, bias, relu, channels_last = ctx.saved
    need_x = ctx.needs_input_grad[0]
    grad_x, grad_w, grad_b = _conv3_backward(x, y, weight, bias, grad.contiguous(), relu, need_x, channels_last)
    return (grad_x if need_x else None), grad_w, grad_b, None, None


# the backward reads the output (the ReLU's mask and the residual), so it is saved beside the inputs
@register_op("cpu_conv3",
             fake=lambda x, weight, bias, relu, channels_last: x.new_empty(_planar_shape(x, channels_last)),
             save=lambda inputs, output: (inputs[0], output, *inputs[1:]), backward=_conv3_grad)
def _conv3(x: Tensor, weight: Tensor, bias: Tensor, relu: bool, channels_last: bool) -> Tensor:
    return torch.from_numpy(_cpu.conv3_forward(_np(x), _np(weight), _np(bias), relu, channels_last))


def residual_conv(x: Tensor, weight: Tensor, bias: Tensor, relu: bool) -> Tensor:
    """Native twin of torch_ops.residual_conv (3x3 kernels). An x whose memory is channels-last (the
    synthesis head's output, viewed as [S, n, C, H, W]) is read in place: no transposing copy
    forward, and its gradient comes back in that layout."""
    channels_last = not x.is_contiguous() and x.permute(0, 1, 3, 4, 2).is_contiguous()
    return _conv3(x.permute(0, 1, 3, 4, 2) if channels_last else x, weight, bias, relu, channels_last)


# -- the upsampling pyramid --------------------------------------------------------------------------------


@register_op("cpu_upsample_pyramid_backward",
             fake=lambda latents, taps, grad, grid_heights, grid_widths: (_empty(latents), _empty(taps)))
def _upsample_pyramid_backward(latents: Tensor, taps: Tensor, grad: Tensor, grid_heights: List[int],
                               grid_widths: List[int]) -> tuple[Tensor, Tensor]:
    grad_latents, grad_taps = _cpu.upsample_pyramid_backward(_np(latents), _np(taps), _np(grad),
                                                             list(zip(grid_heights, grid_widths)))
    return torch.from_numpy(grad_latents), torch.from_numpy(grad_taps)


def _pyramid_grad(ctx, grad):
    latents, taps, heights, widths = ctx.saved
    return (*_upsample_pyramid_backward(latents, taps, grad.contiguous(), heights, widths), None, None)


@register_op("cpu_upsample_pyramid", fake=lambda latents, taps, grid_heights, grid_widths: latents.new_empty(
    *latents.shape[:2], grid_heights[0], grid_widths[0], len(grid_heights)), backward=_pyramid_grad)
def _upsample_pyramid(latents: Tensor, taps: Tensor, grid_heights: List[int], grid_widths: List[int]) -> Tensor:
    return torch.from_numpy(_cpu.upsample_pyramid_forward(_np(latents), _np(taps),
                                                          list(zip(grid_heights, grid_widths))))


def upsample_pyramid(latents: Tensor, grid_shapes: Sequence[tuple[int, int]], kernel: Tensor) -> Tensor:
    """Native twin of torch_ops.upsample_pyramid: the whole stack in one pass, no per-level arrays.

    Returned as a [S, n, L, H, W] view of a channels-last array, so the synthesis head's pixel
    layout (L last) is a free reshape."""
    heights, widths = zip(*grid_shapes)
    return _upsample_pyramid(latents, polyphase_taps(kernel), list(heights), list(widths)).permute(0, 1, 4, 2, 3)


# -- Laplace rate -------------------------------------------------------------------------------------------


@register_op("cpu_laplace_rate_backward",
             fake=lambda x, mu, log_scale, grad: (_empty(x), _empty(x), _empty(x)))
def _laplace_rate_backward(x: Tensor, mu: Tensor, log_scale: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(_tensors(_cpu.rate_backward(_np(x), _np(mu), _np(log_scale), _np(grad))))


@register_op("cpu_laplace_rate", fake=lambda x, mu, log_scale: _empty(x),
             backward=lambda ctx, grad: _laplace_rate_backward(*ctx.saved, grad.contiguous()))
def _laplace_rate(x: Tensor, mu: Tensor, log_scale: Tensor) -> Tensor:
    return torch.from_numpy(_cpu.rate_forward(_np(x), _np(mu), _np(log_scale)))


def laplace_rate(x: Tensor, mu: Tensor, log_scale: Tensor) -> Tensor:
    """Native twin of torch_ops.laplace_rate (mu and log_scale broadcast to x's shape)."""
    return _laplace_rate(x, mu.expand_as(x), log_scale.expand_as(x))


# -- the training quantizer: softround(softround(x, T) + noise, T) -------------------------------------------


@register_op("cpu_noisy_softround_backward", fake=lambda x, noise, temperature, grad: _empty(x))
def _noisy_softround_backward(x: Tensor, noise: Tensor, temperature: float, grad: Tensor) -> Tensor:
    return torch.from_numpy(_cpu.softround_backward(_np(x), _np(noise), temperature, _np(grad)))


@register_op("cpu_noisy_softround", fake=lambda x, noise, temperature: _empty(x),
             backward=lambda ctx, grad: (_noisy_softround_backward(*ctx.saved, grad.contiguous()), None, None))
def _noisy_softround(x: Tensor, noise: Tensor, temperature: float) -> Tensor:
    return torch.from_numpy(_cpu.softround_forward(_np(x), _np(noise), temperature))


def noisy_softround(x: Tensor, noise: Tensor, temperature: float) -> Tensor:
    """Native twin of torch_ops.noisy_softround (no gradient to the noise)."""
    return _noisy_softround(x, noise, float(temperature))
