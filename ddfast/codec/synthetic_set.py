"""SyntheticSet: every slice codec of a distilled dataset, evaluated together.

``images, labels = syn()`` decodes all classes in one batched forward (class-major order);
``syn.rate_bits()`` gives the differentiable estimated bits of each slice's latents.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ddfast import ops
from ddfast.codec.config import CodecConfig
from ddfast.codec.layout import SliceLayout
from ddfast.codec.quantizer import JOINT_QUANTIZER, Quantizer
from ddfast.codec.stack import CodecStack
from ddfast.codec.warmup import WarmupReport, warm_up
from ddfast.errors import ConfigError
from ddfast.fileio import atomic_torch_save, load_torch_file

# Eval-mode images are rounded to 16-bit levels, like the reference's test forward (bitdepth 16).
OUTPUT_LEVELS = 2 ** 16 - 1

# Real images per class: a sequence indexed by label, or a mapping label -> [n, C, H, W] tensor.
ImagesByClass = Sequence[torch.Tensor] | Mapping[int, torch.Tensor]


class SyntheticSet(nn.Module):
    """A distilled dataset parameterized by one neural codec per slice.

    Args:
        images_per_class: one count for every class, or a list with a count per class.
        image_size: (H, W) of the images, or one int for square images.
        num_classes: number of classes when ``images_per_class`` is a single int.
        channels: image channels (3 for RGB, 1 for Fashion-MNIST).
        config: the codec architecture shared by all slices.
        slice_size: largest number of images one codec holds (None: one slice per class).
        generator: random generator for the initial weights and latents.
        backend: ops backend ('auto', 'torch', 'triton').
        device: where the set lives (default: the CPU).
        init_latents: False leaves the latents uninitialized (allocated on ``device`` directly), for
            loading latents into, e.g. decoded ones.
    """

    def __init__(self, images_per_class: int | Sequence[int], image_size: int | tuple[int, int],
                 num_classes: int | None = None, channels: int = 3, config: CodecConfig | None = None,
                 slice_size: int | None = None, generator: torch.Generator | None = None,
                 backend: str = "auto", *, device: torch.device | str | None = None,
                 init_latents: bool = True) -> None:
        super().__init__()
        counts = self._class_counts(images_per_class, num_classes)
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"image_size must be a positive int or (H, W), got {image_size!r}")
        if not (isinstance(channels, int) and channels >= 1):
            raise ConfigError(f"channels must be a positive integer, got {channels!r}")
        if backend not in ops.BACKENDS:
            raise ConfigError(f"unknown ops backend {backend!r}; choose one of {ops.BACKENDS}")
        self.config = (config or CodecConfig()).for_image_size(size)
        self.layout = SliceLayout.build(counts, slice_size)
        self.slice_size = slice_size
        self.backend = backend
        self.quantizer: Quantizer = JOINT_QUANTIZER
        self.stack = CodecStack(self.layout.num_slices, self.layout.max_slice_size, size, channels,
                                self.config, generator, init_latents=init_latents, device=device)
        self.register_buffer("valid", self.layout.valid_mask(), persistent=False)
        self.register_buffer("labels", self.layout.labels(), persistent=False)
        self._cached: tuple[torch.Tensor, int] | None = None
        # Free-form facts saved with the set, e.g. "normalization": (mean, std) per channel of the
        # data it was distilled for, "syn_lr", "dataset"; ddfast.compress stores the first two.
        self.metadata: dict[str, Any] = {}
        if device is not None:
            self.to(device)

    @staticmethod
    def _class_counts(images_per_class, num_classes) -> list[int]:
        if isinstance(images_per_class, int):
            if num_classes is None or num_classes < 1:
                raise ConfigError("give num_classes (>= 1) when images_per_class is a single int")
            return [images_per_class] * num_classes
        counts = list(images_per_class)
        if num_classes is not None and num_classes != len(counts):
            raise ConfigError(f"num_classes={num_classes} but {len(counts)} per-class counts were given")
        return counts

    # -- shape facts -------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.layout.num_classes

    @property
    def num_slices(self) -> int:
        """Number of slices (codecs)."""
        return self.layout.num_slices

    @property
    def image_size(self) -> tuple[int, int]:
        """Image size (H, W)."""
        return self.stack.image_size

    @property
    def channels(self) -> int:
        """Image channels."""
        return self.stack.channels

    @property
    def num_pixels_per_slice(self) -> torch.Tensor:
        """[S] pixel count N_s * H * W of each slice (the reference's bpp denominator)."""
        h, w = self.image_size
        return torch.tensor(self.layout.slice_sizes, device=self.valid.device) * (h * w)

    # -- forward -------------------------------------------------------------------------------
    def quantized_latents(self, noise: torch.Tensor | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """[S, n_max, M] latents after Q(gain * y): proxies in train mode, integers in eval mode."""
        return self.stack.quantize(self.quantizer, self.training, noise=noise, generator=generator,
                                   backend=self.backend)

    def forward(self, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode every slice: (images [N, C, H, W] class-major, labels [N] int64).

        In train mode the latents are quantized with fresh noise (or ``noise``); ``rate_bits()``
        called next measures those same quantized latents. In eval mode latents are rounded and
        the images are rounded to 16-bit levels (multiples of 1/65535), as the reference's test
        forward does.
        """
        return self._decode(self._quantize_and_remember(noise, generator)), self.labels

    def _quantize_and_remember(self, noise: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        """Quantized latents, kept for the next rate_bits() while the latents stay unchanged."""
        quantized = self.quantized_latents(noise, generator)
        self._cached = (quantized, self.stack.latents._version)
        return quantized

    def _decode(self, quantized: torch.Tensor) -> torch.Tensor:
        """Quantized latents -> the set's images [N, C, H, W] (valid images only, class-major)."""
        images = self.stack.decode(quantized, backend=self.backend)
        # Full slices need no mask: a view, where indexing would copy (and scatter the gradient back).
        images = images.flatten(0, 1) if self.layout.num_images == self.valid.numel() else images[self.valid]
        return self._output(images)

    def forward_subset(self, indices: torch.Tensor, noise: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode only the images ``indices`` (class-major positions, any order): (images, labels).

        All latents are quantized (``rate_bits()`` then measures the whole set, as after
        ``forward``), but upsampling and synthesis run only for the slices' selected images: the
        images equal those of ``forward()`` at the same positions.
        """
        index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if index.numel() and (index.min() < 0 or index.max() >= self.layout.num_images):
            raise ConfigError(f"image indices must lie in [0, {self.layout.num_images})")
        quantized = self.quantized_latents(noise, generator)
        self._cached = (quantized, self.stack.latents._version)
        slice_of, position = self.layout.locate(index)
        # Per slice, its selected images first: rank of each index among its slice's selections.
        order = torch.argsort(slice_of * self.layout.max_slice_size + position)
        counts = torch.bincount(slice_of, minlength=self.num_slices)
        width = max(int(counts.max()), 1) if index.numel() else 1
        rank = torch.empty_like(index)
        starts = torch.cumsum(counts, 0) - counts
        rank[order] = torch.arange(index.numel()) - starts[slice_of[order]]
        pick = torch.zeros(self.num_slices, width, dtype=torch.int64)
        pick[slice_of, rank] = position
        device = quantized.device
        selected = quantized.gather(1, pick.to(device).unsqueeze(-1).expand(-1, -1, quantized.shape[-1]))
        images = self.stack.decode(selected, backend=self.backend)[slice_of.to(device), rank.to(device)]
        return self._output(images), self.labels[index.to(self.labels.device)]

    def _output(self, images: torch.Tensor) -> torch.Tensor:
        """Eval mode rounds images to 16-bit levels (multiples of 1/65535), as the reference."""
        return images if self.training else torch.round(images * OUTPUT_LEVELS) / OUTPUT_LEVELS

    def rate_bits(self) -> torch.Tensor:
        """[S] differentiable estimated bits of each slice's latents.

        Uses the quantized latents of the latest forward when the latents have not changed since;
        otherwise quantizes afresh.
        """
        return self._slice_bits(self._latest_quantized())

    def _slice_bits(self, quantized: torch.Tensor) -> torch.Tensor:
        bits = self.stack.rate(quantized, backend=self.backend)
        return (bits * self.valid.unsqueeze(-1)).sum(dim=(1, 2))

    def forward_with_rate(self, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, labels, bits per slice) from one quantization of the latents."""
        quantized = self._quantize_and_remember(noise, generator)
        return self._decode(quantized), self.labels, self._slice_bits(quantized)

    def _latest_quantized(self) -> torch.Tensor:
        if self._cached is not None:
            quantized, version = self._cached
            fresh = version == self.stack.latents._version
            if fresh and (quantized.requires_grad or not torch.is_grad_enabled()):
                return quantized
        return self.quantized_latents()

    def train(self, mode: bool = True) -> "SyntheticSet":
        """As ``nn.Module.train``: noisy quantization (train) or rounding (eval); drops the cached rounded latents."""
        self._cached = None
        return super().train(mode)

    # -- per-class views -------------------------------------------------------------------------
    def class_bits(self, slice_bits: torch.Tensor) -> torch.Tensor:
        """Sum per-slice values [S] into per-class values [num_classes]."""
        index = torch.tensor(self.layout.slice_class, device=slice_bits.device)
        return torch.zeros(self.num_classes, device=slice_bits.device, dtype=slice_bits.dtype).index_add(
            0, index, slice_bits)

    def slice_targets(self, images_by_class: "ImagesByClass") -> torch.Tensor:
        """Arrange per-class images [n_c, C, H, W] into padded per-slice targets [S, n_max, C, H, W]."""
        h, w = self.image_size
        targets = torch.zeros(self.num_slices, self.layout.max_slice_size, self.channels, h, w)
        for label in range(self.num_classes):
            try:
                images = torch.as_tensor(images_by_class[label])
            except (KeyError, IndexError):
                raise ConfigError(f"no images given for class {label}") from None
            need = self.layout.images_per_class[label]
            if images.dim() != 4 or tuple(images.shape[1:]) != (self.channels, h, w):
                raise ConfigError(f"class {label}: expected images of shape [n, {self.channels}, {h}, {w}], "
                                  f"got {tuple(images.shape)}")
            if images.shape[0] < need:
                raise ConfigError(f"class {label} needs {need} images, got {images.shape[0]}")
            if images.dtype == torch.uint8:
                images = images.float() / 255.0
            start = 0
            for index in self.layout.class_slices(label):
                size = self.layout.slice_sizes[index]
                targets[index, :size] = images[start:start + size].float()
                start += size
        return targets.to(self.valid.device)

    def init_from_data(self, images_by_class: ImagesByClass, beta: float, **options: Any) -> WarmupReport:
        """Phase 1: overfit every slice to real images of its class (options: ddfast.codec.warm_up's).

        ``images_by_class`` holds, per class, at least as many images [n, C, H, W] (uint8 or float in
        [0, 1]) as the class has synthetic images; the first ones are used.
        """
        return warm_up(self.stack, self.slice_targets(images_by_class), self.valid, beta, backend=self.backend,
                       **options)

    def num_parameters(self) -> dict[str, int]:
        """Trainable network parameters of one slice codec, per component (latents excluded)."""
        return {
            "arm": sum(p[0].numel() for p in self.stack.arm.parameters()),
            "upsampling": self.stack.upsampling_kernel[0].numel(),
            "synthesis": sum(p[0].numel() for p in self.stack.synthesis.parameters()),
        }

    def num_latents(self) -> int:
        """Latent values of all real images (padding positions excluded)."""
        return self.stack.latents.shape[-1] * self.layout.num_images

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the set (architecture, layout, weights, metadata) atomically with ``torch.save``."""
        payload = {"config": self.config.to_dict(), "images_per_class": list(self.layout.images_per_class),
                   "image_size": list(self.image_size), "channels": self.channels, "slice_size": self.slice_size,
                   "metadata": dict(self.metadata),
                   "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}
        atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "SyntheticSet":
        """Read a set written by :meth:`save` (a run folder's ``distilled.pt`` is one); ConfigError if
        it is not one."""
        payload = load_torch_file(path, "synthetic set", ConfigError)
        keys = ("config", "images_per_class", "image_size", "channels", "slice_size", "state_dict")
        if not isinstance(payload, dict) or any(k not in payload for k in keys):
            raise ConfigError(f"{path} is not a saved SyntheticSet (a dict with {', '.join(keys)})")
        try:
            syn = cls(payload["images_per_class"], tuple(payload["image_size"]), channels=payload["channels"],
                      config=CodecConfig.from_dict(payload["config"]), slice_size=payload["slice_size"])
            syn.load_state_dict(payload["state_dict"])
        except (TypeError, ValueError, RuntimeError, KeyError) as err:
            raise ConfigError(f"saved SyntheticSet {path} is inconsistent: {err}") from err
        metadata = payload.get("metadata", {})
        syn.metadata = dict(metadata) if isinstance(metadata, dict) else {}
        return syn.to(device)
