"""rANS throughput: ddfast's integer-model coder against constriction's QuantizedLaplace, one core.

Data (fixed seed): N symbols with per-symbol Laplace parameters, mu ~ N(0, 3^2), scale
log-uniform in [0.11, 20], symbols round(mu + b * Laplace(0, 1)) clipped to [-255, 255].
ddfast codes one lane with the Q.8 parameters; constriction codes one AnsCoder stream with the
float parameters. Each coder's encode (fresh coder, one call, words read back) and decode (one
call over all symbols, round trip asserted) is timed as the best of --repeats runs, alternating
between the coders. Sizes are compared with the ideal -sum log2 p under the float Laplace.

    python benchmarks/rans_throughput.py [--n 1000000] [--repeats 7] [--json] [--cuda]

--json prints the figures as one JSON object on the last line; --cuda also times the CUDA
backend (many lanes, absolute GPU figures) where a GPU is present. The same measurements run
under pytest-benchmark: ``pytest benchmarks/rans_throughput.py``.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import time
from typing import Any, Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core (read when the OpenMP runtime starts)

import numpy as np  # noqa: E402

import ddfast.rans as rans  # noqa: E402

LO, HI = -255, 255


@functools.lru_cache(maxsize=None)
def make_data(n: int = 1_000_000, seed: int = 2024) -> dict[str, np.ndarray]:
    """The benchmark's symbols and parameters (float and Q.8)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 3.0, n)
    scale = np.exp(rng.uniform(np.log(0.11), np.log(20.0), n))
    sym = np.clip(np.round(mu + scale * rng.laplace(size=n)), LO, HI).astype(np.int32)
    mu_q, ls_q = rans.quantize_params(mu, scale)
    return {"sym": sym, "mu": mu, "scale": scale, "mu_q": mu_q, "ls_q": ls_q}


def ddfast_encode(d: dict[str, np.ndarray]) -> rans.RansStreams:
    return rans.encode(d["sym"], d["mu_q"], d["ls_q"], LO, HI, backend="cpp")


def ddfast_decode(d: dict[str, np.ndarray], streams: rans.RansStreams) -> np.ndarray:
    return rans.decode(streams, d["mu_q"], d["ls_q"], LO, HI, backend="cpp")


def constriction_encode(d: dict[str, np.ndarray]) -> np.ndarray:
    import constriction

    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(d["sym"], constriction.stream.model.QuantizedLaplace(LO, HI), d["mu"], d["scale"])
    return coder.get_compressed()


def constriction_decode(d: dict[str, np.ndarray], words: np.ndarray) -> np.ndarray:
    import constriction

    coder = constriction.stream.stack.AnsCoder(words)
    return coder.decode(constriction.stream.model.QuantizedLaplace(LO, HI), d["mu"], d["scale"])


def best_times(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best wall-clock time of each function, the functions run in turn `repeats` times."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def cpu_figures(n: int, repeats: int) -> dict[str, Any]:
    """Encode/decode Msym/s of both coders, speedups and sizes against the ideal."""
    d = make_data(n)
    ours = ddfast_encode(d)
    theirs = constriction_encode(d)
    assert np.array_equal(ddfast_decode(d, ours), d["sym"])
    assert np.array_equal(constriction_decode(d, theirs), d["sym"])
    t = best_times({
        "ddfast_encode": lambda: ddfast_encode(d),
        "constriction_encode": lambda: constriction_encode(d),
        "ddfast_decode": lambda: ddfast_decode(d, ours),
        "constriction_decode": lambda: constriction_decode(d, theirs),
    }, repeats)
    ideal = rans.ideal_bits(d["sym"], d["mu"], d["scale"], LO, HI)
    ours_bits, theirs_bits = ours.num_bits, 32 * len(theirs)
    return {
        "n_symbols": n,
        "ddfast_encode_msym_s": n / t["ddfast_encode"] / 1e6,
        "ddfast_decode_msym_s": n / t["ddfast_decode"] / 1e6,
        "constriction_encode_msym_s": n / t["constriction_encode"] / 1e6,
        "constriction_decode_msym_s": n / t["constriction_decode"] / 1e6,
        "encode_speedup": t["constriction_encode"] / t["ddfast_encode"],
        "decode_speedup": t["constriction_decode"] / t["ddfast_decode"],
        "ideal_bits": ideal,
        "ddfast_bits": ours_bits,
        "constriction_bits": theirs_bits,
        "overhead_pct": 100.0 * (ours_bits / ideal - 1.0),
        "constriction_overhead_pct": 100.0 * (theirs_bits / ideal - 1.0),
    }


def cuda_figures(n: int, lanes: int, repeats: int) -> dict[str, Any]:
    """CUDA encode/decode Msym/s over `lanes` lanes (absolute, GPU), with the CPU words checked."""
    import torch

    d = make_data(n)
    sizes = np.full(lanes, n // lanes)
    sizes[: n % lanes] += 1
    sym, mu_q, ls_q = (torch.from_numpy(d[k]).cuda() for k in ("sym", "mu_q", "ls_q"))
    streams = rans.encode(sym, mu_q, ls_q, LO, HI, sizes, backend="cuda")
    cpu = rans.encode(d["sym"], d["mu_q"], d["ls_q"], LO, HI, sizes, backend="cpp")
    assert np.array_equal(streams.words, cpu.words), "CPU and CUDA words differ"

    def enc() -> None:
        rans.encode(sym, mu_q, ls_q, LO, HI, sizes, backend="cuda")
        torch.cuda.synchronize()

    def dec() -> None:
        rans.decode(streams, mu_q, ls_q, LO, HI, sizes, backend="cuda")
        torch.cuda.synchronize()

    t = best_times({"encode": enc, "decode": dec}, repeats)
    return {
        "cuda_device": torch.cuda.get_device_name(),
        "cuda_lanes": lanes,
        "cuda_encode_msym_s": n / t["encode"] / 1e6,
        "cuda_decode_msym_s": n / t["decode"] / 1e6,
        "cuda_lane_overhead_pct": 100.0 * (streams.num_bits / ddfast_encode(d).num_bits - 1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of symbols")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per coder (best counts)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    parser.add_argument("--cuda", action="store_true", help="also time the CUDA backend")
    parser.add_argument("--cuda-lanes", type=int, default=16384, help="lanes for the CUDA figures")
    args = parser.parse_args()

    fig = cpu_figures(args.n, args.repeats)
    print(f"{args.n} symbols, support [{LO}, {HI}], one core (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")
    print(f"encode: ddfast {fig['ddfast_encode_msym_s']:.1f} Msym/s, constriction "
          f"{fig['constriction_encode_msym_s']:.1f} Msym/s -> {fig['encode_speedup']:.2f}x")
    print(f"decode: ddfast {fig['ddfast_decode_msym_s']:.1f} Msym/s, constriction "
          f"{fig['constriction_decode_msym_s']:.1f} Msym/s -> {fig['decode_speedup']:.2f}x")
    print(f"size: ideal {fig['ideal_bits']:.0f} bits; ddfast {fig['ddfast_bits']} (+{fig['overhead_pct']:.4f} %), "
          f"constriction {fig['constriction_bits']} (+{fig['constriction_overhead_pct']:.4f} %)")
    if args.cuda:
        if rans.cuda_available():
            fig.update(cuda_figures(args.n, args.cuda_lanes, args.repeats))
            print(f"cuda ({fig['cuda_device']}, {args.cuda_lanes} lanes): encode {fig['cuda_encode_msym_s']:.1f} "
                  f"Msym/s, decode {fig['cuda_decode_msym_s']:.1f} Msym/s; lane overhead "
                  f"+{fig['cuda_lane_overhead_pct']:.2f} % vs one lane")
        else:
            print("cuda: unavailable here")
    if args.json:
        print(json.dumps(fig))


# --- pytest-benchmark entry points (run: pytest benchmarks/rans_throughput.py) ---------------------

def test_ddfast_encode(benchmark):
    d = make_data()
    benchmark(ddfast_encode, d)


def test_ddfast_decode(benchmark):
    d = make_data()
    streams = ddfast_encode(d)
    out = benchmark(ddfast_decode, d, streams)
    assert np.array_equal(out, d["sym"])


def test_constriction_encode(benchmark):
    d = make_data()
    benchmark(constriction_encode, d)


def test_constriction_decode(benchmark):
    d = make_data()
    words = constriction_encode(d)
    benchmark(constriction_decode, d, words)


if __name__ == "__main__":
    main()
