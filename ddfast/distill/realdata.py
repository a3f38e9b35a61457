"""Real training data as the distillation losses use it: normalized tensors, per-class sampling.

Everything accepts plain ``(images, labels)`` tensors; a ``ddfast.data.ImageDataset`` (anything
with ``to_float()``, ``normalize()`` and ``labels``) is converted with its own mean/std.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ddfast.distill.seeding import derive_seed, seeded_generator
from ddfast.errors import ConfigError

__all__ = ["ClassSampler", "RealData", "derive_seed", "real_tensors"]

RealData = Any  # ImageDataset or (images, labels)


def real_tensors(data: RealData, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images float32 [N, C, H, W], labels int64 [N])`` from a dataset or a tensor pair.

    An ``ImageDataset`` is converted to [0, 1] floats and, with ``normalize``, to
    ``(x - mean) / std``; a tensor pair is returned as it is (after dtype checks).
    """
    if hasattr(data, "to_float") and hasattr(data, "labels"):
        images = data.to_float()
        if normalize:
            images = data.normalize(images)
        return images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
        images, labels = torch.as_tensor(images), torch.as_tensor(labels)
        if images.dim() != 4 or not images.is_floating_point():
            raise ConfigError(f"images must be a float [N, C, H, W] tensor, got {images.dtype} {tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0] or labels.is_floating_point():
            raise ConfigError("labels must be an integer tensor [N] matching the images")
        return images, labels.long()
    raise ConfigError("expected an ImageDataset or an (images, labels) pair of tensors")


class ClassSampler:
    """Random real images of one class at a time (the references' ``get_images(c, n)``).

    Args:
        images, labels: the real set (images already in the network's input space).
        num_classes: number of classes (default ``labels.max() + 1``).
        seed: seed of the sampler's generator (``None``: drawn from torch's global RNG).
        device: where sampled batches are returned (the images are moved there once).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.images = images if device is None else images.to(device)
        labels = labels.to(self.images.device)
        self.num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=self.num_classes).tolist()
        self.indices: Sequence[torch.Tensor] = torch.split(order, counts)
        self.generator = seeded_generator(seed)

    @property
    def device(self) -> torch.device:
        """Device of the returned batches."""
        return self.images.device

    def count(self, c: int) -> int:
        """Number of real images of class ``c``."""
        return int(self.indices[c].numel())

    def sample(self, c: int, n: int) -> torch.Tensor:
        """``min(n, count(c))`` distinct random images of class ``c``."""
        pool = self.indices[c]
        if pool.numel() == 0:
            raise ConfigError(f"class {c} has no real images")
        pick = torch.randperm(pool.numel(), generator=self.generator)[:n].to(pool.device)
        return self.images[pool[pick]]
