"""One codec training step: the batched multi-slice path versus a per-slice loop, same weights.

A step is forward (quantize with noise, upsample, synthesis) + rate (contexts, ARM, Laplace bits)
+ backward of  sum(images * upstream) + bits / pixels  (the shape of a joint rate-utility step:
the utility gradient arrives from outside as `upstream`). The loop runs the plain per-slice
reference codec (ddfast.codec.reference) slice after slice on views of the same stacked weights.

    python benchmarks/train_step.py            # both shapes of issue 2
    python benchmarks/train_step.py --json     # one JSON object on the last line
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.codec.reference import slice_forward

SHAPES = {
    "cifar10_10x64_v4-480": dict(classes=10, spc=64, size=32, synthesis="v4-480"),
    "cifar100_100x8_v4-240": dict(classes=100, spc=8, size=32, synthesis="v4-240"),
}


def build(shape: dict, device: str) -> tuple[SyntheticSet, torch.Tensor]:
    config = CodecConfig(synthesis=shape["synthesis"], arm_context=16, arm_depth=4)
    syn = SyntheticSet(shape["spc"], shape["size"], num_classes=shape["classes"], channels=3,
                       config=config, generator=torch.Generator().manual_seed(0)).to(device).train()
    upstream = torch.randn(shape["classes"] * shape["spc"], 3, shape["size"], shape["size"], device=device)
    return syn, upstream


def batched_step(syn: SyntheticSet, upstream: torch.Tensor, noise: torch.Tensor) -> None:
    images, _, bits = syn.forward_with_rate(noise=noise)
    loss = (images * upstream).sum() + (bits / syn.num_pixels_per_slice).sum()
    loss.backward()


def loop_step(syn: SyntheticSet, upstream: torch.Tensor, noise: torch.Tensor) -> None:
    quantized = syn.quantized_latents(noise=noise)
    pixels = syn.num_pixels_per_slice
    start = 0
    for i, size in enumerate(syn.layout.slice_sizes):
        images, bits = slice_forward(syn.stack, i, quantized[i], size)
        loss = (images * upstream[start:start + size]).sum() + bits.sum() / pixels[i]
        loss.backward(retain_graph=i + 1 < syn.num_slices)
        start += size


def time_step(step, syn, upstream, noise, repeats: int, device: str) -> float:
    def once() -> float:
        syn.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(syn, upstream, noise)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    once()  # warm-up
    return statistics.median(once() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}")
    results = {}
    for name in args.shape or list(SHAPES):
        syn, upstream = build(SHAPES[name], args.device)
        noise = syn.quantizer.sample_noise(syn.stack.latents, torch.Generator(args.device).manual_seed(1))
        batched = time_step(batched_step, syn, upstream, noise, args.repeats, args.device)
        loop = time_step(loop_step, syn, upstream, noise, args.repeats, args.device)
        results[name] = {"batched_s": batched, "loop_s": loop, "speedup": loop / batched}
        print(f"{name:24s} batched {batched * 1e3:9.1f} ms   per-slice loop {loop * 1e3:9.1f} ms   "
              f"speed-up {loop / batched:5.2f}x")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
