"""The neural codec: latents + quantizer, ARM entropy model, upsampler, synthesis, SyntheticSet."""
from ddfast.codec.config import CodecConfig
from ddfast.codec.context import SUPPORTED_CONTEXT_SIZES, context_offsets, wavefront_shift
from ddfast.codec.layout import SliceLayout, grid_shapes
from ddfast.codec.quantizer import JOINT_QUANTIZER, WARMUP_QUANTIZER, Quantizer, softround
from ddfast.codec.stack import CodecStack, clip_grad_norm_per_slice
from ddfast.codec.synthesis import SYNTHESIS_VERSIONS, StackedSynthesis, Synthesis
from ddfast.codec.synthetic_set import SyntheticSet
from ddfast.codec.warmup import WarmupReport, warm_up

__all__ = [
    "CodecConfig", "CodecStack", "JOINT_QUANTIZER", "Quantizer", "SUPPORTED_CONTEXT_SIZES",
    "SYNTHESIS_VERSIONS", "SliceLayout", "StackedSynthesis", "Synthesis", "SyntheticSet",
    "WARMUP_QUANTIZER", "WarmupReport", "clip_grad_norm_per_slice", "context_offsets", "grid_shapes",
    "softround", "warm_up", "wavefront_shift",
]
