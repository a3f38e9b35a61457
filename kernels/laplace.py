"""Laplace rate: bits of x under Laplace(mu, exp(clamp(s - 4, -4.6, 5))) on unit bins, <= 16 bits.

Forward and backward are elementwise; the backward uses the closed-form derivatives of the
stable expression of ddfast.ops.torch_ops.laplace_rate (tail bins in the log domain).
"""
import torch
import triton
import triton.language as tl

# The reference's scale mapping b = exp(clamp(s - OFFSET, LOW, HIGH)) (= ddfast.ops.torch_ops).
SCALE_OFFSET: tl.constexpr = 4.0
SCALE_LOW: tl.constexpr = -4.6
SCALE_HIGH: tl.constexpr = 5.0
INV_LN2: tl.constexpr = 1.4426950408889634


@triton.jit
def _scale(s):
    t = s - SCALE_OFFSET
    inside = (t > SCALE_LOW) & (t < SCALE_HIGH)
    b = tl.exp(tl.minimum(tl.maximum(t, SCALE_LOW), SCALE_HIGH))
    return b, inside


@triton.jit
def _rate_fwd(x_ptr, mu_ptr, s_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    x = tl.load(x_ptr + offs, mask=live, other=0.0).to(tl.float32)
    mu = tl.load(mu_ptr + offs, mask=live, other=0.0).to(tl.float32)
    s = tl.load(s_ptr + offs, mask=live, other=0.0).to(tl.float32)
    b, _ = _scale(s)
    d = tl.abs(x - mu)
    inv_b = 1.0 / b
    tail = 1.0 + ((d - 0.5) * inv_b - tl.log(1.0 - tl.exp(-inv_b))) * INV_LN2
    dc = tl.minimum(d, 0.5)
    p = 1.0 - 0.5 * (tl.exp(-(0.5 - dc) * inv_b) + tl.exp(-(0.5 + dc) * inv_b))
    centre = -tl.log(p) * INV_LN2
    bits = tl.where(d >= 0.5, tail, centre)
    tl.store(out_ptr + offs, tl.minimum(bits, 16.0), mask=live)


@triton.jit
def _rate_bwd(x_ptr, mu_ptr, s_ptr, g_ptr, gx_ptr, gmu_ptr, gs_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    x = tl.load(x_ptr + offs, mask=live, other=0.0).to(tl.float32)
    mu = tl.load(mu_ptr + offs, mask=live, other=0.0).to(tl.float32)
    s = tl.load(s_ptr + offs, mask=live, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=live, other=0.0).to(tl.float32)
    b, inside = _scale(s)
    diff = x - mu
    d = tl.abs(diff)
    inv_b = 1.0 / b
    # tail bin: bits = 1 + ((d - 1/2)/b - log(1 - e^{-1/b})) / ln2
    e_bin = tl.exp(-inv_b)
    tail = 1.0 + ((d - 0.5) * inv_b - tl.log(1.0 - e_bin)) * INV_LN2
    tail_dd = inv_b * INV_LN2
    tail_db = (-(d - 0.5) + e_bin / (1.0 - e_bin)) * inv_b * inv_b * INV_LN2
    # bin holding mu: bits = -log2(1 - (e1 + e2)/2), e1 = e^{-(1/2 - d)/b}, e2 = e^{-(1/2 + d)/b}
    dc = tl.minimum(d, 0.5)
    e1 = tl.exp(-(0.5 - dc) * inv_b)
    e2 = tl.exp(-(0.5 + dc) * inv_b)
    p = 1.0 - 0.5 * (e1 + e2)
    centre = -tl.log(p) * INV_LN2
    dp_dd = -0.5 * (e1 - e2) * inv_b
    dp_db = -0.5 * (e1 * (0.5 - dc) + e2 * (0.5 + dc)) * inv_b * inv_b
    scale = -INV_LN2 / p
    is_tail = d >= 0.5
    bits = tl.where(is_tail, tail, centre)
    dbits_dd = tl.where(is_tail, tail_dd, scale * dp_dd)
    dbits_db = tl.where(is_tail, tail_db, scale * dp_db)
    keep = bits <= 16.0
    sign = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
    gd = tl.where(keep, g * dbits_dd * sign, 0.0)
    gs = tl.where(keep & inside, g * dbits_db * b, 0.0)
    tl.store(gx_ptr + offs, gd, mask=live)
    tl.store(gmu_ptr + offs, -gd, mask=live)
    tl.store(gs_ptr + offs, gs, mask=live)


_BLOCK = 1024


def rate_forward(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Bits of every element (float32 math; output in x's dtype)."""
    x, mu, log_scale = x.contiguous(), mu.contiguous(), log_scale.contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    _rate_fwd[(triton.cdiv(n, _BLOCK),)](x, mu, log_scale, out, n, BLOCK=_BLOCK)
    return out


def rate_backward(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor, grad: torch.Tensor):
    """Gradients of sum(grad * bits) with respect to x, mu and log_scale."""
    x, mu, log_scale, grad = x.contiguous(), mu.contiguous(), log_scale.contiguous(), grad.contiguous()
    gx, gmu, gs = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    n = x.numel()
    _rate_bwd[(triton.cdiv(n, _BLOCK),)](x, mu, log_scale, grad, gx, gmu, gs, n, BLOCK=_BLOCK)
    return gx, gmu, gs
