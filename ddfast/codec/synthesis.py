"""Synthesis networks: the decoder versions of DD-RUO (Dataset Distillation as Data Compression: A
Rate-Utility Perspective, ICCV 2025), Table A1, single-slice and slice-stacked.

Version "v<depth>-<D1>" is 1x1 convs  L -> D1 -> [D2] -> out, then two 3x3 residual convs
out -> out (replicate padding, ReLU after every layer except the last 1x1 and the last 3x3).
With L = 6 latent channels and 3 output channels the trainable parameter counts equal DD-RUO Table A1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ddfast import ops
from ddfast.errors import ConfigError

# version -> (D1, D2); D2 = 0 is the identity (no layer), as in DD-RUO Table A1.
SYNTHESIS_VERSIONS: dict[str, tuple[int, int]] = {
    "v4-40": (40, 0),
    "v4-160": (160, 0),
    "v4-240": (240, 0),
    "v4-480": (480, 0),
    "v4-960": (960, 0),
    "v4-1200": (1200, 0),
    "v5-240": (240, 40),
    "v5-320": (320, 40),
}


@dataclass(frozen=True)
class LayerSpec:
    """One synthesis conv: in/out channels, square kernel, residual connection, ReLU after."""

    in_channels: int
    out_channels: int
    kernel: int
    residual: bool
    relu: bool

    @property
    def num_parameters(self) -> int:
        return self.out_channels * self.in_channels * self.kernel ** 2 + self.out_channels


def synthesis_layers(version: str, in_channels: int, out_channels: int) -> tuple[LayerSpec, ...]:
    """Layer specs of ``version`` fed with ``in_channels`` latent channels."""
    if version not in SYNTHESIS_VERSIONS:
        raise ConfigError(f"unknown synthesis version {version!r}; choose one of {sorted(SYNTHESIS_VERSIONS)}")
    if not (isinstance(out_channels, int) and out_channels >= 1):
        raise ConfigError(f"out_channels must be a positive integer, got {out_channels!r}")
    hidden = [d for d in SYNTHESIS_VERSIONS[version] if d > 0]
    layers = []
    width = in_channels
    for d in hidden:
        layers.append(LayerSpec(width, d, 1, residual=False, relu=True))
        width = d
    layers.append(LayerSpec(width, out_channels, 1, residual=False, relu=False))
    layers.append(LayerSpec(out_channels, out_channels, 3, residual=True, relu=True))
    layers.append(LayerSpec(out_channels, out_channels, 3, residual=True, relu=False))
    return tuple(layers)


def init_layer_weight(spec: LayerSpec, leading: tuple[int, ...] = (),
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Reference init, in conv layout [*leading, out, in, k, k].

    Residual layers start at zero; others are U(-sqrt(kappa), sqrt(kappa)) / out^2 with
    kappa = 1 / (in * k^2) (Cool-chic: PyTorch's default range, shrunk by out^2).
    """
    shape = (*leading, spec.out_channels, spec.in_channels, spec.kernel, spec.kernel)
    if spec.residual:
        return torch.zeros(shape)
    bound = math.sqrt(1.0 / (spec.in_channels * spec.kernel ** 2))
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound / spec.out_channels ** 2


class Synthesis(nn.Module):
    """The synthesis network of one slice: [N, L, H, W] upsampled latents -> [N, out, H, W]."""

    def __init__(self, version: str, out_channels: int = 3, in_channels: int = 6,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.version = version
        self.layers = synthesis_layers(version, in_channels, out_channels)
        self.weights = nn.ParameterList(
            [nn.Parameter(init_layer_weight(s, generator=generator)) for s in self.layers])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(s.out_channels)) for s in self.layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[n, L, H, W] upsampled latents -> [n, out, H, W] images."""
        return synthesis_forward(x, self.layers, list(self.weights), list(self.biases))


def synthesis_forward(x: torch.Tensor, layers: tuple[LayerSpec, ...], weights: list[torch.Tensor],
                      biases: list[torch.Tensor]) -> torch.Tensor:
    """Plain per-slice synthesis with conv-layout weights (the reference twin of the stacked path)."""
    for spec, w, b in zip(layers, weights, biases):
        pad = (spec.kernel - 1) // 2
        padded = F.pad(x, (pad,) * 4, mode="replicate") if pad else x
        y = F.conv2d(padded, w, b)
        if spec.residual:
            y = y + x
        x = torch.relu(y) if spec.relu else y
    return x


class StackedSynthesis(nn.Module):
    """Synthesis networks of S slices with weights stacked on a leading slice dimension.

    The leading 1x1 layers run as batched matmuls over channels-last pixels (ops.pointwise_mlp), the
    kxk layers as per-slice residual convs (ops.residual_conv). Weights are stored in conv layout
    [S, out, in, k, k].
    """

    def __init__(self, num_slices: int, layers: tuple[LayerSpec, ...],
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_pointwise = next(i for i, spec in enumerate(layers) if spec.kernel != 1)
        if any(spec.kernel == 1 or not spec.residual for spec in layers[self.num_pointwise:]) or any(
                spec.residual for spec in layers[:self.num_pointwise]):
            raise ConfigError("stacked synthesis expects plain 1x1 layers followed by residual kxk layers")
        self.layers = layers
        self.weights = nn.ParameterList(
            [nn.Parameter(init_layer_weight(s, (num_slices,), generator)) for s in layers])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(num_slices, s.out_channels)) for s in layers])

    def forward(self, x: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """[S, n, L, H, W] -> [S, n, out, H, W]."""
        s, n, _, h, w = x.shape
        feats = x.permute(0, 1, 3, 4, 2).reshape(s, n * h * w, -1)
        head = self.layers[:self.num_pointwise]
        weights = [self.weights[i].reshape(s, spec.out_channels, spec.in_channels).transpose(1, 2)
                   for i, spec in enumerate(head)]
        # Indexed one by one: a sliced ParameterList re-wraps tensors swapped in by functional_call as
        # new (detached) Parameters.
        feats = ops.pointwise_mlp(feats, weights, [self.biases[i] for i in range(self.num_pointwise)],
                                  [spec.relu for spec in head], backend=backend)
        img = feats.reshape(s, n, h, w, feats.shape[-1]).permute(0, 1, 4, 2, 3)
        for i in range(self.num_pointwise, len(self.layers)):
            img = ops.residual_conv(img, self.weights[i], self.biases[i], self.layers[i].relu, backend=backend)
        return img
