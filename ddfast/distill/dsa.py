"""Differentiable Siamese augmentation (DSA), as the DC/DSA/MTT reference code defines it.

Each call applies **one** operation, drawn uniformly from the underscore-separated strategy
string, to the whole batch. ``color`` runs brightness, saturation and contrast in turn. In the
default (non-Siamese) mode every sample gets its own parameters; in Siamese mode one set of
parameters is drawn from a seed and shared by every sample, so a real and a synthetic batch
called with the same seed get the same operation and the same parameters.

Differences from the reference (deliberate): randomness comes from an explicit
``torch.Generator`` instead of the clock-seeded global RNG, and every parameter is drawn on the
CPU and then moved to the images' device, so a seed gives the same augmentation on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddfast.distill.seeding import fresh_seed, seeded_generator
from ddfast.errors import ConfigError

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
OPERATIONS = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAParams:
    """Ranges of the DSA operations (the reference ``ParamDiffAug`` values)."""

    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0  # degrees
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


# -- the operations, with their parameters given explicitly -------------------------------------
def brightness(x: torch.Tensor, r: torch.Tensor, ratio: float = 1.0) -> torch.Tensor:
    """``x + (r - 0.5) * ratio`` with ``r`` of shape [B] in [0, 1)."""
    return x + (r.view(-1, 1, 1, 1) - 0.5) * ratio


def saturation(x: torch.Tensor, r: torch.Tensor, ratio: float = 2.0) -> torch.Tensor:
    """Scale the deviation from the per-pixel channel mean by ``r * ratio``."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (r.view(-1, 1, 1, 1) * ratio) + mean


def contrast(x: torch.Tensor, r: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Scale the deviation from the per-image mean (over C, H, W) by ``r + ratio``."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (r.view(-1, 1, 1, 1) + ratio) + mean


def flip(x: torch.Tensor, r: torch.Tensor, prob: float = 0.5) -> torch.Tensor:
    """Horizontal flip of the samples whose ``r < prob``."""
    return torch.where(r.view(-1, 1, 1, 1) < prob, x.flip(3), x)


def crop_shift(size: int, ratio: float = 0.125) -> int:
    """Largest translation of ``crop`` for an image side of ``size`` pixels."""
    return int(size * ratio + 0.5)


def crop(x: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Translate each image by integer offsets (``tx`` along H, ``ty`` along W); pixels that
    enter from outside are zero.

    ``out[b, :, i, j] = x[b, :, i + tx[b], j + ty[b]]`` where that index is inside the image,
    else 0 (the reference gathers from a 1-pixel zero-padded copy with clamped indices).
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    rows = (torch.arange(h, device=x.device).view(1, h) + tx.view(-1, 1) + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, w) + ty.view(-1, 1) + 1).clamp(0, w + 1)
    out = padded.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2))
    return out.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def cutout_size(size: int, ratio: float = 0.5) -> int:
    """Side of the ``cutout`` square for an image side of ``size`` pixels."""
    return int(size * ratio + 0.5)


def cutout(x: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero a ``size`` square centred at (``cx``, ``cy``) (rows, columns), clipped to the image.

    The square covers rows ``cx - size[0] // 2 .. cx - size[0] // 2 + size[0] - 1``.
    """
    _, _, h, w = x.shape
    r0 = (cx.view(-1, 1) - size[0] // 2).to(x.device)
    c0 = (cy.view(-1, 1) - size[1] // 2).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    in_rows = (rows >= r0) & (rows < r0 + size[0])
    in_cols = (cols >= c0) & (cols < c0 + size[1])
    keep = ~(in_rows.unsqueeze(2) & in_cols.unsqueeze(1))
    return x * keep.unsqueeze(1).to(x.dtype)


def scale_theta(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """Affine matrices ``[[sx, 0, 0], [0, sy, 0]]``, shape [B, 2, 3]."""
    theta = torch.zeros(sx.shape[0], 2, 3, dtype=torch.float32)
    theta[:, 0, 0] = sx
    theta[:, 1, 1] = sy
    return theta


def rotate_theta(angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[[cos a, -sin a, 0], [sin a, cos a, 0]]`` (a in radians), [B, 2, 3]."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(angle.shape[0], 2, 3, dtype=torch.float32)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    return theta


def affine(x: torch.Tensor, theta: torch.Tensor, align_corners: bool = True) -> torch.Tensor:
    """Resample ``x`` through ``affine_grid(theta)`` (bilinear, zero padding)."""
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


# -- the augmenter ------------------------------------------------------------------------------
class DSA:
    """Differentiable Siamese augmentation with an explicit random stream.

    Args:
        strategy: operations joined by ``_`` (subset of ``OPERATIONS``); ``"none"`` or ``""``
            disables augmentation.
        params: operation ranges (defaults: the reference values).
        align_corners: passed to ``affine_grid``/``grid_sample``; MTT, FreD, DDiF and DD-RUO use
            True (the default), DC/DSA/DM use False.
        seed: seed of the augmenter's own generator; ``None`` draws one from torch's global RNG,
            so ``torch.manual_seed`` still makes runs reproducible.

    Call ``dsa(x)`` for per-sample parameters from the augmenter's stream, ``dsa(x, seed=s)`` for
    per-sample parameters from a stream seeded with ``s`` (replayable), and
    ``dsa(x, seed=s, siamese=True)`` for one parameter set shared by the batch.
    """

    def __init__(
        self,
        strategy: str = DEFAULT_STRATEGY,
        params: DSAParams | None = None,
        align_corners: bool = True,
        seed: int | None = None,
    ) -> None:
        ops = [] if strategy in ("", "none", "None") else strategy.split("_")
        unknown = [op for op in ops if op not in OPERATIONS]
        if unknown:
            raise ConfigError(
                f"unknown DSA operation(s) {unknown} in strategy {strategy!r}; "
                f"known: {', '.join(OPERATIONS)}"
            )
        self.strategy = strategy
        self.ops = ops
        self.params = params or DSAParams()
        self.align_corners = align_corners
        self.generator = seeded_generator(seed)

    def draw_seed(self) -> int:
        """A fresh seed from the augmenter's stream (for a Siamese pair or a replayable call)."""
        return fresh_seed(self.generator)

    def __call__(self, x: torch.Tensor, seed: int | None = None, siamese: bool = False) -> torch.Tensor:
        """Augment a batch ``[B, C, H, W]`` with one operation (see the class docstring)."""
        if not self.ops:
            return x
        if siamese and seed is None:
            raise ConfigError("Siamese DSA needs an explicit seed shared by the paired batches")
        gen = self.generator if seed is None else seeded_generator(seed)
        op = self.ops[int(torch.randint(0, len(self.ops), (1,), generator=gen).item())]
        n = 1 if siamese else x.shape[0]
        return self.apply(x, op, gen, n).contiguous()

    def apply(self, x: torch.Tensor, op: str, gen: torch.Generator, n: int) -> torch.Tensor:
        """Apply operation ``op`` with ``n`` parameter sets (1 = shared by the batch) from ``gen``."""
        p = self.params
        b, _, h, w = x.shape

        def uniform() -> torch.Tensor:
            return torch.rand(n, generator=gen).expand(b).to(x.device, x.dtype)

        def integers(low: int, high: int) -> torch.Tensor:
            return torch.randint(low, high, (n,), generator=gen).expand(b).to(x.device)

        if op == "color":
            x = brightness(x, uniform(), p.brightness)
            x = saturation(x, uniform(), p.saturation)
            return contrast(x, uniform(), p.contrast)
        if op == "flip":
            return flip(x, uniform(), p.prob_flip)
        if op == "crop":
            sh, sw = crop_shift(h, p.ratio_crop_pad), crop_shift(w, p.ratio_crop_pad)
            tx = integers(-sh, sh + 1)
            ty = integers(-sw, sw + 1)
            return crop(x, tx, ty)
        if op == "cutout":
            size = (cutout_size(h, p.ratio_cutout), cutout_size(w, p.ratio_cutout))
            cx = integers(0, h + (1 - size[0] % 2))
            cy = integers(0, w + (1 - size[1] % 2))
            return cutout(x, cx, cy, size)
        if op == "scale":
            lo = 1.0 / p.ratio_scale
            sx = torch.rand(n, generator=gen) * (p.ratio_scale - lo) + lo
            sy = torch.rand(n, generator=gen) * (p.ratio_scale - lo) + lo
            return affine(x, scale_theta(sx.expand(b), sy.expand(b)), self.align_corners)
        if op == "rotate":
            angle = (torch.rand(n, generator=gen) - 0.5) * 2 * p.ratio_rotate / 180 * math.pi
            return affine(x, rotate_theta(angle.expand(b)), self.align_corners)
        raise ConfigError(f"unknown DSA operation {op!r}")
