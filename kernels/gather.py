"""Causal-context gathering: out[b, m, c] = latents[b, index[m, c]] (zero where index == M).

The backward is a gather too: each latent j sums the gradients of the (m, c) slots that read it,
listed in an inverse table, so no atomics are needed and results are deterministic.
"""
import torch
import triton
import triton.language as tl


@triton.jit
def _gather_fwd(lat_ptr, idx_ptr, out_ptr, M, MC, C: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(1)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = offs < MC
    src = tl.load(idx_ptr + offs, mask=live, other=0)
    inside = live & (src < M)
    vals = tl.load(lat_ptr + b.to(tl.int64) * M + src, mask=inside, other=0.0)
    tl.store(out_ptr + b.to(tl.int64) * MC + offs, vals, mask=live)


@triton.jit
def _gather_bwd(grad_ptr, inv_ptr, out_ptr, M, MC, C: tl.constexpr, CP: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    cols = tl.arange(0, CP)
    live = (rows[:, None] < M) & (cols[None, :] < C)
    src = tl.load(inv_ptr + rows[:, None] * C + cols[None, :], mask=live, other=-1)
    use = live & (src >= 0)
    vals = tl.load(grad_ptr + b.to(tl.int64) * MC + src, mask=use, other=0.0)
    tl.store(out_ptr + b.to(tl.int64) * M + rows, tl.sum(vals, axis=1), mask=rows < M)


def gather_forward(latents: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[B, M] latents, [M, C] int32 index -> [B, M, C]."""
    batch, m = latents.shape
    c = index.shape[1]
    out = torch.empty(batch, m, c, device=latents.device, dtype=latents.dtype)
    block = 1024
    grid = (triton.cdiv(m * c, block), batch)
    _gather_fwd[grid](latents.contiguous(), index, out, m, m * c, C=c, BLOCK=block)
    return out


def gather_backward(grad: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """[B, M, C] gradient, [M, C] int32 inverse table -> [B, M] gradient of the latents."""
    batch, m, c = grad.shape
    out = torch.empty(batch, m, device=grad.device, dtype=grad.dtype)
    block = 128
    grid = (triton.cdiv(m, block), batch)
    _gather_bwd[grid](grad.contiguous(), inverse, out, m, m * c, C=c, CP=triton.next_power_of_2(c), BLOCK=block)
    return out
