"""ddfast's CUDA library: csrc/*.cu (the rANS lanes and the .ddf latent decoder), compiled with
nvcc on first use and driven with ctypes.

The shared library is cached under ``$DDFAST_CACHE_DIR`` (default ``~/.cache/ddfast``) in a folder
named by a hash of the sources, flags and target architecture, so it is rebuilt only when one of
them changes. Sources come from the installed package data (``ddfast/rans/_csrc``) or, in an
editable checkout, from ``csrc/``. Tensors are torch CUDA tensors; every kernel runs on the current
stream of the tensors' device. A missing toolkit, a failed build or a CUDA error raises
BackendError (a RuntimeError); bad arguments raise ConfigError.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ddfast.errors import BackendError, ConfigError
from ddfast.rans._arrays import check_symbols, lane_sizes_array
from ddfast.rans.streams import RansStreams

KERNELS = ("rans_cuda_kernels.cu", "latent_cuda_kernels.cu")
HEADERS = ("rans_cuda.h", "rans_coder.h", "laplace_model.h", "laplace_inverse.h", "laplace_tables.h",
           "latent_cuda.h", "latent_coder.h")
NVCC_FLAGS = ("-O3", "-std=c++17", "--fmad=false", "-Xcompiler", "-fPIC")


def source_dir() -> Path:
    """Folder holding the CUDA sources: the package data, else the repository's csrc/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_csrc", here.parents[1] / "csrc"):
        if all((candidate / name).is_file() for name in (*KERNELS, *HEADERS)):
            return candidate
    raise BackendError(
        "the CUDA sources are missing (expected ddfast/rans/_csrc or csrc/ next to the package); "
        "reinstall ddfast")


def find_nvcc() -> str | None:
    """Path of nvcc from $CUDA_HOME / $CUDA_PATH, PATH or /usr/local/cuda, or None."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.is_file() else None


def nvcc_command(nvcc: str, arch: str, output: Path) -> list[str]:
    """The nvcc command line building every kernel file for `arch` (e.g. "sm_90") into the shared library `output`."""
    src = source_dir()
    return [nvcc, *NVCC_FLAGS, f"-arch={arch}", "-I", str(src), "-shared", *(str(src / name) for name in KERNELS),
            "-o", str(output)]


def run_nvcc(command: list[str]) -> subprocess.CompletedProcess:
    """Run an nvcc command line without inherited LD_PRELOAD (e.g. a sanitizer runtime)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return subprocess.run(command, capture_output=True, text=True, env=env)


def unavailable_reason() -> str | None:
    """Why the CUDA backend cannot run here, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    if find_nvcc() is None:
        return "nvcc (the CUDA toolkit) was not found; set CUDA_HOME"
    return None


def available() -> bool:
    """True when CUDA tensors can be coded here (torch with a GPU, and nvcc)."""
    return unavailable_reason() is None


def _build(arch: str) -> Path:
    nvcc = find_nvcc()
    if nvcc is None:
        raise BackendError("nvcc (the CUDA toolkit) was not found; set CUDA_HOME")
    src = source_dir()
    digest = hashlib.sha256(" ".join((arch, *NVCC_FLAGS)).encode())
    for name in (*KERNELS, *HEADERS):
        digest.update((src / name).read_bytes())
    cache = Path(os.environ.get("DDFAST_CACHE_DIR", Path.home() / ".cache" / "ddfast"))
    target = cache / "cuda" / digest.hexdigest()[:16] / "libddfast_cuda.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"ddfast: compiling the CUDA module for {arch} (first use only)...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        proc = run_nvcc(nvcc_command(nvcc, arch, partial))
        if proc.returncode != 0:
            raise BackendError(f"nvcc failed to build the CUDA module:\n{proc.stderr[-4000:]}")
        os.replace(partial, target)
    return target


@functools.lru_cache(maxsize=None)
def _library(arch: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(_build(arch)))
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
    signatures = {
        "ddf_rans_cuda_encode": [p, p, p, p, i64, i64, i64, p, p, p],
        "ddf_rans_cuda_compact": [p, p, p, i64, p, p],
        "ddf_rans_cuda_decode": [p, p, p, p, p, i64, i64, i64, p, p, p],
        "ddf_rans_cuda_start": [p, p, i64, p, p, p, p],
        "ddf_rans_cuda_step": [p, p, i64, p, p, p, p, i64, p, p, i64, i64, p, p],
        "ddf_latent_cuda_decode": [p, p, p, i64, p, i64, p, p, i32, p, i32, p, i32, i32, p, i64, p, p, p, p, p,
                                   p, p, p],
    }
    for name, args in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = ctypes.c_int
    lib.ddf_rans_cuda_error_string.argtypes = [ctypes.c_int]
    lib.ddf_rans_cuda_error_string.restype = ctypes.c_char_p
    return lib


def launch(device: Any, name: str, *args: Any) -> None:
    """Launch a kernel through the C interface on `device`'s current stream (BackendError on a CUDA error)."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    lib = _library(f"sm_{major}{minor}")
    with torch.cuda.device(device):
        code = getattr(lib, name)(*args, torch.cuda.current_stream(device).cuda_stream)
    if code != 0:
        raise BackendError(f"{name}: {lib.ddf_rans_cuda_error_string(code).decode()}")


def _ptr(t: Any) -> int:
    return t.data_ptr()


def device_of(*tensors: Any) -> Any:
    """The CUDA device of the first CUDA tensor among the arguments (else the current one)."""
    import torch

    for t in tensors:
        if hasattr(t, "device") and getattr(t.device, "type", None) == "cuda":
            return t.device
    return torch.device("cuda", torch.cuda.current_device())


def int_tensor(x: Any, name: str, device: Any, dtype: Any = None) -> Any:
    """A contiguous one-dimensional int32 (or `dtype`) tensor on `device`; ConfigError otherwise."""
    import torch

    dtype = dtype or torch.int32
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        if t.numel() == 0:
            return torch.zeros(0, dtype=dtype, device=device)
        raise ConfigError(f"{name} must hold integers, got dtype {t.dtype}")
    t = t.to(device)
    if t.dtype != dtype:
        info = torch.iinfo(dtype)
        if t.numel() and (int(t.min()) < info.min or int(t.max()) > info.max):
            raise ConfigError(f"{name} has values outside the {dtype} range")
        t = t.to(dtype)
    return t.contiguous()


def _offsets(counts: Any) -> Any:
    import torch

    off = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, 0, out=off[1:])
    return off


def encode(symbols: Any, mu_q: Any, logscale_q: Any, lo: int, hi: int, lane_sizes: Any) -> RansStreams:
    """Encode on the GPU (one thread per lane); the words come back to host memory."""
    import torch

    dev = device_of(symbols, mu_q, logscale_q)
    sym = int_tensor(symbols, "symbols", dev)
    mu = int_tensor(mu_q, "mu_q", dev)
    ls = int_tensor(logscale_q, "logscale_q", dev)
    if not (len(sym) == len(mu) == len(ls)):
        raise ConfigError(f"array lengths differ: symbols={len(sym)}, mu_q={len(mu)}, logscale_q={len(ls)}")
    sizes = torch.as_tensor(lane_sizes_array(_host(lane_sizes), len(sym)), device=dev)
    bad = (sym < lo) | (sym > hi)
    if bool(bad.any()):
        check_symbols(sym.cpu().numpy(), lo, hi)
    n_lanes = sizes.numel()
    lane_off = _offsets(sizes)
    scratch = torch.empty(len(sym) + 2 * n_lanes, dtype=torch.int32, device=dev)
    counts = torch.empty(n_lanes, dtype=torch.int64, device=dev)
    launch(dev, "ddf_rans_cuda_encode", _ptr(sym), _ptr(mu), _ptr(ls), _ptr(lane_off), n_lanes, lo, hi,
          _ptr(scratch), _ptr(counts))
    word_off = _offsets(counts)
    out = torch.empty(int(word_off[-1]), dtype=torch.int32, device=dev)
    launch(dev, "ddf_rans_cuda_compact", _ptr(scratch), _ptr(lane_off), _ptr(word_off), n_lanes, _ptr(out))
    return RansStreams(out.cpu().numpy().view(np.uint32), counts.cpu().numpy())


def _host(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def _words_on(streams: RansStreams, dev: Any) -> tuple[Any, Any]:
    import torch

    words = torch.from_numpy(streams.words.view(np.int32)).to(dev)
    return words, torch.from_numpy(streams.offsets).to(dev)


def decode(streams: RansStreams, mu_q: Any, logscale_q: Any, lo: int, hi: int,
           lane_sizes: Any) -> tuple[Any, np.ndarray]:
    """Decode on the GPU; returns (symbols int32 CUDA tensor, per-lane end status)."""
    import torch

    dev = device_of(mu_q, logscale_q)
    mu = int_tensor(mu_q, "mu_q", dev)
    ls = int_tensor(logscale_q, "logscale_q", dev)
    if len(mu) != len(ls):
        raise ConfigError(f"array lengths differ: mu_q={len(mu)}, logscale_q={len(ls)}")
    sizes = lane_sizes_array(_host(lane_sizes), len(mu))
    if len(sizes) != streams.num_lanes:
        raise ConfigError(f"lane_sizes has {len(sizes)} lanes, the streams have {streams.num_lanes}")
    words, word_off = _words_on(streams, dev)
    lane_off = _offsets(torch.from_numpy(sizes).to(dev))
    out = torch.empty(len(mu), dtype=torch.int32, device=dev)
    status = torch.empty(streams.num_lanes, dtype=torch.uint8, device=dev)
    launch(dev, "ddf_rans_cuda_decode", _ptr(words), _ptr(word_off), _ptr(lane_off), _ptr(mu), _ptr(ls),
          streams.num_lanes, lo, hi, _ptr(out), _ptr(status))
    return out, status.cpu().numpy()


class LaneDecoder:
    """GPU lane states of an incremental decoder (same methods as ddfast._cpu.RansLaneDecoder)."""

    def __init__(self, streams: RansStreams, lo: int, hi: int, device: Any) -> None:
        import torch

        self._dev = torch.device(device)
        self._lo, self._hi = lo, hi
        self.num_lanes = streams.num_lanes
        self._words, self._word_off = _words_on(streams, self._dev)
        self._state = torch.empty(self.num_lanes, dtype=torch.int64, device=self._dev)
        self._pos = torch.empty(self.num_lanes, dtype=torch.int64, device=self._dev)
        self._status = torch.empty(self.num_lanes, dtype=torch.uint8, device=self._dev)
        launch(self._dev, "ddf_rans_cuda_start", _ptr(self._words), _ptr(self._word_off), self.num_lanes,
              _ptr(self._state), _ptr(self._pos), _ptr(self._status))

    def step(self, lane_ids: Any, mu_q: Any, logscale_q: Any, validate: bool = True) -> Any:
        """Decode one symbol per given lane; returns an int32 CUDA tensor."""
        import torch

        ids = int_tensor(lane_ids, "lane_ids", self._dev, torch.int64)
        mu = int_tensor(mu_q, "mu_q", self._dev)
        ls = int_tensor(logscale_q, "logscale_q", self._dev)
        if not (len(ids) == len(mu) == len(ls)):
            raise ConfigError("lane_ids, mu_q and logscale_q must have the same length")
        if validate and len(ids):
            bad = (ids < 0) | (ids >= self.num_lanes)
            if bool(bad.any()):
                i = int(torch.argmax(bad.to(torch.uint8)))
                raise ConfigError(f"lane id {int(ids[i])} at index {i} is outside [0, {self.num_lanes})")
            if torch.unique(ids).numel() != len(ids):
                raise ConfigError("a lane id appears twice in one step")
        out = torch.empty(len(ids), dtype=torch.int32, device=self._dev)
        launch(self._dev, "ddf_rans_cuda_step", _ptr(self._words), _ptr(self._word_off), self.num_lanes,
              _ptr(self._state), _ptr(self._pos), _ptr(self._status), _ptr(ids), len(ids), _ptr(mu), _ptr(ls),
              self._lo, self._hi, _ptr(out))
        return out

    def status(self) -> np.ndarray:
        return self._status.cpu().numpy()

    def end_status(self) -> np.ndarray:
        from ddfast.rans import _status

        status = self._status.cpu().numpy().copy()
        pos = self._pos.cpu().numpy()
        state = self._state.cpu().numpy()
        ok = status == _status.OK
        status[ok & (pos != 0)] = _status.UNREAD_WORDS
        status[ok & (pos == 0) & (state != 0)] = _status.NONZERO_STATE
        return status

    def remaining_words(self) -> np.ndarray:
        return self._pos.cpu().numpy()
