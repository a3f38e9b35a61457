"""CodecConfig: the architecture of one slice codec (latents, ARM, upsampler, synthesis)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ddfast.codec.context import SUPPORTED_CONTEXT_SIZES
from ddfast.codec.synthesis import SYNTHESIS_VERSIONS, LayerSpec, synthesis_layers
from ddfast.errors import ConfigError


@dataclass(frozen=True)
class CodecConfig:
    """Architecture of a slice codec; every slice of a SyntheticSet shares it.

    Defaults follow the spec's CIFAR settings (Table A2): ARM context 16 with 4 residual hidden
    layers, synthesis v4-480, L = 6 latent grids, gain 16, one shared 8x8 upsampling kernel.
    """

    synthesis: str = "v4-480"
    arm_context: int = 16
    arm_depth: int = 4
    n_grids: int = 6
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
        if not (isinstance(self.n_grids, int) and 1 <= self.n_grids <= 12):
            raise ConfigError(f"n_grids must be an integer in [1, 12], got {self.n_grids!r}")
        if not self.gain > 0:
            raise ConfigError(f"gain must be > 0, got {self.gain}")
        k = self.upsample_kernel
        if not (isinstance(k, int) and k >= 4 and k % 4 == 0):
            raise ConfigError(f"upsample_kernel must be a multiple of 4 (4, 8, 12, ...), got {k!r}")

    def synthesis_layers(self, out_channels: int) -> tuple[LayerSpec, ...]:
        """The synthesis layer specs of this config for ``out_channels`` image channels."""
        return synthesis_layers(self.synthesis, self.n_grids, out_channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CodecConfig":
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown CodecConfig fields: {sorted(unknown)}")
        return cls(**values)
