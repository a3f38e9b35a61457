"""Fused two-layer pointwise MLP per slice: out = relu(x W1 + b1) W2 + b2 over pixels.

The synthesis head of the v4 decoders (6 -> D1 -> out). The hidden layer (D1 up to 1200 wide) is
never written to memory: the forward walks it in chunks of BLOCK_D units, accumulating the
output; the backward recomputes each chunk, with one program per (slice, hidden chunk, pixel
split) accumulating that chunk's weight gradients in registers.
"""
import torch
import triton
import triton.language as tl


@triton.jit
def _mlp2_fwd(x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, P, C0, D, C2,
              C0P: tl.constexpr, C2P: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
              PRECISION: tl.constexpr):
    s = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    cin = tl.arange(0, C0P)
    cout = tl.arange(0, C2P)
    live = rows < P
    x = tl.load(x_ptr + (s.to(tl.int64) * P + rows[:, None]) * C0 + cin[None, :],
                mask=live[:, None] & (cin[None, :] < C0), other=0.0)
    acc = tl.zeros([BLOCK_P, C2P], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        hid = d0 + tl.arange(0, BLOCK_D)
        hmask = hid < D
        w1 = tl.load(w1_ptr + (s * C0 + cin[:, None]) * D + hid[None, :],
                     mask=(cin[:, None] < C0) & hmask[None, :], other=0.0)
        b1 = tl.load(b1_ptr + s * D + hid, mask=hmask, other=0.0)
        h = tl.maximum(tl.dot(x, w1, input_precision=PRECISION) + b1[None, :], 0.0)
        w2 = tl.load(w2_ptr + (s * D + hid[:, None]) * C2 + cout[None, :],
                     mask=hmask[:, None] & (cout[None, :] < C2), other=0.0)
        acc += tl.dot(h, w2, input_precision=PRECISION)
    b2 = tl.load(b2_ptr + s * C2 + cout, mask=cout < C2, other=0.0)
    acc += b2[None, :]
    tl.store(out_ptr + (s.to(tl.int64) * P + rows[:, None]) * C2 + cout[None, :], acc,
             mask=live[:, None] & (cout[None, :] < C2))


@triton.jit
def _mlp2_bwd(x_ptr, w1_ptr, b1_ptr, w2_ptr, g_ptr, gx_ptr, gw1_ptr, gb1_ptr, gw2_ptr, P, C0, D, C2, SPLITS,
              C0P: tl.constexpr, C2P: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
              PRECISION: tl.constexpr):
    chunk = tl.program_id(0)
    split = tl.program_id(1)
    s = tl.program_id(2)
    hid = chunk * BLOCK_D + tl.arange(0, BLOCK_D)
    hmask = hid < D
    cin = tl.arange(0, C0P)
    cout = tl.arange(0, C2P)
    w1 = tl.load(w1_ptr + (s * C0 + cin[:, None]) * D + hid[None, :],
                 mask=(cin[:, None] < C0) & hmask[None, :], other=0.0)
    b1 = tl.load(b1_ptr + s * D + hid, mask=hmask, other=0.0)
    w2 = tl.load(w2_ptr + (s * D + hid[:, None]) * C2 + cout[None, :],
                 mask=hmask[:, None] & (cout[None, :] < C2), other=0.0)
    gw1 = tl.zeros([C0P, BLOCK_D], dtype=tl.float32)
    gw2 = tl.zeros([BLOCK_D, C2P], dtype=tl.float32)
    gb1 = tl.zeros([BLOCK_D], dtype=tl.float32)
    for p0 in range(split * BLOCK_P, P, SPLITS * BLOCK_P):
        rows = p0 + tl.arange(0, BLOCK_P)
        live = rows < P
        base = s.to(tl.int64) * P + rows[:, None]
        x = tl.load(x_ptr + base * C0 + cin[None, :], mask=live[:, None] & (cin[None, :] < C0), other=0.0)
        g = tl.load(g_ptr + base * C2 + cout[None, :], mask=live[:, None] & (cout[None, :] < C2), other=0.0)
        pre = tl.dot(x, w1, input_precision=PRECISION) + b1[None, :]
        h = tl.maximum(pre, 0.0)
        gw2 += tl.dot(tl.trans(h), g, input_precision=PRECISION)
        gpre = tl.where(pre > 0, tl.dot(g, tl.trans(w2), input_precision=PRECISION), 0.0)
        gpre = tl.where(live[:, None], gpre, 0.0)
        gw1 += tl.dot(tl.trans(x), gpre, input_precision=PRECISION)
        gb1 += tl.sum(gpre, axis=0)
        gx = tl.dot(gpre, tl.trans(w1), input_precision=PRECISION)
        tl.atomic_add(gx_ptr + base * C0 + cin[None, :], gx, mask=live[:, None] & (cin[None, :] < C0))
    tl.atomic_add(gw1_ptr + (s * C0 + cin[:, None]) * D + hid[None, :], gw1,
                  mask=(cin[:, None] < C0) & hmask[None, :])
    tl.atomic_add(gw2_ptr + (s * D + hid[:, None]) * C2 + cout[None, :], gw2,
                  mask=hmask[:, None] & (cout[None, :] < C2))
    tl.atomic_add(gb1_ptr + s * D + hid, gb1, mask=hmask)


def _pad16(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


def _precision(t: torch.Tensor) -> str:
    """TF32 tensor cores only where torch's float32 matmuls may use them too (off by default)."""
    tf32 = t.is_cuda and t.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    return "tf32" if tf32 else "ieee"


def mlp2_forward(x, w1, b1, w2, b2):
    """[S, P, C0] -> [S, P, C2] with W1 [S, C0, D], b1 [S, D], W2 [S, D, C2], b2 [S, C2] (float32)."""
    s, p, c0 = x.shape
    d, c2 = w2.shape[1], w2.shape[2]
    out = torch.empty(s, p, c2, device=x.device, dtype=x.dtype)
    block_p = 64
    grid = (triton.cdiv(p, block_p), s)
    _mlp2_fwd[grid](x.contiguous(), w1.contiguous(), b1.contiguous(), w2.contiguous(), b2.contiguous(), out,
                    p, c0, d, c2, C0P=_pad16(c0), C2P=_pad16(c2), BLOCK_P=block_p, BLOCK_D=64,
                    PRECISION=_precision(x))
    return out


def mlp2_backward(x, w1, b1, w2, grad):
    """Gradients (x, W1, b1, W2, b2) of sum(grad * mlp2_forward(...))."""
    s, p, c0 = x.shape
    d, c2 = w2.shape[1], w2.shape[2]
    grad = grad.contiguous()
    gx = torch.zeros_like(x, dtype=torch.float32)
    gw1 = torch.zeros(w1.shape, device=x.device, dtype=torch.float32)
    gb1 = torch.zeros(b1.shape, device=x.device, dtype=torch.float32)
    gw2 = torch.zeros(w2.shape, device=x.device, dtype=torch.float32)
    block_p, block_d = 64, 64
    chunks = triton.cdiv(d, block_d)
    splits = max(1, min(triton.cdiv(p, block_p), 64))
    grid = (chunks, splits, s)
    _mlp2_bwd[grid](x.contiguous(), w1.contiguous(), b1.contiguous(), w2.contiguous(), grad, gx, gw1, gb1, gw2,
                    p, c0, d, c2, splits, C0P=_pad16(c0), C2P=_pad16(c2), BLOCK_P=block_p, BLOCK_D=block_d,
                    PRECISION=_precision(x))
    gb2 = grad.sum(dim=1)
    return gx.to(x.dtype), gw1.to(w1.dtype), gb1.to(b1.dtype), gw2.to(w2.dtype), gb2
