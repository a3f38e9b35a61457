"""One level of the learned upsampling pyramid in polyphase form.

A stride-2 transposed conv with a KxK kernel (K = 4r), replicate padding K/2 and a (3K-2)/2 crop
equals, for output pixel (2v + qy, 2u + qx), a (2r+1)x(2r+1) correlation of the input around
(v, u) (clamped at the border) with the taps of phase (qy, qx). ddfast.ops.triton_ops builds the
[S, 4, (2r+1)^2] tap table from the kernel; these kernels do the correlation and its adjoints.
"""
import os

import torch
import triton
import triton.language as tl


@triton.jit
def _output_pixels(s, maps_per_slice, ho, wo, BLOCK: tl.constexpr):
    """This program's output pixels of slice s: (live mask, plane, pixel, v, u, phase)."""
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = idx < maps_per_slice * ho * wo
    plane = s.to(tl.int64) * maps_per_slice + idx // (ho * wo)
    pix = idx % (ho * wo)
    oy = pix // wo
    ox = pix % wo
    return live, plane, pix, oy // 2, ox // 2, (oy % 2) * 2 + (ox % 2)


@triton.jit
def _up_fwd(x_ptr, taps_ptr, out_ptr, maps_per_slice, hi, wi, ho, wo,
            R: tl.constexpr, BLOCK: tl.constexpr):
    W: tl.constexpr = 2 * R + 1
    s = tl.program_id(1)
    live, plane, pix, v, u, phase = _output_pixels(s, maps_per_slice, ho, wo, BLOCK)
    x_base = x_ptr + plane * hi * wi
    t_base = taps_ptr + s * 4 * W * W + phase * W * W
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for a in tl.static_range(W):
        row = tl.minimum(tl.maximum(v - R + a, 0), hi - 1)
        for b in tl.static_range(W):
            col = tl.minimum(tl.maximum(u - R + b, 0), wi - 1)
            val = tl.load(x_base + row * wi + col, mask=live, other=0.0)
            tap = tl.load(t_base + a * W + b, mask=live, other=0.0)
            acc += val * tap
    tl.store(out_ptr + plane * ho * wo + pix, acc, mask=live)


@triton.jit
def _up_bwd_input(g_ptr, taps_ptr, out_ptr, maps_per_slice, hp, wp, ho, wo,
                  R: tl.constexpr, BLOCK: tl.constexpr):
    """Gradient on the border-extended input grid: position (p, q) in [-R, hi-1+R] x [-R, wi-1+R]."""
    W: tl.constexpr = 2 * R + 1
    s = tl.program_id(1)
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = idx < maps_per_slice * hp * wp
    plane = s.to(tl.int64) * maps_per_slice + idx // (hp * wp)
    pix = idx % (hp * wp)
    py = pix // wp - R
    px = pix % wp - R
    g_base = g_ptr + plane * ho * wo
    t_base = taps_ptr + s * 4 * W * W
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for a in tl.static_range(W):
        v = py + R - a
        for b in tl.static_range(W):
            u = px + R - b
            for qy in tl.static_range(2):
                oy = 2 * v + qy
                for qx in tl.static_range(2):
                    ox = 2 * u + qx
                    ok = live & (v >= 0) & (u >= 0) & (oy < ho) & (ox < wo)
                    val = tl.load(g_base + oy * wo + ox, mask=ok, other=0.0)
                    tap = tl.load(t_base + (qy * 2 + qx) * W * W + a * W + b)
                    acc += val * tap
    tl.store(out_ptr + plane * hp * wp + pix, acc, mask=live)


@triton.jit
def _up_bwd_taps(x_ptr, g_ptr, gt_ptr, maps_per_slice, hi, wi, ho, wo,
                 R: tl.constexpr, BLOCK: tl.constexpr):
    W: tl.constexpr = 2 * R + 1
    s = tl.program_id(1)
    live, plane, pix, v, u, phase = _output_pixels(s, maps_per_slice, ho, wo, BLOCK)
    g = tl.load(g_ptr + plane * ho * wo + pix, mask=live, other=0.0)
    x_base = x_ptr + plane * hi * wi
    for a in tl.static_range(W):
        row = tl.minimum(tl.maximum(v - R + a, 0), hi - 1)
        for b in tl.static_range(W):
            col = tl.minimum(tl.maximum(u - R + b, 0), wi - 1)
            prod = g * tl.load(x_base + row * wi + col, mask=live, other=0.0)
            for q in tl.static_range(4):
                part = tl.sum(tl.where(phase == q, prod, 0.0), axis=0)
                tl.atomic_add(gt_ptr + s * 4 * W * W + q * W * W + a * W + b, part)


# The interpreter runs programs one after another, so it gets few large blocks.
_BLOCK = 4096 if os.environ.get("TRITON_INTERPRET") == "1" else 512


def upsample_level(x: torch.Tensor, taps: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """[S, B, hi, wi] maps, [S, 4, W*W] taps -> [S, B, ho, wo] (ho <= 2 hi, wo <= 2 wi)."""
    s, maps, hi, wi = x.shape
    ho, wo = out_size
    r = (int(round(taps.shape[-1] ** 0.5)) - 1) // 2
    out = torch.empty(s, maps, ho, wo, device=x.device, dtype=x.dtype)
    grid = (triton.cdiv(maps * ho * wo, _BLOCK), s)
    _up_fwd[grid](x.contiguous(), taps.contiguous(), out, maps, hi, wi, ho, wo, R=r, BLOCK=_BLOCK)
    return out


def upsample_level_backward(x: torch.Tensor, taps: torch.Tensor, grad: torch.Tensor):
    """Gradients (input maps, taps) of sum(grad * upsample_level(x, taps))."""
    s, maps, hi, wi = x.shape
    ho, wo = grad.shape[-2:]
    r = (int(round(taps.shape[-1] ** 0.5)) - 1) // 2
    grad, taps = grad.contiguous(), taps.contiguous()
    hp, wp = hi + 2 * r, wi + 2 * r
    extended = torch.empty(s, maps, hp, wp, device=x.device, dtype=x.dtype)
    grid = (triton.cdiv(maps * hp * wp, _BLOCK), s)
    _up_bwd_input[grid](grad, taps, extended, maps, hp, wp, ho, wo, R=r, BLOCK=_BLOCK)
    rows = torch.arange(-r, hi + r, device=x.device).clamp(0, hi - 1)
    cols = torch.arange(-r, wi + r, device=x.device).clamp(0, wi - 1)
    folded = extended.new_zeros(s, maps, hi, wp).index_add_(2, rows, extended)
    grad_x = folded.new_zeros(s, maps, hi, wi).index_add_(3, cols, folded)
    grad_taps = torch.zeros(taps.shape, device=x.device, dtype=torch.float32)
    grid = (triton.cdiv(maps * ho * wo, _BLOCK), s)
    _up_bwd_taps[grid](x.contiguous(), grad, grad_taps, maps, hi, wi, ho, wo, R=r, BLOCK=_BLOCK)
    return grad_x, grad_taps.to(taps.dtype)
