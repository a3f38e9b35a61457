"""Latent quantization: the differentiable proxies used in training and hard rounding at eval.

Matches the reference (Cool-chic v3.2 / DD-RUO ``quantizer.py``):
softround(x, T) = floor(x) + 1/2 + tanh((x - floor(x) - 1/2) / T) / (2 tanh(1 / (2T))), and the
``softround`` mode computes softround(softround(x, T) + noise, T).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ddfast import ops
from ddfast.errors import ConfigError
from ddfast.ops.torch_ops import softround

QUANTIZER_MODES = ("softround", "softround_alone", "ste", "hardround", "none")
NOISE_TYPES = ("kumaraswamy", "gaussian", "none")


def _draw(sample, shape, generator: torch.Generator | None, device: torch.device | str | None,
          dtype: torch.dtype) -> torch.Tensor:
    """Random values drawn where ``generator`` lives (any device), delivered on ``device``."""
    source = generator.device if generator is not None else device
    return sample(shape, generator=generator, device=source, dtype=dtype).to(device)


def kumaraswamy_noise(shape: torch.Size | tuple, a: float, *, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Noise in [-1/2, 1/2] from a Kumaraswamy(a, b(a)) law; a = 1 is uniform, larger a peaks at 0."""
    b = (2.0 ** a * (a - 1.0) + 1.0) / a
    u = _draw(torch.rand, shape, generator, device, dtype)
    return (1.0 - (1.0 - u) ** (1.0 / b)) ** (1.0 / a) - 0.5


def gaussian_noise(shape: torch.Size | tuple, sigma: float, *, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Zero-mean Gaussian noise with standard deviation ``sigma``."""
    return sigma * _draw(torch.randn, shape, generator, device, dtype)


@dataclass(frozen=True)
class Quantizer:
    """How latents are quantized in training mode (evaluation always hard-rounds).

    ``mode``: one of QUANTIZER_MODES; ``noise``: one of NOISE_TYPES; ``noise_param``: Kumaraswamy a
    or Gaussian sigma. Defaults are the joint-phase settings of the reference (softround with
    Gaussian noise, T = 0.3, sigma = 0.25); the warm-up uses Kumaraswamy noise with a = 2.
    Frozen: change settings with ``dataclasses.replace(syn.quantizer, temperature=0.1)``.
    """

    mode: str = "softround"
    temperature: float = 0.3
    noise: str = "gaussian"
    noise_param: float = 0.25

    def __post_init__(self) -> None:
        if self.mode not in QUANTIZER_MODES:
            raise ConfigError(f"unknown quantizer mode {self.mode!r}; choose one of {QUANTIZER_MODES}")
        if self.noise not in NOISE_TYPES:
            raise ConfigError(f"unknown noise type {self.noise!r}; choose one of {NOISE_TYPES}")
        if not self.temperature > 0:
            raise ConfigError(f"softround temperature must be > 0, got {self.temperature}")
        if self.noise == "kumaraswamy" and not self.noise_param >= 1:
            raise ConfigError(f"Kumaraswamy parameter a must be >= 1, got {self.noise_param}")
        if self.noise == "gaussian" and not self.noise_param >= 0:
            raise ConfigError(f"Gaussian noise sigma must be >= 0, got {self.noise_param}")

    def sample_noise(self, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A noise tensor shaped like ``like`` (zeros when the noise type is 'none')."""
        kwargs = dict(generator=generator, device=like.device, dtype=like.dtype)
        if self.noise == "kumaraswamy":
            return kumaraswamy_noise(like.shape, self.noise_param, **kwargs)
        if self.noise == "gaussian":
            return gaussian_noise(like.shape, self.noise_param, **kwargs)
        return torch.zeros_like(like)

    def __call__(self, x: torch.Tensor, training: bool, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, backend: str = "auto") -> torch.Tensor:
        """Quantize ``x``; in training mode ``noise`` (or a fresh sample) perturbs the proxy."""
        if not training or self.mode == "hardround":
            return torch.round(x)
        if self.mode == "ste":
            soft = softround(x, self.temperature)
            return soft + (torch.round(x) - soft).detach()
        if self.mode == "softround_alone":
            return softround(x, self.temperature)
        if noise is None:
            noise = self.sample_noise(x, generator)
        if self.mode == "none":
            return x + noise
        return ops.noisy_softround(x, noise, self.temperature, backend=backend)


WARMUP_QUANTIZER = Quantizer(mode="softround", temperature=0.3, noise="kumaraswamy", noise_param=2.0)
JOINT_QUANTIZER = Quantizer(mode="softround", temperature=0.3, noise="gaussian", noise_param=0.25)
