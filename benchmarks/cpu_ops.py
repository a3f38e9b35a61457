"""CPU benchmark of ddfast.ops: each native C++ op against its torch twin, same run, same inputs.

At the CIFAR-10 training shape (10 slices x 64 images, 32 x 32, ARM C = 16 depth 4, v4-480) it times
every op forward and forward+backward with ``backend="cpu"`` and ``backend="torch"`` (median of
``--repeats``) and prints the speed-up: the benchmark row of each native op (docs/adding-an-op.md).

    python benchmarks/cpu_ops.py [--repeats 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ddfast import ops
from ddfast.codec import context_offsets
from ddfast.codec.layout import grid_shapes
from ddfast.codec.upsampler import initial_upsampling_kernel

SLICES, IMAGES, SIZE, WIDTH = 10, 64, 32, 480


def _leaf(*shape: int, scale: float = 1.0, gen: torch.Generator) -> torch.Tensor:
    return (torch.randn(*shape, generator=gen) * scale).requires_grad_(True)


def op_cases():
    """(name, make(backend) -> forward callable, inputs needing gradients) for each op."""
    gen = torch.Generator().manual_seed(0)
    grids = grid_shapes((SIZE, SIZE), 6)
    m = sum(h * w for h, w in grids)
    offsets = context_offsets(16)
    latents = (torch.randn(SLICES, IMAGES, m, generator=gen) * 3).requires_grad_(True)
    noise = torch.rand(SLICES, IMAGES, m, generator=gen) - 0.5
    yield "noisy_softround", lambda b: (lambda: ops.noisy_softround(latents, noise, 0.3, backend=b)), [latents]
    arm_w = [_leaf(SLICES, 16, 16, scale=0.25, gen=gen) for _ in range(4)] + [_leaf(SLICES, 16, 2, scale=0.25, gen=gen)]
    arm_b = [_leaf(SLICES, w.shape[-1], scale=0.1, gen=gen) for w in arm_w]
    rounded = latents.detach().round().requires_grad_(True)
    yield ("latent_rate", lambda b: (lambda: ops.latent_rate(rounded, grids, offsets, arm_w, arm_b, backend=b)),
           [rounded, *arm_w, *arm_b])
    x = rounded.detach().reshape(SLICES, -1).requires_grad_(True)
    mu, s = _leaf(SLICES, IMAGES * m, gen=gen), _leaf(SLICES, IMAGES * m, gen=gen)
    yield "laplace_rate", lambda b: (lambda: ops.laplace_rate(x, mu, s, backend=b)), [x, mu, s]
    kernel = initial_upsampling_kernel(8).expand(SLICES, 8, 8).clone().requires_grad_(True)
    yield ("upsample_pyramid", lambda b: (lambda: ops.upsample_pyramid(latents, grids, kernel, backend=b)),
           [latents, kernel])
    feats = _leaf(SLICES, IMAGES * SIZE * SIZE, 6, gen=gen)
    w1, w2 = _leaf(SLICES, 6, WIDTH, scale=0.1, gen=gen), _leaf(SLICES, WIDTH, 3, scale=0.1, gen=gen)
    b1, b2 = _leaf(SLICES, WIDTH, scale=0.1, gen=gen), _leaf(SLICES, 3, scale=0.1, gen=gen)
    yield ("pointwise_mlp", lambda b: (lambda: ops.pointwise_mlp(feats, [w1, w2], [b1, b2], [True, False], backend=b)),
           [feats, w1, b1, w2, b2])
    images = _leaf(SLICES, IMAGES, 3, SIZE, SIZE, gen=gen)
    cw, cb = _leaf(SLICES, 3, 3, 3, 3, scale=0.2, gen=gen), _leaf(SLICES, 3, scale=0.1, gen=gen)
    yield "residual_conv", lambda b: (lambda: ops.residual_conv(images, cw, cb, True, backend=b)), [images, cw, cb]


def timed(fn, repeats: int) -> float:
    """Median milliseconds of fn() after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def fwd_bwd(fn, inputs):
    def run():
        for t in inputs:
            t.grad = None
        out = fn()
        out.backward(torch.ones_like(out))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print all figures as JSON on the last line")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {SLICES} x {IMAGES} images, {SIZE} x {SIZE}")
    print(f"{'op':18s}{'pass':>9s}{'torch ms':>10s}{'cpu ms':>9s}{'speed-up':>10s}")
    results = {}
    for name, make, inputs in op_cases():
        for mode in ("fwd", "fwd+bwd"):
            row = {}
            for backend in ("torch", "cpu"):
                fn = make(backend)
                row[backend] = timed(fn if mode == "fwd" else fwd_bwd(fn, inputs), args.repeats)
            row["speedup"] = row["torch"] / row["cpu"]
            results[f"{name}/{mode}"] = row
            print(f"{name:18s}{mode:>9s}{row['torch']:>10.1f}{row['cpu']:>9.1f}{row['speedup']:>9.2f}x")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
