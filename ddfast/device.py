"""Device names -> torch devices, checked before any work starts."""
from __future__ import annotations

import torch

from ddfast.errors import ConfigError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None -> CUDA when available, else CPU; any other name must be a device that exists here.

    ConfigError for an unknown name, ``cuda`` without a CUDA device, or a device index that is
    out of range -- so that a long command fails in its first second, not after its first hour.
    """
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA device here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here")
        return device
    raise ConfigError(f"device {name!r} is not supported; use cpu, cuda, cuda:N or auto")
