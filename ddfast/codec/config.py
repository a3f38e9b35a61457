"""CodecConfig: the architecture of one slice codec (latents, ARM, upsampler, synthesis)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ddfast.codec.context import SUPPORTED_CONTEXT_SIZES
from ddfast.codec.synthesis import SYNTHESIS_VERSIONS, LayerSpec, synthesis_layers
from ddfast.errors import ConfigError


MAX_GRIDS = 6


def default_grid_count(image_size: tuple[int, int]) -> int:
    """The reference's number of latent grids: 6, or floor(log2(min(H, W))) + 1 when that is fewer
    (5 at 28 x 28, 6 from 32 x 32 up), so the coarsest grid is never smaller than 1 x 1 by halving."""
    return min(MAX_GRIDS, int(math.log2(min(image_size))) + 1)


@dataclass(frozen=True)
class CodecConfig:
    """Architecture of a slice codec; every slice of a SyntheticSet shares it.

    Defaults follow the CIFAR settings of DD-RUO (Dataset Distillation as Data Compression: A
    Rate-Utility Perspective, ICCV 2025), Table A2: ARM context 16 with 4 residual hidden
    layers, synthesis v4-480, gain 16, one shared 8x8 upsampling kernel, and as many latent grids
    as the reference builds for the image size (``n_grids=None``; see :func:`default_grid_count`),
    fixed by :meth:`for_image_size` when a set is built.
    """

    synthesis: str = "v4-480"
    arm_context: int = 16
    arm_depth: int = 4
    n_grids: int | None = None
    gain: float = 16.0
    upsample_kernel: int = 8

    def __post_init__(self) -> None:
        if self.synthesis not in SYNTHESIS_VERSIONS:
            raise ConfigError(f"unknown synthesis version {self.synthesis!r}; choose one of "
                              f"{sorted(SYNTHESIS_VERSIONS)}")
        if self.arm_context not in SUPPORTED_CONTEXT_SIZES:
            raise ConfigError(f"ARM context size {self.arm_context} is not supported; choose one of "
                              f"{SUPPORTED_CONTEXT_SIZES}")
        if not (isinstance(self.arm_depth, int) and 0 <= self.arm_depth <= 16):
            raise ConfigError(f"arm_depth must be an integer in [0, 16], got {self.arm_depth!r}")
        if self.n_grids is not None and not (isinstance(self.n_grids, int) and 1 <= self.n_grids <= 12):
            raise ConfigError(f"n_grids must be an integer in [1, 12] or None (by image size), got {self.n_grids!r}")
        if not self.gain > 0:
            raise ConfigError(f"gain must be > 0, got {self.gain}")
        k = self.upsample_kernel
        if not (isinstance(k, int) and k >= 4 and k % 4 == 0):
            raise ConfigError(f"upsample_kernel must be a multiple of 4 (4, 8, 12, ...), got {k!r}")

    def for_image_size(self, image_size: tuple[int, int]) -> "CodecConfig":
        """This config with ``n_grids`` fixed: as given, or the reference's count for ``image_size``."""
        return self if self.n_grids is not None else replace(self, n_grids=default_grid_count(image_size))

    def synthesis_layers(self, out_channels: int) -> tuple[LayerSpec, ...]:
        """The synthesis layer specs of this config for ``out_channels`` image channels."""
        if self.n_grids is None:
            raise ConfigError("the grid count is not fixed yet; use config.for_image_size((H, W)) first")
        return synthesis_layers(self.synthesis, self.n_grids, out_channels)

    def to_dict(self) -> dict:
        """The fields as a plain dict (JSON-ready; ``from_dict`` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CodecConfig":
        """A CodecConfig from ``to_dict``'s dict; ConfigError names unknown fields."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown CodecConfig fields: {sorted(unknown)}")
        return cls(**values)
