"""One function per hot operation of the codec, with a ``backend`` choice.

Backends: ``"torch"`` (the reference implementations, any device and dtype), ``"cpu"`` (native C++
kernels of ``ddfast._cpu``: float32 CPU tensors), ``"triton"`` (GPU kernels: CUDA tensors, or the
CPU under ``TRITON_INTERPRET=1``, slowly: that mode exists to test them). ``"auto"`` takes Triton
for CUDA tensors when it is installed, the native kernels for float32 CPU tensors, torch otherwise.
"""
from __future__ import annotations

import importlib
import os
from functools import lru_cache
from typing import Sequence

import torch

from ddfast.errors import ConfigError
from ddfast.ops import torch_ops
from ddfast.ops.torch_ops import laplace_scale

BACKENDS = ("auto", "torch", "cpu", "triton")


@lru_cache(maxsize=1)
def _triton_module():
    """ddfast.ops.triton_ops, or None when Triton cannot be imported."""
    try:
        return importlib.import_module("ddfast.ops.triton_ops")
    except ImportError:
        return None


def _load_cpu_module():
    """ddfast.ops.cpu_ops, or None when the native module is missing."""
    try:
        return importlib.import_module("ddfast.ops.cpu_ops")
    except ImportError:
        return None


# Loaded once at import (it is cheap, unlike Triton): a plain global, so torch.compile sees a constant.
_CPU_OPS = _load_cpu_module()


def _cpu_module():
    return _CPU_OPS


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _native_ok(tensor: torch.Tensor) -> bool:
    return tensor.device.type == "cpu" and tensor.dtype == torch.float32 and _cpu_module() is not None


def resolve_backend(backend: str, tensor: torch.Tensor) -> str:
    """The concrete backend ('torch', 'cpu' or 'triton') that ``backend`` selects for ``tensor``."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown ops backend {backend!r}; choose one of {BACKENDS}")
    if backend == "torch":
        return "torch"
    if backend == "auto":
        if tensor.is_cuda and _triton_module() is not None:
            return "triton"
        return "cpu" if _native_ok(tensor) else "torch"
    if backend == "cpu":
        if not _native_ok(tensor):
            raise ConfigError("the cpu backend runs float32 CPU tensors (and needs ddfast's native module); got "
                              f"{tensor.dtype} on {tensor.device}")
        return "cpu"
    if _triton_module() is None:
        raise ConfigError("the Triton backend needs the triton package (pip install triton)")
    if not (tensor.is_cuda or _interpreting()):
        raise ConfigError("the Triton backend runs on CUDA tensors (or on the CPU under TRITON_INTERPRET=1)")
    return "triton"


def gather_context(latents: torch.Tensor, grid_shapes: Sequence[tuple[int, int]],
                   offsets: Sequence[tuple[int, int]], backend: str = "auto") -> torch.Tensor:
    """[B, M] flat latent grids -> [B, M, C] causal contexts (zeros outside each grid)."""
    if resolve_backend(backend, latents) == "triton":
        return _triton_module().gather_context(latents, grid_shapes, offsets)
    return torch_ops.gather_context(latents, grid_shapes, offsets)


def latent_rate(latents: torch.Tensor, grid_shapes: Sequence[tuple[int, int]], offsets: Sequence[tuple[int, int]],
                weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], backend: str = "auto") -> torch.Tensor:
    """Bits [S, n, M] of every latent under its slice's ARM: causal context gather, the ARM's MLP
    (``weights`` [S, C, C] ... [S, C, 2], ReLU between, giving mu and the log-scale) and the Laplace
    rate. The cpu path runs all three in one pass with no context array (C = 16, 32, 64); the
    other backends compose their gather_context, pointwise_mlp and laplace_rate (the torch twin)."""
    relus = [True] * (len(weights) - 1) + [False]
    if resolve_backend(backend, latents) == "cpu" and _cpu_module().is_arm(weights, relus):
        return _cpu_module().latent_rate(latents, grid_shapes, offsets, weights, biases)
    s, n, m = latents.shape
    context = gather_context(latents.reshape(s * n, m), grid_shapes, offsets, backend=backend)
    out = pointwise_mlp(context.reshape(s, n * m, -1), weights, biases, relus, backend=backend)
    return laplace_rate(latents.reshape(s, n * m), out[..., 0], out[..., 1], backend=backend).reshape(s, n, m)


def noisy_softround(x: torch.Tensor, noise: torch.Tensor, temperature: float, backend: str = "auto") -> torch.Tensor:
    """The training quantizer's proxy softround(softround(x, T) + noise, T) (gradient to x only);
    the cpu path fuses both softrounds, forward and backward, into one pass."""
    if resolve_backend(backend, x) == "cpu" and noise.shape == x.shape and _native_ok(noise):
        return _cpu_module().noisy_softround(x, noise, temperature)
    return torch_ops.noisy_softround(x, noise, temperature)


def laplace_rate(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor,
                 backend: str = "auto") -> torch.Tensor:
    """Bits of each integer(-ish) x under Laplace(mu, exp(clamp(s - 4, -4.6, 5))), at most 16."""
    chosen = resolve_backend(backend, x)
    if chosen == "triton":
        return _triton_module().laplace_rate(x, mu, log_scale)
    if chosen == "cpu":
        return _cpu_module().laplace_rate(x, mu, log_scale)
    return torch_ops.laplace_rate(x, mu, log_scale)


def upsample_pyramid(latents: torch.Tensor, grid_shapes: Sequence[tuple[int, int]],
                     kernel: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """[S, n, M] flat grids and [S, K, K] kernels -> [S, n, L, H, W] upsampled latent stack."""
    if kernel.shape[-1] % 4:
        raise ConfigError(f"the upsampling kernel size must be a multiple of 4, got {kernel.shape[-1]}")
    chosen = resolve_backend(backend, latents)
    if chosen == "triton":
        return _triton_module().upsample_pyramid(latents, grid_shapes, kernel)
    if chosen == "cpu":
        return _cpu_module().upsample_pyramid(latents, grid_shapes, kernel)
    return torch_ops.upsample_pyramid(latents, grid_shapes, kernel)


def residual_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool,
                  backend: str = "auto") -> torch.Tensor:
    """Per-slice residual conv with replicate padding: [S, n, C, H, W], weights [S, C, C, k, k], biases
    [S, C] -> act(conv(x) + b + x). The cpu path runs 3x3 kernels natively; Triton uses torch's conv."""
    if resolve_backend(backend, x) == "cpu" and weight.shape[-1] == 3:
        return _cpu_module().residual_conv(x, weight, bias, relu)
    return torch_ops.residual_conv(x, weight, bias, relu)


def pointwise_mlp(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                  relus: Sequence[bool], backend: str = "auto") -> torch.Tensor:
    """Per-slice MLP over pixels [S, P, C0] -> [S, P, Ck] (weights [S, Ci, Ci+1], biases [S, Ci+1]).

    The Triton path fuses the two-layer head of the v4 decoders (other shapes use the torch path);
    the cpu path fuses that head and runs other shapes through the general native MLP.
    """
    chosen = resolve_backend(backend, x)
    if chosen == "triton" and _triton_module().supports_fused_mlp(relus):
        return _triton_module().pointwise_mlp(x, weights, biases, relus)
    if chosen == "cpu":
        return _cpu_module().pointwise_mlp(x, weights, biases, relus)
    return torch_ops.pointwise_mlp(x, weights, biases, relus)


__all__ = ["BACKENDS", "gather_context", "laplace_rate", "latent_rate", "laplace_scale", "noisy_softround",
           "pointwise_mlp", "residual_conv", "resolve_backend", "upsample_pyramid"]
