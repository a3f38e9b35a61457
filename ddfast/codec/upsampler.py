"""Initial values of the learned upsampling kernel (one KxK transposed conv, shared by all levels)."""
from __future__ import annotations

import torch

from ddfast.errors import ConfigError

_BICUBIC_TAPS = (-9.0, -27.0, 67.0, 225.0, 225.0, 67.0, -27.0, -9.0)
_BILINEAR_TAPS = (1.0, 3.0, 3.0, 1.0)


def initial_upsampling_kernel(size: int) -> torch.Tensor:
    """The reference init: 8x8 bicubic outer product (zero-padded for K > 8), 4x4 bilinear for K < 8.

    Each of the four output phases of the stride-2 transposed conv sums to 1.
    """
    if size < 4 or size % 4:
        raise ConfigError(f"upsampling kernel size must be a multiple of 4, got {size}")
    if size < 8:
        taps = torch.tensor(_BILINEAR_TAPS) / 4.0
    else:
        taps = torch.tensor(_BICUBIC_TAPS) / 256.0
    kernel = torch.outer(taps, taps)
    pad = (size - kernel.shape[0]) // 2
    return torch.nn.functional.pad(kernel, (pad, pad, pad, pad))
