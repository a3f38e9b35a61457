"""Synthetic sets with non-trivial weights and realistic latents for the .ddf tests."""
from __future__ import annotations

import hashlib

import torch

from ddfast.codec import CodecConfig, SyntheticSet

FINE_STEPS = {"arm": (8, 16), "synthesis": (12, 12), "upsampling": (12, 0)}


def random_set(counts, image_size, channels: int = 3, context: int = 16, depth: int = 2, slice_size=None,
               synthesis: str = "v4-40", seed: int = 0, latent_scale: float = 3.0) -> SyntheticSet:
    """A SyntheticSet whose every weight is random (zero-initialized ones included) and whose
    integer latents round(16 y) are Laplace-like with scale ``latent_scale`` (clipped to +-60)."""
    config = CodecConfig(synthesis=synthesis, arm_context=context, arm_depth=depth)
    gen = torch.Generator().manual_seed(seed)
    syn = SyntheticSet(counts, image_size, channels=channels, config=config, slice_size=slice_size, generator=gen)
    with torch.no_grad():
        for name, p in syn.named_parameters():
            if name.endswith("latents"):
                p.copy_(_laplace(p.shape, latent_scale, gen).clamp(-60, 60) / 16.0)
            else:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return syn.eval()


def _laplace(shape, scale: float, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(shape, generator=gen) - 0.5
    return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())


def content_digest(qset) -> str:
    """SHA-256 of a QuantizedSet's integers: latents, then every tensor's integers, then the steps."""
    digest = hashlib.sha256(qset.latents.numpy().tobytes())
    for spec in qset.specs:
        digest.update(qset.integers(spec.name).numpy().tobytes())
    for module in sorted(qset.steps):
        digest.update(qset.steps[module].numpy().tobytes())
    return digest.hexdigest()
