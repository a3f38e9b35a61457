"""Every boundary raises a ddfast.errors type that is also the built-in a caller would catch.

A representative sample per boundary (rANS encode/decode, .ddf files, configs, data, the
pipeline), plus a source scan that keeps built-in exceptions out of ``ddfast/rans``.
"""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

import numpy as np
import pytest
import torch

import ddfast
from ddfast import errors, ops, rans
from ddfast.coding import decode, encode, quantize_at
from ddfast.data import load
from ddfast.device import resolve_device
from ddfast.errors import ArgumentTypeError, BackendError, BitstreamError, ConfigError, DatasetError, DDFastError
from coding_helpers import FINE_STEPS, random_set

RANS_DIR = Path(rans.__file__).parent
LO, HI = -8, 8


def _raises(kind: type, builtin: type, fn, match: str):
    """Call fn; assert it raises `kind` (a DDFastError) that is also `builtin`, with `match` in its text."""
    with pytest.raises(builtin, match=match) as info:
        fn()
    assert isinstance(info.value, DDFastError)
    assert type(info.value) is kind, f"{type(info.value).__name__} raised, {kind.__name__} expected"
    return info.value


@pytest.fixture(scope="module")
def coded():
    """(streams, symbols, mu_q, logscale_q) of one 40-symbol lane."""
    rng = np.random.default_rng(0)
    sym = rng.integers(-3, 4, 40).astype(np.int32)
    mu = np.zeros(40, np.int32)
    ls = np.full(40, 256, np.int32)  # scale e
    return rans.encode(sym, mu, ls, LO, HI), sym, mu, ls


@pytest.fixture(scope="module")
def ddf_file() -> bytes:
    return encode(quantize_at(random_set([1, 1], (8, 8), channels=1, context=8, depth=1, seed=0), FINE_STEPS), 64)


def test_every_error_type_is_a_ddfast_error_and_a_builtin():
    types = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)]
    assert {t.__name__ for t in types} == {"DDFastError", "ConfigError", "ArgumentTypeError", "DatasetError",
                                           "BitstreamError", "BackendError"}
    for t in types:
        assert issubclass(t, DDFastError)
        if t is not DDFastError:
            assert any(b is not Exception and issubclass(t, b) for b in vars(builtins).values()
                       if isinstance(b, type) and issubclass(b, Exception)), t
        assert getattr(ddfast, t.__name__) is t
    assert issubclass(ArgumentTypeError, ConfigError) and issubclass(ArgumentTypeError, TypeError)


@pytest.mark.parametrize("backend", ["cpp", "constriction"])
def test_rans_encode_bad_arguments(backend):
    sym, zeros = np.array([0, 9], np.int32), np.zeros(2, np.int32)
    _raises(ConfigError, ValueError, lambda: rans.encode(sym, zeros, zeros, LO, HI, backend=backend),
            r"symbol 9 at index 1 is outside the support \[-8, 8\]")
    _raises(ConfigError, ValueError, lambda: rans.encode(sym, zeros[:1], zeros, LO, HI, backend=backend),
            "array lengths differ: symbols=2, mu_q=1, logscale_q=2")
    _raises(ConfigError, ValueError, lambda: rans.encode(sym * 0, zeros, zeros, LO, HI, [1, 2], backend=backend),
            "lane_sizes adds up to 3, but there are 2 symbols")
    _raises(ConfigError, ValueError, lambda: rans.encode(sym.astype(float), zeros, zeros, LO, HI, backend=backend),
            "symbols must hold integers, got dtype float64")
    _raises(ConfigError, ValueError, lambda: rans.encode([[0], [0, 1]], zeros, zeros, LO, HI, backend=backend),
            "symbols is not an array")
    _raises(ArgumentTypeError, TypeError, lambda: rans.encode(sym, zeros, zeros, 0.5, HI, backend=backend),
            "lo and hi must be integers")
    _raises(ConfigError, ValueError, lambda: rans.encode(sym, zeros, zeros, HI, LO, backend=backend),
            "empty support: lo=8 > hi=-8")
    _raises(ConfigError, ValueError, lambda: rans.encode(sym, zeros, zeros, LO, HI, backend="gpu"),
            "unknown rANS backend 'gpu'")


@pytest.mark.skipif(rans.cuda_available(), reason="the CUDA backend runs here")
def test_rans_unavailable_cuda_backend_is_a_backend_error():
    zeros = np.zeros(1, np.int32)
    _raises(BackendError, RuntimeError, lambda: rans.encode(zeros, zeros, zeros, LO, HI, backend="cuda"),
            "the cuda rANS backend is unavailable")


def test_rans_decode_damaged_streams(coded):
    streams, sym, mu, ls = coded
    assert np.array_equal(rans.decode(streams, mu, ls, LO, HI), sym)
    flipped = streams.words.copy()
    flipped[-1] ^= np.uint32(0x00F0_0000)
    _raises(BitstreamError, ValueError, lambda: rans.decode(flipped, mu, ls, LO, HI), "rANS lane 0: ")
    _raises(BitstreamError, ValueError, lambda: rans.decode(streams.words[:-1], mu, ls, LO, HI), "rANS lane 0: ")
    zero_last = np.append(streams.words, np.uint32(0))
    _raises(BitstreamError, ValueError, lambda: rans.IncrementalDecoder(zero_last, LO, HI),
            "its last word is 0")
    for backend in ("cpp", "constriction"):
        _raises(BitstreamError, ValueError, lambda: rans.decode(streams, mu[:-3], ls[:-3], LO, HI, backend=backend),
                "rANS lane 0: ")


def test_rans_decode_bad_arguments(coded):
    streams, _, mu, ls = coded
    _raises(ConfigError, ValueError, lambda: rans.decode(streams, mu, ls, LO, HI, [20, 20]),
            "lane_sizes has 2 lanes, the streams have 1")
    _raises(ConfigError, ValueError, lambda: rans.decode(streams.words.astype(np.int64), mu, ls, LO, HI),
            "streams must be a RansStreams or a one-dimensional uint32 word array")
    _raises(ConfigError, ValueError, lambda: rans.decode(streams, mu, ls, LO, HI, floor=2, backend="constriction"),
            "codes the leaky model")


def test_rans_streams_bytes_and_lanes(coded):
    streams = coded[0]
    data = streams.to_bytes()
    _raises(BitstreamError, ValueError, lambda: rans.RansStreams.from_bytes(data[:-1]), "rANS payload holds")
    _raises(BitstreamError, ValueError, lambda: rans.RansStreams.from_bytes(b"\x05\x01"),
            "rANS lane table claims 5 lanes in 2 bytes")
    _raises(ArgumentTypeError, TypeError, lambda: rans.RansStreams.from_bytes("abc"), "rANS streams are bytes, got str")
    _raises(ConfigError, ValueError, lambda: rans.RansStreams(streams.words, np.array([3], np.int64)),
            f"lane_words adds up to 3, but there are {streams.words.size} words")
    _raises(ConfigError, ValueError, lambda: streams.lane(1), r"lane index must be an integer in \[0, 1\), got 1")
    _raises(ArgumentTypeError, TypeError, lambda: streams.lane("0"), "lane index must be an integer")


@pytest.mark.parametrize("backend", ["cpp", "constriction"])
def test_rans_incremental_bad_steps(coded, backend):
    _, sym, mu, ls = coded
    words = rans.encode(sym, mu, ls, LO, HI, backend=backend).words  # constriction's float model differs
    two = rans.RansStreams.from_lanes([words, words])
    dec = rans.IncrementalDecoder(two, LO, HI, backend=backend)
    one = np.zeros(1, np.int32)
    _raises(ConfigError, ValueError, lambda: dec.decode_step(np.array([2]), one, one), "lane id")
    _raises(ConfigError, ValueError, lambda: dec.decode_step(np.array([1, 1]), mu[:2], ls[:2]), "twice in one step")
    _raises(ConfigError, ValueError, lambda: dec.decode_step(np.array([0]), mu[:2], ls[:2]),
            "lane_ids, mu_q and logscale_q must have the same length")
    # nothing was decoded by the refused steps: both lanes still decode to the symbols
    out = [dec.decode_step(np.array([0, 1]), mu[i:i + 1].repeat(2), ls[i:i + 1].repeat(2)) for i in range(len(sym))]
    assert np.array_equal(np.stack(out)[:, 0], sym) and np.array_equal(np.stack(out)[:, 1], sym)
    dec.finish()


def test_rans_params_and_model_bad_arguments():
    _raises(ConfigError, ValueError, lambda: rans.quantize_params(np.nan, 1.0), "mu must be finite")
    _raises(ConfigError, ValueError, lambda: rans.quantize_params(0.0, -1.0), "scale must be finite and > 0")
    _raises(ConfigError, ValueError, lambda: rans.quantize_params("a", 1.0), "mu is not an array of float64")
    _raises(ConfigError, ValueError, lambda: rans.quantize_params([0.0, 1.0], [1.0, 1.0, 1.0]),
            r"mu and scale must broadcast together, got shapes \(2,\) and \(3,\)")
    _raises(ConfigError, ValueError, lambda: rans.ideal_bits([0], 0.0, 0.0, LO, HI), "scale finite and > 0")
    big = np.zeros(2 ** 12, np.int32)  # the C++ glue refuses a table of 2^12 x 2^19 entries
    _raises(ConfigError, ValueError, lambda: rans.laplace_cdf_table(big, big, -(2 ** 18), 2 ** 18), "too large")


def test_ddf_files(ddf_file):
    assert decode(ddf_file).class_ids == (0, 1)
    _raises(BitstreamError, ValueError, lambda: ddfast.decompress(b"garbage"), "not a .ddf file")
    _raises(BitstreamError, ValueError, lambda: ddfast.inspect(b""), "not a .ddf file")
    damaged = bytearray(ddf_file)
    damaged[len(damaged) // 2] ^= 0x40
    _raises(BitstreamError, ValueError, lambda: ddfast.decompress(bytes(damaged)), "CRC")
    _raises(BitstreamError, ValueError, lambda: ddfast.decompress(ddf_file[:-5]), "truncated file")
    _raises(ConfigError, ValueError, lambda: ddfast.decompress("garbage"), "a .ddf file is bytes, got str")
    _raises(ConfigError, ValueError, lambda: ddfast.decompress(ddf_file, classes=[5]), r"classes must be distinct ids")
    _raises(ConfigError, ValueError, lambda: ddfast.decompress(ddf_file, device="tpu:0"), "device")


def test_compress_bad_arguments():
    syn = random_set([1], (8, 8), channels=1, context=8, depth=1, seed=1)
    _raises(ArgumentTypeError, TypeError, lambda: ddfast.compress(5), "expected a ddfast.SyntheticSet, got int")
    _raises(ArgumentTypeError, TypeError, lambda: ddfast.post_quantize("set"), "expected a ddfast.SyntheticSet, got str")
    _raises(ConfigError, ValueError, lambda: ddfast.compress(syn, mse_threshold=-1.0), "mse_threshold must be")
    _raises(ConfigError, ValueError, lambda: ddfast.compress(syn, lane_symbols=0), "lane_symbols must be")


def test_config_data_and_pipeline_errors(tmp_path):
    _raises(ConfigError, ValueError, lambda: ddfast.CodecConfig(synthesis="v9"), "unknown synthesis version 'v9'")
    _raises(ConfigError, ValueError, lambda: ddfast.CodecConfig(arm_context=7), "ARM context size 7")
    _raises(ConfigError, ValueError, lambda: resolve_device("tpu"), "unknown device 'tpu'")
    _raises(ConfigError, ValueError, lambda: ops.laplace_rate(torch.zeros(2), torch.zeros(2), torch.zeros(2),
                                                              backend="gpu"), "unknown ops backend 'gpu'")
    _raises(ConfigError, ValueError, lambda: load("mnist-9"), "unknown dataset 'mnist-9'")
    _raises(DatasetError, OSError, lambda: load("cifar10", root=tmp_path / "none"), "does not exist")
    _raises(ArgumentTypeError, TypeError, lambda: load("cifar10", root=123), "root must be a folder path")
    _raises(ConfigError, ValueError, lambda: ddfast.distill("no-such-preset", tmp_path / "run"), "unknown preset")
    _raises(ArgumentTypeError, TypeError, lambda: ddfast.distill("bundled-dm-tiny", 123),
            "out and experts must be folder paths")
    assert not (tmp_path / "run").exists()


def _builtin_raises(path: Path) -> list[str]:
    """'file:line Name' for every `raise Name(...)` / `raise Name` of a built-in exception."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = target.id if isinstance(target, ast.Name) else None
            if isinstance(getattr(builtins, name or "", None), type) and issubclass(getattr(builtins, name),
                                                                                BaseException):
                found.append((node.lineno, f"{path.name}:{node.lineno} {name}"))
    return [hit for _, hit in sorted(found)]


def test_rans_raises_no_builtin_exceptions():
    files = sorted(RANS_DIR.glob("*.py"))
    assert len(files) >= 9
    found = [hit for path in files for hit in _builtin_raises(path)]
    assert found == [], "ddfast/rans raises built-in exceptions; use ddfast.errors types:\n" + "\n".join(found)


def test_source_scan_sees_builtin_raises(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f(x):\n    if x:\n        raise ValueError('a')\n    raise RuntimeError\n"
                     "def g():\n    raise ConfigError('b')\n")
    assert _builtin_raises(probe) == ["probe.py:3 ValueError", "probe.py:4 RuntimeError"]
