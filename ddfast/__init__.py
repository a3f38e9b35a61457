"""ddfast: distilled datasets stored as neural-codec files (DD-RUO), with fast decoding."""
from ddfast.codec import CodecConfig, Quantizer, Synthesis, SyntheticSet
from ddfast.coding import QuantizedSet, compress, decompress, inspect, post_quantize
from ddfast.errors import BitstreamError, ConfigError, DatasetError, DDFastError
from ddfast.eval import evaluate, get_network

__version__ = "0.1.0"

__all__ = [
    "BitstreamError", "CodecConfig", "ConfigError", "DatasetError", "DDFastError", "QuantizedSet", "Quantizer",
    "Synthesis", "SyntheticSet", "__version__", "compress", "decompress", "evaluate", "get_network", "inspect",
    "post_quantize",
]
