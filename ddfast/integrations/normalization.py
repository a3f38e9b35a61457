"""Per-channel normalization between decoded pixels and a network's input space.

A codec decodes [0, 1] pixels; DD loops work on (x - mean) / std. The FreD/DDiF and MTT loops
hand their synthetic set normalized real images to start from and expect normalized images
back, so their adapters normalize on the way out and undo it on the way in.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ddfast.errors import ConfigError


class Normalization:
    """(x - mean) / std per channel; the identity when ``mean`` and ``std`` are None."""

    def __init__(self, mean: Sequence[float] | None, std: Sequence[float] | None, channels: int) -> None:
        if (mean is None) != (std is None):
            raise ConfigError("give both mean and std, or neither")
        self.mean = self.std = None
        if mean is not None and std is not None:
            m = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
            s = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
            if m.numel() != channels or s.numel() != channels:
                raise ConfigError(f"mean and std need one value per channel ({channels}), got {m.numel()} and "
                                  f"{s.numel()}")
            if not bool(torch.isfinite(m).all()) or not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
                raise ConfigError(f"mean must be finite and std finite and > 0, got {m.tolist()} and {s.tolist()}")
            self.mean, self.std = m.view(1, -1, 1, 1), s.view(1, -1, 1, 1)

    def to_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] pixels -> the network's input space."""
        if self.mean is None:
            return pixels
        return (pixels - self.mean.to(pixels)) / self.std.to(pixels)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Images in the network's input space -> [0, 1] pixels (clamped)."""
        if self.mean is not None:
            x = x * self.std.to(x) + self.mean.to(x)
        return x.clamp(0.0, 1.0)
