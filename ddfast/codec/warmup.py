"""Phase 1 of DD-RUO: overfit every slice codec to real images of its class.

The reference warm-up (Cool-chic's c3x preset, run per class): 5 random candidates train 400
iterations, the 2 with the lowest eval-mode loss train 400 more, and the best one wins. Loss per
slice: MSE(x_hat, x) + bpp / beta; Adam (lr 1e-2), gradient norm clipped to 0.1 per slice;
softround quantization (T = 0.3) with Kumaraswamy noise (a = 2).

Here every candidate of every slice is one slice of a single CodecStack, so all of them train in
the same batched forward (in chunks of ``max_slices_per_batch`` stacked slices when memory is
tight: each chunk then runs its own iterations with its own optimizer).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ddfast.codec.quantizer import WARMUP_QUANTIZER, Quantizer
from ddfast.codec.stack import CodecStack, clip_grad_norm_per_slice
from ddfast.errors import ConfigError


@dataclass
class WarmupReport:
    """Eval-mode results of the winning codec of every slice, and each phase's losses."""

    loss: torch.Tensor
    mse: torch.Tensor
    bits: torch.Tensor
    phase_losses: list[torch.Tensor] = field(default_factory=list)

    @property
    def psnr(self) -> torch.Tensor:
        """[S] PSNR in dB of each slice's decoded images against its targets (peak 1)."""
        return -10.0 * torch.log10(self.mse.clamp_min(1e-12))


@dataclass
class _Targets:
    images: torch.Tensor  # [S, n, C, H, W]
    valid: torch.Tensor  # [S, n] bool
    pixels: torch.Tensor  # [S] images * H * W

    def pick(self, index: torch.Tensor) -> "_Targets":
        return _Targets(self.images[index], self.valid[index], self.pixels[index])


def slice_losses(stack: CodecStack, targets: _Targets, quantizer: Quantizer, training: bool, beta: float,
                 generator: torch.Generator | None = None, backend: str = "auto"
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-slice (loss, mse, bits) of a stack against its targets."""
    quantized = stack.quantize(quantizer, training, generator=generator, backend=backend)
    images = stack.decode(quantized, backend=backend)
    mask = targets.valid.to(images.dtype)
    channels = images.shape[2]
    squared = (images - targets.images).pow(2).sum(dim=(2, 3, 4))
    mse = (squared * mask).sum(dim=1) / (targets.pixels * channels)
    bits = (stack.rate(quantized, backend=backend) * mask.unsqueeze(-1)).sum(dim=(1, 2))
    return mse + bits / targets.pixels / beta, mse, bits


def _train(stack: CodecStack, targets: _Targets, iterations: int, beta: float, lr: float, max_grad_norm: float,
           quantizer: Quantizer, generator: torch.Generator | None, backend: str, bar: tqdm) -> None:
    optimizer = torch.optim.Adam(stack.parameters(), lr=lr)
    for _ in range(iterations):
        loss, _, _ = slice_losses(stack, targets, quantizer, True, beta, generator, backend)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        clip_grad_norm_per_slice(stack.parameters(), max_grad_norm)
        optimizer.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.mean().item():.3e}")


def _train_in_chunks(pool: CodecStack, targets: _Targets, chunk: int, bar: tqdm, **train_args) -> None:
    for start in range(0, pool.num_slices, chunk):
        index = torch.arange(start, min(start + chunk, pool.num_slices))
        part = pool.select(index)
        _train(part, targets.pick(index), bar=bar, **train_args)
        with torch.no_grad():
            for dst, src in zip(pool.parameters(), part.parameters()):
                dst[index.to(dst.device)] = src


@torch.no_grad()
def _evaluate(pool: CodecStack, targets: _Targets, beta: float, chunk: int, backend: str):
    results = []
    for start in range(0, pool.num_slices, chunk):
        index = torch.arange(start, min(start + chunk, pool.num_slices))
        results.append(slice_losses(pool.select(index), targets.pick(index), WARMUP_QUANTIZER, False, beta,
                                    backend=backend))
    return tuple(torch.cat(parts) for parts in zip(*results))


def _cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A CPU generator for initial values (drawn on the CPU), seeded from ``generator`` if it lives elsewhere."""
    if generator is None or generator.device.type == "cpu":
        return generator
    seed = torch.randint(0, 2 ** 62, (1,), generator=generator, device=generator.device).item()
    return torch.Generator().manual_seed(int(seed))


def warm_up(stack: CodecStack, targets: torch.Tensor, valid: torch.Tensor, beta: float, *,
            candidates: tuple[int, ...] = (5, 2), iterations: tuple[int, ...] = (400, 400), lr: float = 1e-2,
            max_grad_norm: float = 0.1, quantizer: Quantizer = WARMUP_QUANTIZER,
            max_slices_per_batch: int | None = None, generator: torch.Generator | None = None,
            backend: str = "auto", progress: bool = True) -> WarmupReport:
    """Initialize every slice of ``stack`` in place by overfitting it to its target images.

    ``SyntheticSet.init_from_data`` arranges a dataset's images per class into these targets.

    Args:
        targets: [S, n, C, H, W] float images in [0, 1], slice by slice (padding where ``valid`` is False).
        valid: [S, n] bool, which image positions of each slice hold a real image.
        beta: rate-distortion trade-off; the loss is MSE + bpp / beta.
        candidates: candidates kept in each phase (the first phase starts that many random inits).
        iterations: training iterations of each phase.
        max_slices_per_batch: train at most this many stacked candidate slices at once.
        backend: ops backend ('auto', 'torch', 'triton').
    """
    if not beta > 0:
        raise ConfigError(f"beta must be > 0, got {beta}")
    if len(candidates) != len(iterations) or not candidates:
        raise ConfigError("candidates and iterations need one entry per warm-up phase")
    if any(c < 1 for c in candidates) or any(b > a for a, b in zip(candidates, candidates[1:])):
        raise ConfigError(f"candidates must be positive and non-increasing, got {candidates}")
    if any(i < 0 for i in iterations):
        raise ConfigError(f"iterations must be >= 0, got {iterations}")
    num_slices = stack.num_slices
    shape = (num_slices, stack.images_per_slice, stack.channels, *stack.image_size)
    if tuple(targets.shape) != shape:
        raise ConfigError(f"targets must have shape {list(shape)} (slices, images, C, H, W), "
                          f"got {list(targets.shape)}")
    if valid.dtype != torch.bool or tuple(valid.shape) != shape[:2]:
        raise ConfigError(f"valid must be a bool tensor of shape {list(shape[:2])}, got {valid.dtype} "
                          f"{list(valid.shape)}")

    device = valid.device
    pixels = valid.sum(dim=1).to(torch.float32) * (shape[3] * shape[4])
    targets = _Targets(targets, valid, pixels)
    pool = CodecStack(num_slices * candidates[0], stack.images_per_slice, stack.image_size, stack.channels,
                      stack.config, _cpu_generator(generator)).to(device)
    owner = torch.arange(num_slices, device=device).repeat_interleave(candidates[0])
    chunk = max_slices_per_batch or pool.num_slices
    train_args = dict(beta=beta, lr=lr, max_grad_norm=max_grad_norm, quantizer=quantizer, generator=generator,
                      backend=backend)
    phase_losses = []
    bar = tqdm(total=sum(math.ceil(num_slices * c / chunk) * it for c, it in zip(candidates, iterations)),
               desc="warm-up", unit="it", disable=not progress)
    with bar:
        for phase, (keep, steps) in enumerate(zip(candidates, iterations)):
            if phase > 0:
                previous = candidates[phase - 1]
                best = phase_losses[-1].reshape(num_slices, previous).topk(keep, dim=1, largest=False).indices
                pick = (best + torch.arange(num_slices, device=device).unsqueeze(1) * previous).reshape(-1)
                pool, owner = pool.select(pick), owner[pick]
            bar.set_description(f"warm-up phase {phase + 1}/{len(candidates)}: {keep} candidate(s)")
            _train_in_chunks(pool, targets.pick(owner), chunk, bar, iterations=steps, **train_args)
            phase_losses.append(_evaluate(pool, targets.pick(owner), beta, chunk, backend)[0])
    final = candidates[-1]
    winner = phase_losses[-1].reshape(num_slices, final).argmin(dim=1)
    winner = winner + torch.arange(num_slices, device=device) * final
    stack.copy_slices_from(pool, winner)
    loss, mse, bits = _evaluate(stack, targets, beta, max_slices_per_batch or num_slices, backend)
    return WarmupReport(loss=loss, mse=mse, bits=bits, phase_losses=phase_losses)
