"""ddfast.coding: the .ddf file -- post-quantization, integer ARM, weight and latent coding, container.

``compress(syn) -> bytes`` post-quantizes a SyntheticSet and writes its file;
``decompress(data, device=...) -> (images, labels)`` decodes one on the CPU or a GPU (with the
file's soft labels, if any, as ``.soft_labels``; ``compress(syn, soft_labels=(probs, eps))``);
``inspect(data)`` itemizes a file. Lower-level steps: ``post_quantize`` (-> QuantizedSet),
``encode`` / ``decode`` (QuantizedSet <-> bytes).
"""
from ddfast.coding.decoder import Decompressed, decode, decompress
from ddfast.coding.encoder import compress, encode
from ddfast.coding.inspect import FileInfo, SliceInfo, inspect
from ddfast.coding.lanes import DEFAULT_LANE_SYMBOLS
from ddfast.coding.postquant import (
    DEFAULT_MSE_THRESHOLD,
    MSE_THRESHOLDS,
    QuantizationReport,
    post_quantize,
    quantize_at,
)
from ddfast.coding.quantized import QuantizedSet

__all__ = [
    "DEFAULT_LANE_SYMBOLS", "DEFAULT_MSE_THRESHOLD", "Decompressed", "FileInfo", "MSE_THRESHOLDS", "QuantizationReport",
    "QuantizedSet", "SliceInfo", "compress", "decode", "decompress", "encode", "inspect", "post_quantize", "quantize_at",
]
