"""ddfast: distilled datasets stored as neural-codec files (DD-RUO), with fast decoding."""
import types as _types

from ddfast import distill as _distill_package
from ddfast.codec import CodecConfig, Quantizer, Synthesis, SyntheticSet
from ddfast.coding import QuantizedSet, compress, decompress, inspect, post_quantize
from ddfast.errors import ArgumentTypeError, BackendError, BitstreamError, ConfigError, DatasetError, DDFastError
from ddfast.eval import evaluate, get_network
from ddfast.pipeline import RunSummary
from ddfast.pipeline import distill as _distill_run

__version__ = "0.1.0"


class _DistillPackage(_types.ModuleType):
    """``ddfast.distill`` is the distillation package and, called, the whole DD-RUO run:
    ``ddfast.distill("fashion-mnist-dm-2kb", out="runs/dm2")`` (see ``ddfast.pipeline.distill``)."""

    def __call__(self, *args, **kwargs) -> RunSummary:
        return _distill_run(*args, **kwargs)


_distill_package.__class__ = _DistillPackage

__all__ = [
    "ArgumentTypeError", "BackendError", "BitstreamError", "CodecConfig", "ConfigError", "DatasetError",
    "DDFastError", "QuantizedSet", "Quantizer", "RunSummary", "Synthesis", "SyntheticSet", "__version__", "compress",
    "decompress", "evaluate", "get_network", "inspect", "post_quantize",
]
