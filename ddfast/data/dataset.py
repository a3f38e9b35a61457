"""`ImageDataset`: the in-memory labelled image set that every reader returns.

Distillation needs the whole real set as one tensor (class-wise sampling, per-class
initialization, normalization with the reference statistics), so readers decode everything
up front into this small container instead of exposing a lazy torch ``Dataset``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from ddfast.errors import ConfigError

Indices = Union[torch.Tensor, np.ndarray, Sequence[int], range]


@dataclass(repr=False, eq=False)
class ImageDataset:
    """Images, labels and the metadata needed to use them like the reference code does.

    Attributes:
        images: ``[N, C, H, W]`` tensor, ``uint8`` (0..255) or ``float32`` in [0, 1].
        labels: ``int64`` tensor ``[N]`` with values in ``0 .. len(classes) - 1``.
        classes: class names; index = label.
        mean, std: per-channel normalization statistics (on [0, 1] pixels) that the
            reference implementations use for this dataset.
        name: the canonical ``ddfast.data.load`` name the set came from.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dim() != 4:
            raise ConfigError("ImageDataset.images must be a [N, C, H, W] tensor")
        if self.images.dtype not in (torch.uint8, torch.float32):
            raise ConfigError(
                f"ImageDataset.images must be uint8 or float32, got {self.images.dtype}"
            )
        labels = torch.as_tensor(self.labels)
        if labels.dtype != torch.int64:
            if labels.is_floating_point() or labels.dtype == torch.bool:
                raise ConfigError(f"ImageDataset.labels must be integers, got {labels.dtype}")
            labels = labels.to(torch.int64)
        self.labels = labels.reshape(-1)
        if self.labels.numel() != self.images.shape[0]:
            raise ConfigError(
                f"ImageDataset has {self.images.shape[0]} images but {self.labels.numel()} labels"
            )
        self.classes = [str(c) for c in self.classes]
        if self.labels.numel() and (
            int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)
        ):
            raise ConfigError(
                f"ImageDataset labels must lie in 0..{len(self.classes) - 1} "
                f"(one per class name), got {int(self.labels.min())}..{int(self.labels.max())}"
            )
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        c = self.images.shape[1]
        if len(self.mean) != c or len(self.std) != c:
            raise ConfigError(
                f"ImageDataset mean/std need {c} values (one per channel), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if any(not s > 0 for s in self.std):
            raise ConfigError(f"ImageDataset std values must be positive, got {self.std}")

    # -- shape ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``), including classes with no images."""
        return len(self.classes)

    @property
    def channels(self) -> int:
        """Number of image channels C."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """Image size as ``(H, W)``."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"ImageDataset(name={self.name!r}, n={len(self)}, classes={self.num_classes}, "
            f"shape={self.channels}x{h}x{w}, dtype={str(self.images.dtype).replace('torch.', '')})"
        )

    # -- pixel conversions ------------------------------------------------------------------
    def to_float(self) -> torch.Tensor:
        """Images as ``float32`` in [0, 1] (uint8 is divided by 255; float32 is returned as is)."""
        if self.images.dtype == torch.uint8:
            return self.images.to(torch.float32).div_(255.0)
        return self.images

    def _stats_like(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ConfigError(
                "normalize/denormalize expect a float tensor of [0, 1] pixels; "
                "use ImageDataset.to_float() first"
            )
        if x.dim() < 3 or x.shape[-3] != self.channels:
            raise ConfigError(
                f"expected a tensor shaped [..., {self.channels}, H, W], got {tuple(x.shape)}"
            )
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return mean, std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` per channel for float [0, 1] pixels shaped ``[..., C, H, W]``."""
        mean, std = self._stats_like(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: ``x * std + mean`` per channel."""
        mean, std = self._stats_like(x)
        return x * std + mean

    # -- selection --------------------------------------------------------------------------
    def _indices_by_class(self) -> list[torch.Tensor]:
        """Dataset indices of each class, in dataset order (index = label)."""
        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return list(torch.split(order, counts))

    def by_class(self) -> list[torch.Tensor]:
        """Per-class image tensors, ``result[c]`` = all images with label c, in dataset order."""
        return [self.images[ix] for ix in self._indices_by_class()]

    def class_counts(self) -> list[int]:
        """Number of images of each class (index = label)."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def take_per_class(
        self, n: int, generator: torch.Generator | None = None
    ) -> ImageDataset:
        """A class-balanced subset with ``n`` images of every class, ordered class by class.

        Without a generator the first ``n`` images of each class (dataset order) are taken, so
        the result is reproducible; with a generator they are drawn at random without
        replacement. Raises ``ConfigError`` when a class has fewer than ``n`` images.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"take_per_class needs a positive integer n, got {n!r}")
        n = int(n)
        per_class = self._indices_by_class()
        short = [(c, len(ix)) for c, ix in enumerate(per_class) if len(ix) < n]
        if short:
            listed = ", ".join(f"{self.classes[c]!r} (label {c}): {k}" for c, k in short[:10])
            more = f" and {len(short) - 10} more" if len(short) > 10 else ""
            raise ConfigError(
                f"take_per_class({n}) on {self.name}: {len(short)} class(es) have fewer than "
                f"{n} images: {listed}{more}"
            )
        picked = []
        for ix in per_class:
            if generator is not None:
                ix = ix[torch.randperm(len(ix), generator=generator)[:n]]
            else:
                ix = ix[:n]
            picked.append(ix)
        return self.subset(torch.cat(picked) if picked else torch.zeros(0, dtype=torch.int64))

    def subset(self, indices: Indices) -> ImageDataset:
        """A new dataset with the images at ``indices`` (integer indices or a boolean mask)."""
        idx = indices if isinstance(indices, torch.Tensor) else torch.as_tensor(np.asarray(indices))
        if idx.dtype == torch.bool:
            if idx.numel() != len(self):
                raise ConfigError(
                    f"boolean mask has {idx.numel()} entries, dataset has {len(self)} images"
                )
            idx = idx.reshape(-1).nonzero().reshape(-1)
        else:
            if idx.is_floating_point() and idx.numel() > 0:
                raise ConfigError(f"subset indices must be integers, got {idx.dtype}")
            idx = idx.reshape(-1).to(torch.int64)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise ConfigError(f"subset index out of range for a dataset of {len(self)} images")
        idx = idx.to(self.images.device)
        return ImageDataset(
            images=self.images[idx],
            labels=self.labels[idx.to(self.labels.device)],
            classes=list(self.classes),
            mean=self.mean,
            std=self.std,
            name=self.name,
        )

    def to(self, device: torch.device | str) -> ImageDataset:
        """The same dataset with images and labels moved to ``device``."""
        return ImageDataset(
            images=self.images.to(device),
            labels=self.labels.to(device),
            classes=list(self.classes),
            mean=self.mean,
            std=self.std,
            name=self.name,
        )
