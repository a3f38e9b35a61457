"""The native CPU paths of ddfast.ops (C++ in ``ddfast._cpu``), registered as torch custom ops.

The CPU counterpart of ``triton_ops``: float32 CPU tensors in and out, the torch implementations in
``torch_ops`` as their twins. Each op has a fake implementation (so torch.compile traces through
it) and an autograd formula whose backward is another custom op. The C++ kernels take numpy views
of contiguous tensors and release the GIL.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ddfast import _cpu
from ddfast.ops.torch_ops import neighbour_index, polyphase_taps

HEAD_MAX_IN, HEAD_MAX_OUT = 8, 4
ARM_WIDTHS, ARM_OUT = (16, 32, 64), 2


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _empty(like: Tensor) -> Tensor:
    """A contiguous tensor shaped like ``like``: what the kernels return, whatever its strides (fakes)."""
    return like.new_empty(like.shape)


def supports(x: Tensor) -> bool:
    """Whether the native kernels take this tensor: float32 on the CPU."""
    return x.device.type == "cpu" and x.dtype == torch.float32


# -- pointwise MLP, any depth ----------------------------------------------------------------------


@torch.library.custom_op("ddfast::cpu_mlp", mutates_args=())
def _mlp(x: Tensor, weights: list[Tensor], biases: list[Tensor], relus: list[bool]) -> Tensor:
    return torch.from_numpy(_cpu.mlp_forward(_np(x), [_np(w) for w in weights], [_np(b) for b in biases], relus))


@_mlp.register_fake
def _(x, weights, biases, relus):
    return x.new_empty(x.shape[0], x.shape[1], weights[-1].shape[-1])


@torch.library.custom_op("ddfast::cpu_mlp_backward", mutates_args=())
def _mlp_backward(x: Tensor, weights: list[Tensor], biases: list[Tensor], relus: list[bool], grad: Tensor,
                  need_grad_x: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    grad_x, grad_w, grad_b = _cpu.mlp_backward(_np(x), [_np(w) for w in weights], [_np(b) for b in biases], relus,
                                               _np(grad), need_grad_x)
    grad_x = torch.from_numpy(grad_x) if grad_x is not None else x.new_zeros(0)
    return grad_x, [torch.from_numpy(g) for g in grad_w], [torch.from_numpy(g) for g in grad_b]


@_mlp_backward.register_fake
def _(x, weights, biases, relus, grad, need_grad_x):
    return (_empty(x) if need_grad_x else x.new_empty(0), [_empty(w) for w in weights],
            [_empty(b) for b in biases])


def _mlp_setup(ctx, inputs, output):
    x, weights, biases, relus = inputs
    ctx.relus = relus
    ctx.layers = len(weights)
    ctx.save_for_backward(x, *weights, *biases)


def _mlp_grad(ctx, grad):
    x, *params = ctx.saved_tensors
    weights, biases = params[:ctx.layers], params[ctx.layers:]
    need_x = ctx.needs_input_grad[0]
    grad_x, grad_w, grad_b = _mlp_backward(x, weights, biases, ctx.relus, grad.contiguous(), need_x)
    return (grad_x if need_x else None), grad_w, grad_b, None


_mlp.register_autograd(_mlp_grad, setup_context=_mlp_setup)


# -- the fused two-layer head (v4 synthesis) ---------------------------------------------------------


@torch.library.custom_op("ddfast::cpu_head", mutates_args=())
def _head(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    return torch.from_numpy(_cpu.head_forward(_np(x), _np(w1), _np(b1), _np(w2), _np(b2)))


@_head.register_fake
def _(x, w1, b1, w2, b2):
    return x.new_empty(x.shape[0], x.shape[1], w2.shape[2])


@torch.library.custom_op("ddfast::cpu_head_backward", mutates_args=())
def _head_backward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, grad: Tensor, need_grad_x: bool
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    grads = _cpu.head_backward(_np(x), _np(w1), _np(b1), _np(w2), _np(b2), _np(grad), need_grad_x)
    grad_x = torch.from_numpy(grads[0]) if grads[0] is not None else x.new_zeros(0)
    return (grad_x, *(torch.from_numpy(g) for g in grads[1:]))


@_head_backward.register_fake
def _(x, w1, b1, w2, b2, grad, need_grad_x):
    return (_empty(x) if need_grad_x else x.new_empty(0), _empty(w1), _empty(b1),
            _empty(w2), _empty(b2))


def _head_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _head_grad(ctx, grad):
    need_x = ctx.needs_input_grad[0]
    grad_x, *rest = _head_backward(*ctx.saved_tensors, grad.contiguous(), need_x)
    return (grad_x if need_x else None), *rest


_head.register_autograd(_head_grad, setup_context=_head_setup)


# -- the ARM: depth ReLU layers C -> C, then C -> 2 ------------------------------------------------------


@torch.library.custom_op("ddfast::cpu_arm", mutates_args=())
def _arm(x: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
    return torch.from_numpy(_cpu.arm_forward(_np(x), [_np(w) for w in weights], [_np(b) for b in biases]))


@_arm.register_fake
def _(x, weights, biases):
    return x.new_empty(x.shape[0], x.shape[1], ARM_OUT)


@torch.library.custom_op("ddfast::cpu_arm_backward", mutates_args=())
def _arm_backward(x: Tensor, weights: list[Tensor], biases: list[Tensor], grad: Tensor, need_grad_x: bool
                  ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    grad_x, grad_w, grad_b = _cpu.arm_backward(_np(x), [_np(w) for w in weights], [_np(b) for b in biases],
                                               _np(grad), need_grad_x)
    grad_x = torch.from_numpy(grad_x) if grad_x is not None else x.new_zeros(0)
    return grad_x, [torch.from_numpy(g) for g in grad_w], [torch.from_numpy(g) for g in grad_b]


@_arm_backward.register_fake
def _(x, weights, biases, grad, need_grad_x):
    return (_empty(x) if need_grad_x else x.new_empty(0), [_empty(w) for w in weights],
            [_empty(b) for b in biases])


def _arm_setup(ctx, inputs, output):
    x, weights, biases = inputs
    ctx.layers = len(weights)
    ctx.save_for_backward(x, *weights, *biases)


def _arm_grad(ctx, grad):
    x, *params = ctx.saved_tensors
    need_x = ctx.needs_input_grad[0]
    grad_x, grad_w, grad_b = _arm_backward(x, params[:ctx.layers], params[ctx.layers:], grad.contiguous(), need_x)
    return (grad_x if need_x else None), grad_w, grad_b


_arm.register_autograd(_arm_grad, setup_context=_arm_setup)


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


@torch.library.custom_op("ddfast::cpu_latent_rate", mutates_args=())
def _latent_rate(latents: Tensor, neighbours: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
    return torch.from_numpy(_cpu.latent_rate_forward(_np(latents), _np(neighbours), [_np(w) for w in weights],
                                                     [_np(b) for b in biases]))


@_latent_rate.register_fake
def _(latents, neighbours, weights, biases):
    return _empty(latents)


@torch.library.custom_op("ddfast::cpu_latent_rate_backward", mutates_args=())
def _latent_rate_backward(latents: Tensor, neighbours: Tensor, weights: list[Tensor], biases: list[Tensor],
                          grad: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    grad_latents, grad_w, grad_b = _cpu.latent_rate_backward(
        _np(latents), _np(neighbours), [_np(w) for w in weights], [_np(b) for b in biases], _np(grad))
    return torch.from_numpy(grad_latents), [torch.from_numpy(g) for g in grad_w], [torch.from_numpy(g) for g in grad_b]


@_latent_rate_backward.register_fake
def _(latents, neighbours, weights, biases, grad):
    return _empty(latents), [_empty(w) for w in weights], [_empty(b) for b in biases]


def _latent_rate_setup(ctx, inputs, output):
    latents, neighbours, weights, biases = inputs
    ctx.layers = len(weights)
    ctx.save_for_backward(latents, neighbours, *weights, *biases)


def _latent_rate_grad(ctx, grad):
    latents, neighbours, *params = ctx.saved_tensors
    grad_latents, grad_w, grad_b = _latent_rate_backward(latents, neighbours, params[:ctx.layers],
                                                         params[ctx.layers:], grad.contiguous())
    return grad_latents, None, grad_w, grad_b


_latent_rate.register_autograd(_latent_rate_grad, setup_context=_latent_rate_setup)


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


@torch.library.custom_op("ddfast::cpu_conv3", mutates_args=())
def _conv3(x: Tensor, weight: Tensor, bias: Tensor, relu: bool) -> Tensor:
    return torch.from_numpy(_cpu.conv3_forward(_np(x), _np(weight), _np(bias), relu))


@_conv3.register_fake
def _(x, weight, bias, relu):
    return _empty(x)


@torch.library.custom_op("ddfast::cpu_conv3_backward", mutates_args=())
def _conv3_backward(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor, grad: Tensor, relu: bool, need_grad_x: bool
                    ) -> tuple[Tensor, Tensor, Tensor]:
    grad_x, grad_w, grad_b = _cpu.conv3_backward(_np(x), _np(y), _np(weight), _np(bias), _np(grad), relu, need_grad_x)
    grad_x = torch.from_numpy(grad_x) if grad_x is not None else x.new_zeros(0)
    return grad_x, torch.from_numpy(grad_w), torch.from_numpy(grad_b)


@_conv3_backward.register_fake
def _(x, y, weight, bias, grad, relu, need_grad_x):
    return (_empty(x) if need_grad_x else x.new_empty(0), _empty(weight), _empty(bias))


def _conv3_setup(ctx, inputs, output):
    x, weight, bias, relu = inputs
    ctx.relu = relu
    ctx.save_for_backward(x, output, weight, bias)


def _conv3_grad(ctx, grad):
    need_x = ctx.needs_input_grad[0]
    grad_x, grad_w, grad_b = _conv3_backward(*ctx.saved_tensors, grad.contiguous(), ctx.relu, need_x)
    return (grad_x if need_x else None), grad_w, grad_b, None


_conv3.register_autograd(_conv3_grad, setup_context=_conv3_setup)


def residual_conv(x: Tensor, weight: Tensor, bias: Tensor, relu: bool) -> Tensor:
    """Native twin of torch_ops.residual_conv (3x3 kernels)."""
    return _conv3(x, weight, bias, relu)


# -- the upsampling pyramid --------------------------------------------------------------------------------


@torch.library.custom_op("ddfast::cpu_upsample_pyramid", mutates_args=())
def _upsample_pyramid(latents: Tensor, taps: Tensor, grid_heights: list[int], grid_widths: list[int]) -> Tensor:
    return torch.from_numpy(_cpu.upsample_pyramid_forward(_np(latents), _np(taps),
                                                          list(zip(grid_heights, grid_widths))))


@_upsample_pyramid.register_fake
def _(latents, taps, grid_heights, grid_widths):
    s, n, _ = latents.shape
    return latents.new_empty(s, n, grid_heights[0], grid_widths[0], len(grid_heights))


@torch.library.custom_op("ddfast::cpu_upsample_pyramid_backward", mutates_args=())
def _upsample_pyramid_backward(latents: Tensor, taps: Tensor, grad: Tensor, grid_heights: list[int],
                               grid_widths: list[int]) -> tuple[Tensor, Tensor]:
    grad_latents, grad_taps = _cpu.upsample_pyramid_backward(_np(latents), _np(taps), _np(grad),
                                                             list(zip(grid_heights, grid_widths)))
    return torch.from_numpy(grad_latents), torch.from_numpy(grad_taps)


@_upsample_pyramid_backward.register_fake
def _(latents, taps, grad, grid_heights, grid_widths):
    return _empty(latents), _empty(taps)


def _pyramid_setup(ctx, inputs, output):
    ctx.grids = inputs[2:]
    ctx.save_for_backward(inputs[0], inputs[1])


def _pyramid_grad(ctx, grad):
    grad_latents, grad_taps = _upsample_pyramid_backward(*ctx.saved_tensors, grad.contiguous(), *ctx.grids)
    return grad_latents, grad_taps, None, None


_upsample_pyramid.register_autograd(_pyramid_grad, setup_context=_pyramid_setup)


def upsample_pyramid(latents: Tensor, grid_shapes: Sequence[tuple[int, int]], kernel: Tensor) -> Tensor:
    """Native twin of torch_ops.upsample_pyramid: the whole stack in one pass, no per-level arrays.

    Returned as a [S, n, L, H, W] view of a channels-last array, so the synthesis head's pixel
    layout (L last) is a free reshape."""
    heights, widths = zip(*grid_shapes)
    return _upsample_pyramid(latents, polyphase_taps(kernel), list(heights), list(widths)).permute(0, 1, 4, 2, 3)


# -- Laplace rate -------------------------------------------------------------------------------------------


@torch.library.custom_op("ddfast::cpu_laplace_rate", mutates_args=())
def _laplace_rate(x: Tensor, mu: Tensor, log_scale: Tensor) -> Tensor:
    return torch.from_numpy(_cpu.rate_forward(_np(x), _np(mu), _np(log_scale)))


@_laplace_rate.register_fake
def _(x, mu, log_scale):
    return _empty(x)


@torch.library.custom_op("ddfast::cpu_laplace_rate_backward", mutates_args=())
def _laplace_rate_backward(x: Tensor, mu: Tensor, log_scale: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(torch.from_numpy(g) for g in _cpu.rate_backward(_np(x), _np(mu), _np(log_scale), _np(grad)))


@_laplace_rate_backward.register_fake
def _(x, mu, log_scale, grad):
    return _empty(x), _empty(x), _empty(x)


def _rate_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _rate_grad(ctx, grad):
    return _laplace_rate_backward(*ctx.saved_tensors, grad.contiguous())


_laplace_rate.register_autograd(_rate_grad, setup_context=_rate_setup)


def laplace_rate(x: Tensor, mu: Tensor, log_scale: Tensor) -> Tensor:
    """Native twin of torch_ops.laplace_rate (mu and log_scale broadcast to x's shape)."""
    return _laplace_rate(x, mu.expand_as(x), log_scale.expand_as(x))


# -- the training quantizer: softround(softround(x, T) + noise, T) -------------------------------------------


@torch.library.custom_op("ddfast::cpu_noisy_softround", mutates_args=())
def _noisy_softround(x: Tensor, noise: Tensor, temperature: float) -> Tensor:
    return torch.from_numpy(_cpu.softround_forward(_np(x), _np(noise), temperature))


@_noisy_softround.register_fake
def _(x, noise, temperature):
    return _empty(x)


@torch.library.custom_op("ddfast::cpu_noisy_softround_backward", mutates_args=())
def _noisy_softround_backward(x: Tensor, noise: Tensor, temperature: float, grad: Tensor) -> Tensor:
    return torch.from_numpy(_cpu.softround_backward(_np(x), _np(noise), temperature, _np(grad)))


@_noisy_softround_backward.register_fake
def _(x, noise, temperature, grad):
    return _empty(x)


def _softround_setup(ctx, inputs, output):
    ctx.temperature = inputs[2]
    ctx.save_for_backward(inputs[0], inputs[1])


def _softround_grad(ctx, grad):
    x, noise = ctx.saved_tensors
    return _noisy_softround_backward(x, noise, ctx.temperature, grad.contiguous()), None, None


_noisy_softround.register_autograd(_softround_grad, setup_context=_softround_setup)


def noisy_softround(x: Tensor, noise: Tensor, temperature: float) -> Tensor:
    """Native twin of torch_ops.noisy_softround (no gradient to the noise)."""
    return _noisy_softround(x, noise, float(temperature))
