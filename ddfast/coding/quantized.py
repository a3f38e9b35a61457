"""QuantizedSet: a synthetic set after post-quantization, i.e. exactly what a .ddf file holds.

Latents are integers; every network tensor of a slice is an integer multiple of a power-of-two
step 2^-k (one weight step and one bias step per module and slice), or float32 for a module that
no step could quantize within the MSE threshold (step code ``RAW``). The tensors are kept in
their dequantized float form (exact: q * 2^-k), so a QuantizedSet turns into an ordinary
SyntheticSet whose eval-mode forward gives the images the file decodes to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np
import torch

from ddfast.codec import CodecConfig, SliceLayout, SyntheticSet
from ddfast.codec.stack import CodecStack
from ddfast.coding.intarm import fixed_point_arm_of
from ddfast.coding.lanes import Geometry
from ddfast.errors import ConfigError
from ddfast.labels import SoftLabels

MODULES = ("arm", "synthesis", "upsampling")
RAW = 255  # step code of a module kept in float32


@dataclass(frozen=True)
class TensorSpec:
    """One network tensor of a slice codec: its name, module, and whether it is a bias."""

    name: str
    module: str
    bias: bool

    def view(self, stack: CodecStack) -> torch.Tensor:
        """This tensor of every slice, [S, ...], as a view into the stack's parameters."""
        kind, _, index = self.name.rpartition(".")
        if self.name.startswith("arm.hidden_"):
            return getattr(stack.arm, kind.split(".")[1])[:, int(index)]
        if self.name.startswith("arm."):
            return getattr(stack.arm, self.name.split(".")[1])
        if self.name.startswith("synthesis."):
            return getattr(stack.synthesis, kind.split(".")[1])[int(index)]
        return stack.upsampling_kernel


def tensor_specs(config: CodecConfig, channels: int) -> tuple[TensorSpec, ...]:
    """Every network tensor of a slice codec, module by module, in file order."""
    specs = []
    for layer in range(config.arm_depth):
        specs += [TensorSpec(f"arm.hidden_w.{layer}", "arm", False), TensorSpec(f"arm.hidden_b.{layer}", "arm", True)]
    specs += [TensorSpec("arm.out_w", "arm", False), TensorSpec("arm.out_b", "arm", True)]
    for i in range(len(config.synthesis_layers(channels))):
        specs += [TensorSpec(f"synthesis.weights.{i}", "synthesis", False),
                  TensorSpec(f"synthesis.biases.{i}", "synthesis", True)]
    specs.append(TensorSpec("upsampling_kernel", "upsampling", False))
    return tuple(specs)


def quantize_to_step(values: torch.Tensor, exponents: torch.Tensor) -> torch.Tensor:
    """round(v / 2^-k) * 2^-k per slice (k = exponents[s]); slices with k == RAW keep v."""
    shape = (-1,) + (1,) * (values.dim() - 1)
    k = exponents.to(values.device).reshape(shape)
    scale = torch.pow(2.0, k.clamp(max=64).to(values.dtype))
    quantized = torch.round(values * scale) / scale
    return torch.where(k == RAW, values, quantized)


def integers_at_step(values: torch.Tensor, exponents: torch.Tensor) -> torch.Tensor:
    """The integers q = v * 2^k (int64) of quantized values; zeros for RAW slices."""
    shape = (-1,) + (1,) * (values.dim() - 1)
    k = exponents.to(values.device).reshape(shape)
    q = torch.round(values.double() * torch.pow(2.0, k.clamp(max=64).double()))
    return torch.where(k == RAW, torch.zeros_like(q), q).to(torch.int64)


def float_latent_bits(stack: CodecStack, latents: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """[S] the float ARM's estimated bits (training's rate) of each slice's first counts[s] images,
    one slice at a time so that memory stays bounded."""
    out = torch.zeros(len(counts), dtype=torch.float64)
    with torch.no_grad():
        for s, n in enumerate(counts):
            part = stack.select(torch.tensor([s]))
            out[s] = float(part.rate(latents[s:s + 1, :n].to(torch.float32)).sum())
    return out


@dataclass
class QuantizedSet:
    """A post-quantized synthetic set: integer latents and power-of-two-quantized weights.

    Attributes:
        latents: int32 [S, n_max, M], zeros at the padding positions of short slices.
        steps: per module, int64 [S, 2] step exponents (k_weights, k_biases): steps 2^-k;
            k_weights == RAW marks a module stored as float32.
        tensors: per tensor name (see :func:`tensor_specs`), float32 [S, ...] quantized values.
        classes: the original class ids when this set holds only some classes of a file.
        normalization: per-channel (mean, std) of the data the set was distilled for, if known.
        syn_lr: the learned evaluation learning rate of a TM set, if any.
        soft_labels: the soft label of every image (class-major rows over the file's classes),
            if the set has them (``ddfast.labels``).
    """

    config: CodecConfig
    image_size: tuple[int, int]
    channels: int
    images_per_class: tuple[int, ...]
    slice_size: int | None
    latents: torch.Tensor
    steps: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor]
    classes: tuple[int, ...] | None = None
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    syn_lr: float | None = None
    soft_labels: SoftLabels | None = None
    report: "object | None" = field(default=None, repr=False)

    @cached_property
    def layout(self) -> SliceLayout:
        """How the classes are split into slices."""
        return SliceLayout.build(self.images_per_class, self.slice_size)

    @cached_property
    def geometry(self) -> Geometry:
        """Grid shapes, context offsets and wavefront shift of the images."""
        return Geometry.of(self.image_size, self.config.n_grids, self.config.arm_context)

    @property
    def specs(self) -> tuple[TensorSpec, ...]:
        """The network tensors of one slice codec, in file order."""
        return tensor_specs(self.config, self.channels)

    @property
    def num_slices(self) -> int:
        """Number of slices (codecs)."""
        return self.layout.num_slices

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Original class id of each class of this set."""
        return self.classes if self.classes is not None else tuple(range(len(self.images_per_class)))

    def integers(self, name: str) -> torch.Tensor:
        """int64 [S, ...] integers of a tensor at its module's step (zeros where the module is RAW)."""
        spec = next(s for s in self.specs if s.name == name)
        return integers_at_step(self.tensors[name], self.steps[spec.module][:, int(spec.bias)])

    def supports(self) -> np.ndarray:
        """int32 [S, 2]: (min, max) of each slice's latents over its real images."""
        out = np.zeros((self.num_slices, 2), dtype=np.int32)
        for s, n in enumerate(self.layout.slice_sizes):
            values = self.latents[s, :n]
            out[s] = (int(values.min()), int(values.max()))
        return out

    def fixed_point_arm(self) -> tuple[np.ndarray, np.ndarray]:
        """The integer ARM of every slice: (W int32, B int64), see ``ddfast.coding.intarm``."""
        return fixed_point_arm_of(self.tensors, self.config.arm_depth)

    def to_synthetic_set(self, device: torch.device | str | None = None) -> SyntheticSet:
        """A SyntheticSet (in eval mode) holding exactly these latents and weights."""
        device = torch.device(device) if device is not None else self.latents.device
        syn = SyntheticSet(list(self.images_per_class), self.image_size, channels=self.channels, config=self.config,
                           slice_size=self.slice_size, generator=torch.Generator().manual_seed(0), device=device,
                           init_latents=False)
        with torch.no_grad():
            for spec in self.specs:
                spec.view(syn.stack).copy_(self.tensors[spec.name])
            syn.stack.latents.copy_(self.latents.to(torch.float32) / self.config.gain)
        return syn.eval()

    def subset(self, classes: Sequence[int]) -> "QuantizedSet":
        """The set of only these classes (ids of this set), in the given order."""
        picked = [int(c) for c in classes]
        if not picked or len(set(picked)) != len(picked) or not all(0 <= c < len(self.images_per_class) for c in picked):
            raise ConfigError(f"classes must be distinct ids in [0, {len(self.images_per_class)}), got {list(classes)}")
        index = torch.tensor([s for c in picked for s in self.layout.class_slices(c)])
        sub_layout = SliceLayout.build([self.images_per_class[c] for c in picked], self.slice_size)
        n_max = sub_layout.max_slice_size
        return QuantizedSet(
            self.config, self.image_size, self.channels, tuple(self.images_per_class[c] for c in picked),
            self.slice_size, self.latents[index, :n_max].clone(), {m: v[index] for m, v in self.steps.items()},
            {name: v[index] for name, v in self.tensors.items()}, tuple(self.class_ids[c] for c in picked),
            self.normalization, self.syn_lr,
            self.soft_labels.of_classes(self.images_per_class, picked) if self.soft_labels is not None else None)
