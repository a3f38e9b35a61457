"""One function per hot operation of the codec, with a ``backend`` choice.

``backend="auto"`` takes the Triton kernel for CUDA tensors when Triton is installed and the torch
reference otherwise; ``"torch"`` and ``"triton"`` force one. On a CPU the Triton kernels run only
under ``TRITON_INTERPRET=1`` (slowly: that mode exists to test them).
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

BACKENDS = ("auto", "torch", "triton")


@lru_cache(maxsize=1)
def _triton_module():
    """ddfast.ops.triton_ops, or None when Triton cannot be imported."""
    try:
        return importlib.import_module("ddfast.ops.triton_ops")
    except ImportError:
        return None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def resolve_backend(backend: str, tensor: torch.Tensor) -> str:
    """The concrete backend ('torch' or 'triton') that ``backend`` selects for ``tensor``."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown ops backend {backend!r}; choose one of {BACKENDS}")
    if backend == "torch":
        return "torch"
    runnable = tensor.is_cuda or _interpreting()
    if backend == "auto":
        return "triton" if tensor.is_cuda and _triton_module() is not None else "torch"
    if _triton_module() is None:
        raise ConfigError("the Triton backend needs the triton package (pip install triton)")
    if not runnable:
        raise ConfigError("the Triton backend runs on CUDA tensors (or on the CPU under TRITON_INTERPRET=1)")
    return "triton"


def gather_context(latents: torch.Tensor, grid_shapes: Sequence[tuple[int, int]],
                   offsets: Sequence[tuple[int, int]], backend: str = "auto") -> torch.Tensor:
    """[B, M] flat latent grids -> [B, M, C] causal contexts (zeros outside each grid)."""
    if resolve_backend(backend, latents) == "triton":
        return _triton_module().gather_context(latents, grid_shapes, offsets)
    return torch_ops.gather_context(latents, grid_shapes, offsets)


def laplace_rate(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor,
                 backend: str = "auto") -> torch.Tensor:
    """Bits of each integer(-ish) x under Laplace(mu, exp(clamp(s - 4, -4.6, 5))), at most 16."""
    if resolve_backend(backend, x) == "triton":
        return _triton_module().laplace_rate(x, mu, log_scale)
    return torch_ops.laplace_rate(x, mu, log_scale)


def upsample_pyramid(latents: torch.Tensor, grid_shapes: Sequence[tuple[int, int]],
                     kernel: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """[S, n, M] flat grids and [S, K, K] kernels -> [S, n, L, H, W] upsampled latent stack."""
    if kernel.shape[-1] % 4:
        raise ConfigError(f"the upsampling kernel size must be a multiple of 4, got {kernel.shape[-1]}")
    if resolve_backend(backend, latents) == "triton":
        return _triton_module().upsample_pyramid(latents, grid_shapes, kernel)
    return torch_ops.upsample_pyramid(latents, grid_shapes, kernel)


def pointwise_mlp(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                  relus: Sequence[bool], backend: str = "auto") -> torch.Tensor:
    """Per-slice MLP over pixels [S, P, C0] -> [S, P, Ck] (weights [S, Ci, Ci+1], biases [S, Ci+1]).

    The Triton path fuses the two-layer head of the v4 decoders; other shapes use the torch path.
    """
    chosen = resolve_backend(backend, x)
    if chosen == "triton" and _triton_module().supports_fused_mlp(relus):
        return _triton_module().pointwise_mlp(x, weights, biases, relus)
    return torch_ops.pointwise_mlp(x, weights, biases, relus)


__all__ = ["BACKENDS", "gather_context", "laplace_rate", "laplace_scale", "pointwise_mlp", "resolve_backend",
           "upsample_pyramid"]
