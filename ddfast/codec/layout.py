"""How a dataset's synthetic images are split into slices (one codec each).

By default every class is one slice. A class with more images than ``slice_size`` is split into
ceil(n / slice_size) slices of near-equal size (718 images with slice size 360 -> 2 x 359), so no
slice is ever empty. Slices are ordered by class, then by position in the class, which makes the
concatenated images class-major.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ddfast.errors import ConfigError


def grid_shapes(image_size: tuple[int, int], n_grids: int) -> tuple[tuple[int, int], ...]:
    """Latent grid sizes: grid i is ceil(H / 2^i) x ceil(W / 2^i)."""
    h, w = image_size
    return tuple((math.ceil(h / 2 ** i), math.ceil(w / 2 ** i)) for i in range(n_grids))


@dataclass(frozen=True)
class SliceLayout:
    """Images per class, and which class and how many images each slice holds."""

    images_per_class: tuple[int, ...]
    slice_class: tuple[int, ...]
    slice_sizes: tuple[int, ...]

    @classmethod
    def build(cls, images_per_class: Sequence[int], slice_size: int | None = None) -> "SliceLayout":
        """The layout of classes with these image counts, each split into slices of at most ``slice_size`` images."""
        counts = tuple(int(n) for n in images_per_class)
        if not counts:
            raise ConfigError("a synthetic set needs at least one class")
        if any(n < 1 for n in counts):
            raise ConfigError(f"every class needs at least one image, got {list(counts)}")
        if slice_size is not None and slice_size < 1:
            raise ConfigError(f"slice_size must be >= 1, got {slice_size}")
        slice_class, slice_sizes = [], []
        for label, n in enumerate(counts):
            pieces = 1 if slice_size is None else math.ceil(n / slice_size)
            base, extra = divmod(n, pieces)
            for j in range(pieces):
                slice_class.append(label)
                slice_sizes.append(base + (1 if j < extra else 0))
        return cls(counts, tuple(slice_class), tuple(slice_sizes))

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.images_per_class)

    @property
    def num_slices(self) -> int:
        """Number of slices (codecs)."""
        return len(self.slice_sizes)

    @property
    def max_slice_size(self) -> int:
        """Images in the largest slice (the padded size of every slice in a stack)."""
        return max(self.slice_sizes)

    @property
    def num_images(self) -> int:
        """Images of all slices together."""
        return sum(self.slice_sizes)

    def valid_mask(self) -> torch.Tensor:
        """[S, n_max] bool: which of a slice's padded image positions hold a real image."""
        positions = torch.arange(self.max_slice_size)
        return positions.unsqueeze(0) < torch.tensor(self.slice_sizes).unsqueeze(1)

    def labels(self) -> torch.Tensor:
        """Class-major labels of all images (int64)."""
        return torch.repeat_interleave(torch.arange(self.num_classes), torch.tensor(self.images_per_class),
                                       output_size=self.num_images)

    def locate(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(slice, position in the slice) of class-major image indices, int64 tensors like ``indices``."""
        starts = torch.cumsum(torch.tensor((0,) + self.slice_sizes), 0)
        slice_of = torch.searchsorted(starts, indices.cpu(), right=True) - 1
        return slice_of, indices.cpu() - starts[slice_of]

    def class_slices(self, label: int) -> list[int]:
        """Indices of the slices that hold class ``label``."""
        return [i for i, c in enumerate(self.slice_class) if c == label]
