"""Torch implementations of the hot operations: the reference twins of the Triton (GPU) and
native C++ (CPU) kernels, and the path taken where neither applies (e.g. float64).

Index tables (context neighbours, polyphase taps) are built once per shape and device and cached.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

LOG_SCALE_OFFSET = 4.0
LOG_SCALE_MIN = -4.6
LOG_SCALE_MAX = 5.0
MAX_BITS = 16.0  # the 2^-16 probability floor


@lru_cache(maxsize=64)
def neighbour_index(grid_shapes: tuple[tuple[int, int], ...], offsets: tuple[tuple[int, int], ...],
                    device: torch.device | None = None) -> torch.Tensor:
    """[M, C] int64 on ``device``: flat position of each latent's neighbours, or M (a zero slot) outside its grid."""
    total = sum(h * w for h, w in grid_shapes)
    pieces = []
    start = 0
    for h, w in grid_shapes:
        y = torch.arange(h).reshape(h, 1, 1)
        x = torch.arange(w).reshape(1, w, 1)
        dy = torch.tensor([o[0] for o in offsets]).reshape(1, 1, -1)
        dx = torch.tensor([o[1] for o in offsets]).reshape(1, 1, -1)
        ny, nx = y + dy, x + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        pieces.append(torch.where(inside, start + ny * w + nx, total).reshape(h * w, -1))
        start += h * w
    return torch.cat(pieces).to(device)


def gather_context(latents: torch.Tensor, grid_shapes: Sequence[tuple[int, int]],
                   offsets: Sequence[tuple[int, int]]) -> torch.Tensor:
    """[B, M] flat grids -> [B, M, C]: each latent's causal neighbours (zero outside its grid)."""
    index = neighbour_index(tuple(map(tuple, grid_shapes)), tuple(map(tuple, offsets)), latents.device)
    batch, total = latents.shape
    padded = torch.cat([latents, latents.new_zeros(batch, 1)], dim=1)
    return padded.index_select(1, index.reshape(-1)).reshape(batch, total, index.shape[1])


def softround(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable approximation of round(x); tends to round as the temperature goes to 0:
    floor(x) + 1/2 + tanh((x - floor(x) - 1/2) / T) / (2 tanh(1 / (2T)))."""
    floor = torch.floor(x)
    delta = x - floor - 0.5
    return floor + 0.5 + 0.5 * torch.tanh(delta / temperature) / math.tanh(0.5 / temperature)


def noisy_softround(x: torch.Tensor, noise: torch.Tensor, temperature: float) -> torch.Tensor:
    """The training quantizer's proxy softround(softround(x, T) + noise, T)."""
    return softround(softround(x, temperature) + noise, temperature)


def laplace_scale(log_scale: torch.Tensor) -> torch.Tensor:
    """The reference's scale mapping b = exp(clamp(s - 4, -4.6, 5))."""
    return torch.exp(torch.clamp(log_scale - LOG_SCALE_OFFSET, LOG_SCALE_MIN, LOG_SCALE_MAX))


def laplace_rate(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Bits of x under a Laplace(mu, b) discretized to unit bins, floored at 2^-16 (16 bits).

    Stable for any |x - mu| / b: with d = |x - mu|, a bin that lies on one side of mu has
    P = exp(-(d - 1/2)/b) * (1 - exp(-1/b)) / 2, computed in the log domain; the bin holding mu has
    P = 1 - (exp(-(1/2 - d)/b) + exp(-(1/2 + d)/b)) / 2.
    """
    b = laplace_scale(log_scale)
    d = torch.abs(x - mu)
    tail_bits = 1.0 + ((d - 0.5) / b - torch.log(-torch.expm1(-1.0 / b))) / math.log(2.0)
    d_in = torch.clamp(d, max=0.5)
    p_centre = 1.0 - 0.5 * (torch.exp(-(0.5 - d_in) / b) + torch.exp(-(0.5 + d_in) / b))
    centre_bits = -torch.log2(p_centre)
    bits = torch.where(d >= 0.5, tail_bits, centre_bits)
    return torch.clamp(bits, max=MAX_BITS)


@lru_cache(maxsize=8)
def _tap_index(kernel_size: int, device: torch.device | None = None) -> torch.Tensor:
    """[4, W*W] positions in the flattened KxK kernel (K*K = a zero slot) of each phase's taps."""
    r = kernel_size // 4
    width = 2 * r + 1
    index = torch.full((4, width, width), kernel_size * kernel_size, dtype=torch.int64)
    for qy in range(2):
        for qx in range(2):
            for a in range(width):
                ky = 4 * r - 1 - 2 * a if qy == 0 else 4 * r - 2 * a
                for b in range(width):
                    kx = 4 * r - 1 - 2 * b if qx == 0 else 4 * r - 2 * b
                    if 0 <= ky < kernel_size and 0 <= kx < kernel_size:
                        index[qy * 2 + qx, a, b] = ky * kernel_size + kx
    return index.reshape(-1).to(device)


def polyphase_taps(kernel: torch.Tensor) -> torch.Tensor:
    """[S, K, K] transposed-conv kernels (K a multiple of 4) -> [S, 4, (K/2+1)^2] phase taps.

    The stride-2 transposed conv with replicate padding K/2 and a (3K-2)/2 crop gives output pixel
    (2v + qy, 2u + qx) as a (K/2+1)^2 correlation of the input around (v, u), clamped at the
    border, with the taps of phase 2*qy + qx: K[4r-1-2a] (qy = 0) or K[4r-2a] (qy = 1) along each
    axis for window offset a, r = K/4 (out-of-range entries are zero).
    """
    s, k, _ = kernel.shape
    flat = torch.cat([kernel.reshape(s, k * k), kernel.new_zeros(s, 1)], dim=1)
    return flat[:, _tap_index(k, kernel.device)].reshape(s, 4, -1)


def _upsample_step(x: torch.Tensor, taps: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """[S, B, h, w] -> [S, B, out_h, out_w] (out <= 2x): per slice, its polyphase taps as a grouped conv."""
    s, b, h, w = x.shape
    width = int(round(taps.shape[-1] ** 0.5))
    r = width // 2
    padded = F.pad(x.transpose(0, 1), (r,) * 4, mode="replicate")
    phases = F.conv2d(padded, taps.reshape(s * 4, 1, width, width), groups=s)
    up = F.pixel_shuffle(phases.reshape(b * s, 4, h, w), 2).reshape(b, s, 2 * h, 2 * w)
    return up[..., :out_size[0], :out_size[1]].transpose(0, 1)


def residual_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool) -> torch.Tensor:
    """[S, n, C, H, W] -> act(conv_kxk(pad(x)) + b + x) per slice (replicate padding), as one grouped conv."""
    s, n, c, h, w = x.shape
    k = weight.shape[-1]
    pad = (k - 1) // 2
    img = x.transpose(0, 1).reshape(n, s * c, h, w)
    y = F.conv2d(F.pad(img, (pad,) * 4, mode="replicate"), weight.reshape(s * c, c, k, k), bias.reshape(-1),
                 groups=s) + img
    y = torch.relu(y) if relu else y
    return y.reshape(n, s, c, h, w).transpose(0, 1)


UpsampleLevel = Callable[[torch.Tensor, torch.Tensor, tuple[int, int]], torch.Tensor]


def run_pyramid(latents: torch.Tensor, grid_shapes: Sequence[tuple[int, int]], kernel: torch.Tensor,
                upsample_level: UpsampleLevel) -> torch.Tensor:
    """[S, n, M] flat grids -> [S, n, L, H, W]: [g0, up(g1), up^2(g2), ...] with one kernel per slice.

    Starting from the coarsest grid, the running stack is upsampled by ``upsample_level``
    ([S, B, h, w] maps, [S, 4, W*W] polyphase taps, output size -> [S, B, h_out, w_out]), cropped
    top-left to the next grid's size, and the next grid is put in front of it.
    """
    s, n, _ = latents.shape
    taps = polyphase_taps(kernel)
    offsets = [0]
    for h, w in grid_shapes:
        offsets.append(offsets[-1] + h * w)
    grids = [latents[:, :, offsets[i]:offsets[i + 1]].reshape(s, n, 1, h, w)
             for i, (h, w) in enumerate(grid_shapes)]
    stack = grids[-1]
    for level in range(len(grid_shapes) - 2, -1, -1):
        h, w = grid_shapes[level]
        k, hc, wc = stack.shape[2:]
        up = upsample_level(stack.reshape(s, n * k, hc, wc), taps, (h, w)).reshape(s, n, k, h, w)
        stack = torch.cat([grids[level], up], dim=2)
    return stack


def upsample_pyramid(latents: torch.Tensor, grid_shapes: Sequence[tuple[int, int]],
                     kernel: torch.Tensor) -> torch.Tensor:
    """The pyramid with each level as a grouped polyphase conv: the reference's pad K/2 (replicate),
    stride-2 transposed conv and (3K-2)/2 crop, computed without the transposed conv."""
    return run_pyramid(latents, grid_shapes, kernel, _upsample_step)


# Largest activation chunk of pointwise_mlp on a CPU, in elements (8 MB of float32): small enough
# to stay in cache and to be recycled by the allocator instead of page-faulted in afresh.
CPU_CHUNK_ELEMENTS = 2 ** 21


def _pixel_chunk(x: torch.Tensor, widths: Sequence[int]) -> int:
    if x.is_cuda:
        return x.shape[1]
    return max(16, CPU_CHUNK_ELEMENTS // (x.shape[0] * max(widths)))


def _mlp_activations(x, weights, biases, relus) -> list[torch.Tensor]:
    activations = [x]
    for w, b, relu in zip(weights, biases, relus):
        h = torch.baddbmm(b.unsqueeze(1), activations[-1], w)
        activations.append(h.relu_() if relu else h)
    return activations


class _PointwiseMLP(torch.autograd.Function):
    """Per-slice MLP over pixels [S, P, C0] -> [S, P, Ck] that stores no hidden activation: the
    pixels are processed in chunks and the backward recomputes a chunk's activations, so the wide
    hidden layers (up to 1200 channels per pixel) are never kept between forward and backward.
    """

    @staticmethod
    def forward(ctx, x, relus, *params):
        weights, biases = params[0::2], params[1::2]
        ctx.relus = relus
        ctx.save_for_backward(x, *params)
        widths = [w.shape[-1] for w in weights]
        chunk = _pixel_chunk(x, widths)
        out = x.new_empty(x.shape[0], x.shape[1], widths[-1])
        for start in range(0, x.shape[1], chunk):
            out[:, start:start + chunk] = _mlp_activations(x[:, start:start + chunk], weights, biases, relus)[-1]
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, *params = ctx.saved_tensors
        weights, biases = params[0::2], params[1::2]
        relus = ctx.relus
        grad_w = [torch.zeros_like(w) for w in weights]
        grad_b = [torch.zeros_like(b) for b in biases]
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        chunk = _pixel_chunk(x, [w.shape[-1] for w in weights])
        for start in range(0, x.shape[1], chunk):
            acts = _mlp_activations(x[:, start:start + chunk], weights, biases, relus)
            grad = grad_out[:, start:start + chunk]
            for i in range(len(weights) - 1, -1, -1):
                if relus[i]:
                    grad = torch.ops.aten.threshold_backward(grad, acts[i + 1], 0.0)
                grad_w[i] += torch.bmm(acts[i].transpose(1, 2), grad)
                grad_b[i] += grad.sum(dim=1)
                if i > 0 or grad_x is not None:
                    grad = torch.bmm(grad, weights[i].transpose(1, 2))
            if grad_x is not None:
                grad_x[:, start:start + chunk] = grad
        grads = [g for pair in zip(grad_w, grad_b) for g in pair]
        return (grad_x, None, *grads)


def pointwise_mlp(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                  relus: Sequence[bool]) -> torch.Tensor:
    """[S, P, C0] -> [S, P, Ck]: h <- act(h @ W_i + b_i) per slice, W_i [S, C_i, C_(i+1)], b_i [S, C_(i+1)]."""
    params = [t for pair in zip(weights, biases) for t in pair]
    return _PointwiseMLP.apply(x, tuple(bool(r) for r in relus), *params)


def pointwise_mlp_reference(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                            relus: Sequence[bool]) -> torch.Tensor:
    """The generic-autograd twin of pointwise_mlp."""
    for w, b, relu in zip(weights, biases, relus):
        x = torch.baddbmm(b.unsqueeze(1), x, w)
        if relu:
            x = torch.relu(x)
    return x
