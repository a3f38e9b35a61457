"""ddfast: distilled datasets stored as neural-codec files (DD-RUO), with fast decoding.

The main entry points are re-exported here (``ddfast.SyntheticSet``, ``ddfast.compress``,
``ddfast.decompress``, ``ddfast.distill``, ``ddfast.evaluate``, ...), and a bare ``import ddfast``
reaches the subpackages: ``ddfast.data.load("bundled")``, ``ddfast.codec``, ``ddfast.coding``,
``ddfast.distill``, ``ddfast.eval``, ``ddfast.ops``, ``ddfast.rans``, ``ddfast.report``,
``ddfast.labels``. ``ddfast.integrations`` (adapters for other distillation code) and
``ddfast.cli`` load when imported themselves; none of these imports matplotlib or Triton.
"""
import types as _types

# The subpackages, as attributes of ddfast (``x as x``: re-exported on purpose).
from ddfast import codec as codec
from ddfast import coding as coding
from ddfast import data as data
from ddfast import distill as _distill_package
from ddfast import eval as eval  # not in __all__, so that a star import keeps the builtin eval
from ddfast import labels as labels
from ddfast import ops as ops
from ddfast import rans as rans
from ddfast import report as report
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
