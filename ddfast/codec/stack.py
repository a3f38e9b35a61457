"""CodecStack: the codecs of S slices with every weight stacked on a leading slice dimension.

One forward decodes all slices together (batched matmuls, grouped convs) -- no loop over slices.
Slices may hold different numbers of images; each is padded to the largest, and callers mask the
padded positions out (see SliceLayout.valid_mask).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ddfast import ops
from ddfast.codec.arm import StackedARM
from ddfast.codec.config import CodecConfig
from ddfast.codec.context import context_offsets
from ddfast.codec.layout import grid_shapes
from ddfast.codec.quantizer import Quantizer
from ddfast.codec.synthesis import StackedSynthesis
from ddfast.codec.upsampler import initial_upsampling_kernel
from ddfast.errors import ConfigError

LATENT_INIT_RANGE = 0.05


class CodecStack(nn.Module):
    """Latents [S, n, M] (M = all grid positions of an image), ARM, upsampler and synthesis of S slices."""

    def __init__(self, num_slices: int, images_per_slice: int, image_size: tuple[int, int], channels: int,
                 config: CodecConfig, generator: torch.Generator | None = None, *, init_latents: bool = True,
                 device: torch.device | str | None = None) -> None:
        """init_latents=False leaves the latents uninitialized, allocated on ``device`` (for loading
        decoded latents without drawing or moving random ones); everything else starts on the CPU."""
        super().__init__()
        self.config = config = config.for_image_size(tuple(image_size))
        self.image_size = tuple(image_size)
        self.channels = channels
        self.grid_shapes = grid_shapes(self.image_size, config.n_grids)
        self.context_offsets = context_offsets(config.arm_context)
        num_latents = sum(h * w for h, w in self.grid_shapes)
        shape = (num_slices, images_per_slice, num_latents)
        if init_latents:
            init = (torch.rand(shape, generator=generator) * 2 - 1) * LATENT_INIT_RANGE
        else:
            init = torch.empty(shape, device=device)
        self.latents = nn.Parameter(init)
        self.arm = StackedARM(num_slices, config.arm_context, config.arm_depth, generator)
        kernel = initial_upsampling_kernel(config.upsample_kernel)
        self.upsampling_kernel = nn.Parameter(kernel.expand(num_slices, -1, -1).clone())
        self.synthesis = StackedSynthesis(num_slices, config.synthesis_layers(channels), generator)

    @property
    def num_slices(self) -> int:
        """Number of stacked slices S."""
        return self.latents.shape[0]

    @property
    def images_per_slice(self) -> int:
        """Images per slice n, padding included (the largest slice's count)."""
        return self.latents.shape[1]

    def quantize(self, quantizer: Quantizer, training: bool, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, backend: str = "auto") -> torch.Tensor:
        """Integer (eval) or proxy-quantized (training) latents Q(gain * y), [S, n, M]."""
        return quantizer(self.config.gain * self.latents, training, noise=noise, generator=generator,
                         backend=backend)

    def decode(self, quantized: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """Quantized latents [S, n, M] -> images [S, n, channels, H, W] (upsampling + synthesis)."""
        stack = ops.upsample_pyramid(quantized, self.grid_shapes, self.upsampling_kernel, backend=backend)
        return self.synthesis(stack, backend=backend)

    def rate(self, quantized: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """Estimated bits of every quantized latent, [S, n, M], from the ARM's Laplace model."""
        weights, biases = self.arm.folded_mlp()
        return ops.latent_rate(quantized, self.grid_shapes, self.context_offsets, weights, biases, backend=backend)

    @torch.no_grad()
    def select(self, index: torch.Tensor) -> "CodecStack":
        """A new stack holding copies of slices ``index`` (a 1-D index tensor) of this one."""
        # A private generator: the throwaway initial values must not advance the global RNG.
        picked = CodecStack(len(index), self.images_per_slice, self.image_size, self.channels, self.config,
                            generator=torch.Generator().manual_seed(0))
        for dst, src in zip(picked.parameters(), self.parameters()):
            dst.copy_(src.index_select(0, index.to(src.device)))
        return picked.to(self.latents.device)

    @torch.no_grad()
    def copy_slices_from(self, other: "CodecStack", index: torch.Tensor) -> None:
        """Overwrite every slice of this stack with slices ``index`` of ``other``."""
        for dst, src in zip(self.parameters(), other.parameters()):
            dst.copy_(src.index_select(0, index.to(src.device)))


def clip_grad_norm_per_slice(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale each slice's gradient so its global norm is at most ``max_norm``; returns the norms [S].

    Every parameter must carry the slice dimension first (as in CodecStack), so each slice is
    clipped as if it had its own optimizer, like the reference's per-class clip.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        raise ConfigError("clip_grad_norm_per_slice: no parameter has a gradient (call backward first)")
    squared = sum(g.reshape(g.shape[0], -1).pow(2).sum(dim=1) for g in grads)
    norms = squared.sqrt()
    factor = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    for g in grads:
        g.mul_(factor.reshape(-1, *([1] * (g.dim() - 1))))
    return norms
