"""Soft labels: their bitrate, their quantization on the simplex, and the loss that trains on them.

A soft label is a probability vector y in the (K-1)-simplex (DD-RUO, Appendix A1, (A1)). Coded at
resolution eps, the simplex holds about Vol / eps^(K-1) cells, so a label costs at most (DD-RUO,
(A4))::

    r <= log2 B ~= log2(1 / ((K-1)! eps^(K-1))) = -log2 (K-1)! - (K-1) log2 eps   bits per vector

(about 15,456 bits for K = 1000 and eps = 2^-24, the paper's fp32 illustration).

ddfast stores soft labels on the lattice of that resolution: eps = 1/M for an integer M, and a
label is K non-negative integer counts summing to M (y_k = count_k / M). The quantizer rounds by
largest remainders, so every row sums to M exactly. The lattice has C(M + K - 1, K - 1) points;
(A4) is the volume approximation of its log2.

This module is a leaf (torch, numpy and ``ddfast.errors`` only): the .ddf coder
(``ddfast.coding``) and the training loops (``ddfast.distill``, ``ddfast.eval``) both use it.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ddfast.errors import ConfigError

MAX_RESOLUTION = 2 ** 32  # eps >= 2^-32
ROW_SUM_TOLERANCE = 1e-4  # |sum_k y_k - 1| a soft label may be off by before it is renormalized


def soft_label_bits(num_classes: int, eps: float) -> float:
    """Bits to code one K-class probability vector quantized at resolution ``eps`` (DD-RUO, (A4)).

    -log2 (K-1)! - (K-1) log2 eps, the log2 of the simplex's volume 1/(K-1)! over a cell's
    eps^(K-1): the entropy-coding bound for uniformly spread labels.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"the number of classes must be a positive integer, got {num_classes!r}")
    if not isinstance(eps, (int, float)) or not 0 < eps <= 1:
        raise ConfigError(f"eps must be a number in (0, 1], got {eps!r}")
    return -math.lgamma(num_classes) / math.log(2) - (num_classes - 1) * math.log2(eps)


def resolution_of(eps: float) -> int:
    """M = 1/eps as an int; ConfigError unless eps is 1/M for an integer M in [1, 2^32]."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ConfigError(f"eps must be a positive number 1/M (M an integer), got {eps!r}")
    m = round(1 / eps)
    if not 1 <= m <= MAX_RESOLUTION or abs(m * eps - 1) > 1e-9:
        raise ConfigError(f"eps must be 1/M for an integer M in [1, 2^32] (e.g. 2**-16), got {eps!r}")
    return m


def check_soft_targets(targets: torch.Tensor, rows: int | None = None, num_classes: int | None = None,
                       what: str = "soft labels") -> torch.Tensor:
    """``targets`` as a float tensor [N, K] of probability rows; ConfigError otherwise.

    Rows must be finite, non-negative and sum to 1 within 1e-4 (float32 softmax outputs do).
    """
    t = torch.as_tensor(targets)
    if t.dim() != 2 or not t.is_floating_point() or min(t.shape) < 1:
        raise ConfigError(f"{what} must be a float tensor [N, K], got {t.dtype} {tuple(t.shape)}")
    if rows is not None and t.shape[0] != rows:
        raise ConfigError(f"{what} need one row per image: {rows} rows, got {t.shape[0]}")
    if num_classes is not None and t.shape[1] != num_classes:
        raise ConfigError(f"{what} need one column per class: {num_classes} columns, got {t.shape[1]}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ConfigError(f"{what} must be finite and non-negative")
    sums = t.double().sum(1)
    worst = float((sums - 1).abs().max())
    if worst > ROW_SUM_TOLERANCE:
        raise ConfigError(f"every row of the {what} must sum to 1 (a row is off by {worst:.3g})")
    return t


@dataclass(frozen=True, eq=False)
class SoftLabels:
    """Soft labels on the simplex lattice of resolution eps = 1/M.

    Attributes:
        counts: int64 [N, K], non-negative, every row sums to ``resolution``; y = counts / M.
        resolution: M = 1/eps.
    """

    counts: torch.Tensor
    resolution: int

    def __post_init__(self) -> None:
        c, m = self.counts, self.resolution
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_RESOLUTION:
            raise ConfigError(f"the resolution M = 1/eps must be an integer in [1, 2^32], got {m!r}")
        if not isinstance(c, torch.Tensor) or c.dtype != torch.int64 or c.dim() != 2 or min(c.shape) < 1:
            raise ConfigError("soft label counts must be an int64 tensor [N, K]")
        if bool((c < 0).any()) or bool((c.sum(1) != m).any()):
            raise ConfigError(f"soft label counts must be non-negative and every row must sum to M = {m}")

    @property
    def eps(self) -> float:
        """The resolution eps = 1/M."""
        return 1.0 / self.resolution

    @property
    def num_classes(self) -> int:
        """Number of classes K (entries per label)."""
        return self.counts.shape[1]

    def __len__(self) -> int:
        return self.counts.shape[0]

    def probabilities(self, device: torch.device | str | None = None) -> torch.Tensor:
        """float32 [N, K] counts / M (computed in float64, then rounded once)."""
        return (self.counts.double() / self.resolution).float().to(device or self.counts.device)

    def of_classes(self, images_per_class: Sequence[int], classes: Sequence[int]) -> "SoftLabels":
        """The rows of these classes, in that order, from rows stored class-major with
        ``images_per_class[c]`` rows of class c (the image order of a synthetic set)."""
        starts = [0, *itertools.accumulate(images_per_class)]
        index = torch.tensor([i for c in classes for i in range(starts[c], starts[c + 1])], dtype=torch.int64)
        return SoftLabels(self.counts[index.to(self.counts.device)], self.resolution)


def quantize_soft_labels(probabilities: torch.Tensor, eps: float) -> SoftLabels:
    """Soft labels [N, K] -> counts on the lattice of resolution eps, by largest remainders.

    Each row is renormalized to sum 1, scaled by M = 1/eps and floored; the counts still missing
    to M go, one each, to the entries with the largest fractional parts (ties: lower class
    first). Every row then sums to M exactly and no count is more than 1 from y_k M.
    """
    m = resolution_of(eps)
    p = check_soft_targets(probabilities).detach().cpu().double()
    scaled = p / p.sum(1, keepdim=True) * m
    base = scaled.floor()
    missing = (m - base.sum(1)).round().to(torch.int64)  # in [0, K]: the floors lose < 1 each
    order = torch.argsort(base - scaled, dim=1, stable=True)  # largest fractional part first
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(p.shape[1]).expand_as(order).contiguous())
    return SoftLabels(base.to(torch.int64) + (rank < missing[:, None]).to(torch.int64), m)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k p_k log softmax(logits)_k: cross-entropy with soft targets
    (logits [B, K], targets [B, K]); equals ``F.cross_entropy`` for one-hot targets."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
