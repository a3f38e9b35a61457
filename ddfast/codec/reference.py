"""The plain per-slice codec, written the way the reference code runs it (one slice at a time).

It is the twin that the batched CodecStack is tested and benchmarked against: contexts come from
``unfold`` windows, the rate from the literal F(x + 1/2) - F(x - 1/2) formula, the upsampler and
synthesis from ordinary (non-grouped) convolutions. It reads one slice's weights out of a stack, so
gradients of a loop over slices land on the same parameters as the batched path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ddfast.codec.arm import arm_forward_single
from ddfast.codec.stack import CodecStack
from ddfast.codec.synthesis import synthesis_forward
from ddfast.ops.torch_ops import MAX_BITS, laplace_scale


def _split_grids(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    grids, start = [], 0
    for h, w in shapes:
        grids.append(flat[:, start:start + h * w].reshape(-1, 1, h, w))
        start += h * w
    return grids


def slice_contexts(quantized: torch.Tensor, shapes, offsets) -> torch.Tensor:
    """[n, M] -> [n, M, C] via an unfolded (2P+1)^2 window and a flat index per offset."""
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    window = 2 * pad + 1
    index = torch.tensor([(dy + pad) * window + (dx + pad) for dy, dx in offsets], device=quantized.device)
    pieces = []
    for grid in _split_grids(quantized, shapes):
        cols = F.unfold(F.pad(grid, (pad,) * 4), window)  # [n, window^2, h*w]
        pieces.append(cols.index_select(1, index).transpose(1, 2))
    return torch.cat(pieces, dim=1)


def slice_rate(quantized: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Bits per latent, literally -log2(max(F(x + 1/2) - F(x - 1/2), 2^-16)) under Laplace(mu, b)."""
    b = laplace_scale(log_scale)

    def cdf(t: torch.Tensor) -> torch.Tensor:
        return 0.5 - 0.5 * torch.sign(t - mu) * torch.expm1(-torch.abs(t - mu) / b)

    proba = torch.clamp(cdf(quantized + 0.5) - cdf(quantized - 0.5), min=2.0 ** -MAX_BITS)
    return -torch.log2(proba)


def slice_upsample(quantized: torch.Tensor, shapes, kernel: torch.Tensor) -> torch.Tensor:
    """[n, M] -> [n, L, H, W] through the recursive transposed-conv pyramid of one slice."""
    k = kernel.shape[-1]
    weight = kernel.reshape(1, 1, k, k)
    crop = (3 * k - 2) // 2
    grids = _split_grids(quantized, shapes)
    stack = grids[-1]
    for level in range(len(shapes) - 2, -1, -1):
        h, w = shapes[level]
        n, c, hc, wc = stack.shape
        maps = F.pad(stack.reshape(n * c, 1, hc, wc), (k // 2,) * 4, mode="replicate")
        up = F.conv_transpose2d(maps, weight, stride=2)[..., crop:crop + 2 * hc, crop:crop + 2 * wc]
        stack = torch.cat([grids[level], up.reshape(n, c, 2 * hc, 2 * wc)[..., :h, :w]], dim=1)
    return stack


def slice_forward(stack: CodecStack, index: int, quantized: torch.Tensor,
                  num_images: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode slice ``index`` from its quantized latents [n, M]; returns (images, bits per latent)."""
    n = quantized.shape[0] if num_images is None else num_images
    q = quantized[:n]
    arm = stack.arm
    context = slice_contexts(q, stack.grid_shapes, stack.context_offsets).reshape(-1, arm.context_size)
    mu, log_scale = arm_forward_single(context, arm.hidden_w[index], arm.hidden_b[index],
                                       arm.out_w[index], arm.out_b[index])
    bits = slice_rate(q.reshape(-1), mu, log_scale).reshape(q.shape)
    upsampled = slice_upsample(q, stack.grid_shapes, stack.upsampling_kernel[index])
    syn = stack.synthesis
    images = synthesis_forward(upsampled, syn.layers, [w[index] for w in syn.weights],
                               [b[index] for b in syn.biases])
    return images, bits
