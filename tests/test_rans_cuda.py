"""CUDA backend: the sources (rANS lanes, latent decoder) compile with nvcc; on a GPU, CPU and CUDA give identical words."""
from __future__ import annotations

import numpy as np
import pytest

import ddfast.rans as rans
from ddfast.errors import BitstreamError
from ddfast.rans import _cuda
from test_rans_helpers import laplace_data, random_lane_sizes


def test_cuda_sources_compile_for_sm90(tmp_path):
    nvcc = _cuda.find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (no CUDA toolkit): cannot check that the CUDA sources compile")
    out = tmp_path / "libddfast_cuda.so"
    proc = _cuda.run_nvcc(_cuda.nvcc_command(nvcc, "sm_90", out))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


def _gpu_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "no CUDA device"


gpu = pytest.mark.skipif(_gpu_reason() is not None, reason=f"needs a CUDA GPU ({_gpu_reason()})")


def _cuda_tensors(*arrays):
    import torch

    return [torch.from_numpy(np.ascontiguousarray(a)).cuda() for a in arrays]


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("lo,hi,lanes,max_size", [(-255, 255, 3000, 300), (-(2**15), 2**15, 200, 2000)])
def test_cpu_and_cuda_words_are_identical(lo, hi, lanes, max_size):
    sizes = np.append(random_lane_sizes(lanes, max_size, seed=50), 100_000)
    sym, mu_q, ls_q, _, _ = laplace_data(int(sizes.sum()), lo, hi, seed=51, mu_sd=3.0 if hi < 1000 else 5000.0)
    cpu = rans.encode(sym, mu_q, ls_q, lo, hi, sizes, backend="cpp")
    gpu_streams = rans.encode(*_cuda_tensors(sym, mu_q, ls_q), lo, hi, sizes)  # auto -> cuda
    np.testing.assert_array_equal(gpu_streams.lane_words, cpu.lane_words)
    np.testing.assert_array_equal(gpu_streams.words, cpu.words)
    mu_t, ls_t = _cuda_tensors(mu_q, ls_q)
    out = rans.decode(cpu, mu_t, ls_t, lo, hi, sizes)
    assert out.is_cuda
    np.testing.assert_array_equal(out.cpu().numpy(), sym)


@pytest.mark.gpu
@gpu
def test_cuda_incremental_decoder_matches():
    import torch

    sizes = random_lane_sizes(500, 200, seed=52)
    sym, mu_q, ls_q, _, _ = laplace_data(int(sizes.sum()), -255, 255, seed=53)
    streams = rans.encode(sym, mu_q, ls_q, -255, 255, sizes)
    decoder = rans.IncrementalDecoder(streams, -255, 255, device="cuda")
    assert decoder.backend == "cuda"
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    out = np.zeros_like(sym)
    for t in range(int(sizes.max())):
        ids = np.flatnonzero(sizes > t)
        idx = offsets[ids] + t
        got = decoder.decode_step(torch.from_numpy(ids).cuda(), *_cuda_tensors(mu_q[idx], ls_q[idx]))
        out[idx] = got.cpu().numpy()
    np.testing.assert_array_equal(out, sym)
    decoder.finish()
    with pytest.raises(ValueError, match="outside"):
        decoder.decode_step(torch.tensor([len(sizes)], device="cuda"), *_cuda_tensors(mu_q[:1], ls_q[:1]))


@pytest.mark.gpu
@gpu
def test_cuda_errors():
    sym, mu_q, ls_q, _, _ = laplace_data(2000, -255, 255, seed=54)
    bad = sym.copy()
    bad[7] = 300
    with pytest.raises(ValueError, match="symbol 300 at index 7 is outside"):
        rans.encode(*_cuda_tensors(bad, mu_q, ls_q), -255, 255)
    words = rans.encode(sym, mu_q, ls_q, -255, 255).words
    mu_t, ls_t = _cuda_tensors(mu_q, ls_q)
    with pytest.raises(BitstreamError, match="rANS lane 0"):
        rans.decode(rans.RansStreams.from_lanes([words[:-1]]), mu_t, ls_t, -255, 255)
    with pytest.raises(BitstreamError, match="last word is 0"):
        rans.decode(rans.RansStreams.from_lanes([np.append(words, np.uint32(0))]), mu_t, ls_t, -255, 255)
