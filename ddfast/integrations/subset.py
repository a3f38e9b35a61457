"""Decode some images of a SyntheticSet: only the slices that hold them run.

FreD/DDiF-style loops ask for a class at a time (DM, GM) or for the images of a minibatch (TM).
``decode_slices`` quantizes the latents exactly as a full forward does (same noise draw, so the
images equal the full decode's at the same positions), then runs the upsampler, the synthesis
and the ARM only for the slices holding the requested images -- with the weights of those
slices picked from the stacked ones, so gradients reach the whole set's parameters.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.func import functional_call

from ddfast import ops
from ddfast.codec import SyntheticSet
from ddfast.codec.synthetic_set import OUTPUT_LEVELS
from ddfast.errors import ConfigError


def image_indices(syn: SyntheticSet, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Class-major image positions as an int64 CPU tensor; ConfigError when out of range or empty."""
    index = torch.as_tensor(indices).reshape(-1)
    if index.numel() == 0:
        raise ConfigError("no image indices given")
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise ConfigError(f"image indices must be integers, got {index.dtype}")
    index = index.to("cpu", torch.int64)
    if index.min() < 0 or index.max() >= syn.layout.num_images:
        raise ConfigError(f"image indices must lie in [0, {syn.layout.num_images}), got {int(index.min())}.."
                          f"{int(index.max())}")
    return index


def _picks(syn: SyntheticSet, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(slices [S'], pick [S', w] positions to decode per slice, row and column of each index in pick)."""
    slice_of, position = syn.layout.locate(index)
    slices, row = torch.unique(slice_of, return_inverse=True)
    counts = torch.bincount(row, minlength=len(slices))
    order = torch.argsort(row, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    column = torch.empty_like(index)
    column[order] = torch.arange(index.numel()) - starts[row[order]]
    pick = torch.zeros(len(slices), int(counts.max()), dtype=torch.int64)
    pick[row, column] = position
    return slices, pick, row, column


def _decode(syn: SyntheticSet, slices: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """[S', w, M] quantized latents of ``slices`` -> [S', w, C, H, W] images with those slices' weights."""
    stack = syn.stack
    kernel = stack.upsampling_kernel.index_select(0, slices)
    upsampled = ops.upsample_pyramid(quantized, stack.grid_shapes, kernel, backend=syn.backend)
    weights = {name: p.index_select(0, slices) for name, p in stack.synthesis.named_parameters()}
    return functional_call(stack.synthesis, weights, (upsampled,), {"backend": syn.backend})


def _bits(syn: SyntheticSet, slices: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """[S'] estimated bits of the real images of ``slices`` from their quantized latents [S', n_max, M]."""
    stack = syn.stack
    weights, biases = stack.arm.folded_mlp()
    bits = ops.latent_rate(quantized, stack.grid_shapes, stack.context_offsets,
                           [w.index_select(0, slices) for w in weights], [b.index_select(0, slices) for b in biases],
                           backend=syn.backend)
    return (bits * syn.valid.index_select(0, slices).unsqueeze(-1)).sum(dim=(1, 2))


def decode_slices(syn: SyntheticSet, indices: torch.Tensor | Sequence[int], generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode images ``indices`` (class-major positions, any order, repeats allowed).

    Returns (images [k, C, H, W] in the order asked, labels [k], bits [S'] of every latent of
    the slices that were decoded, those slices [S'] ascending). Train mode quantizes with noise
    from ``generator`` as ``syn(generator=...)`` does; eval mode rounds latents and images as
    ``syn()`` does.
    """
    index = image_indices(syn, indices)
    slices, pick, row, column = _picks(syn, index)
    device = syn.stack.latents.device
    slices, pick, row, column = slices.to(device), pick.to(device), row.to(device), column.to(device)
    quantized = syn.quantized_latents(generator=generator).index_select(0, slices)
    selected = quantized.gather(1, pick.unsqueeze(-1).expand(-1, -1, quantized.shape[-1]))
    images = _decode(syn, slices, selected)[row, column]
    if not syn.training:
        images = torch.round(images * OUTPUT_LEVELS) / OUTPUT_LEVELS
    return images, syn.labels[index.to(syn.labels.device)], _bits(syn, slices, quantized), slices
