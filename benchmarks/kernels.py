"""GPU benchmark of ddfast.ops: each Triton kernel against its torch reference, same run.

For training shapes of DD-RUO (Dataset Distillation as Data Compression: A Rate-Utility
Perspective, ICCV 2025), Table A2 (CIFAR-10 spc 64 / 240, ImageNet-128 spc 51 / 102, ten
classes, one slice per class) it times every op forward and forward+backward with both backends,
prints the speed-up and the fraction of the memory bandwidth the Triton kernel achieves (minimal
bytes: inputs read once, outputs written once; the peak is a device-to-device copy measured in the
same run), and then one full joint training step of the codec (CIFAR-10 spc 240, v4-960): forward
+ rate + backward with the Triton ops versus the torch ops.

    python benchmarks/kernels.py [--json] [--quick]
"""
from __future__ import annotations

import argparse
import json

import torch

from ddfast import ops
from ddfast.codec import CodecConfig, SyntheticSet, context_offsets
from ddfast.codec.layout import grid_shapes
from ddfast.codec.upsampler import initial_upsampling_kernel

SHAPES = {
    "cifar10_spc64": dict(spc=64, size=32, context=16, synthesis=(480,)),
    "cifar10_spc240": dict(spc=240, size=32, context=16, synthesis=(960,)),
    "imagenet_spc51": dict(spc=51, size=128, context=32, synthesis=None),
    "imagenet_spc102": dict(spc=102, size=128, context=32, synthesis=None),
}
CLASSES = 10


def timed(fn, repeats: int = 10) -> float:
    """Median milliseconds of fn() on the GPU (after two warm-up calls)."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def copy_bandwidth() -> float:
    """Bytes per second of a large device-to-device copy (read + write)."""
    src = torch.empty(256 * 2 ** 20, device="cuda")
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src))
    return 2 * src.numel() * 4 / (ms / 1e3)


def fwd_bwd(fn, inputs):
    def run():
        for t in inputs:
            t.grad = None
        out = fn()
        out.backward(torch.ones_like(out))
    return run


def op_cases(shape: dict):
    """(name, make(backend) -> callable forward, inputs, minimal bytes) for each op at this shape."""
    shapes = grid_shapes((shape["size"], shape["size"]), 6)
    m = sum(h * w for h, w in shapes)
    n = shape["spc"]
    offsets = context_offsets(shape["context"])
    gen = torch.Generator("cuda").manual_seed(0)
    latents = torch.randn(CLASSES * n, m, device="cuda", generator=gen).round().requires_grad_(True)
    c = len(offsets)
    yield ("gather_context", lambda b: (lambda: ops.gather_context(latents, shapes, offsets, backend=b)),
           [latents], latents.numel() * 4 * (1 + c))
    x = torch.randn(CLASSES, n * m, device="cuda", generator=gen).round().requires_grad_(True)
    mu = torch.randn(CLASSES, n * m, device="cuda", generator=gen).requires_grad_(True)
    s = (torch.randn(CLASSES, n * m, device="cuda", generator=gen) + 2).requires_grad_(True)
    yield ("laplace_rate", lambda b: (lambda: ops.laplace_rate(x, mu, s, backend=b)), [x, mu, s], x.numel() * 16)
    grid_latents = latents.detach().reshape(CLASSES, n, m).clone().requires_grad_(True)
    kernel = initial_upsampling_kernel(8).to("cuda").expand(CLASSES, 8, 8).clone().requires_grad_(True)
    out_elems = CLASSES * n * 6 * shape["size"] ** 2
    yield ("upsample_pyramid", lambda b: (lambda: ops.upsample_pyramid(grid_latents, shapes, kernel, backend=b)),
           [grid_latents, kernel], (grid_latents.numel() + out_elems) * 4)
    if shape["synthesis"]:
        width = shape["synthesis"][0]
        pixels = n * shape["size"] ** 2
        feats = torch.randn(CLASSES, pixels, 6, device="cuda", generator=gen).requires_grad_(True)
        w1 = (torch.randn(CLASSES, 6, width, device="cuda", generator=gen) * 0.1).requires_grad_(True)
        b1 = torch.zeros(CLASSES, width, device="cuda", requires_grad=True)
        w2 = (torch.randn(CLASSES, width, 3, device="cuda", generator=gen) * 0.1).requires_grad_(True)
        b2 = torch.zeros(CLASSES, 3, device="cuda", requires_grad=True)
        yield ("pointwise_mlp", lambda b: (lambda: ops.pointwise_mlp(feats, [w1, w2], [b1, b2], [True, False],
                                                                     backend=b)),
               [feats, w1, b1, w2, b2], feats.numel() * 4 + CLASSES * pixels * 3 * 4)


def joint_step(backend: str, spc: int) -> float:
    cfg = CodecConfig(synthesis="v4-960", arm_context=16, arm_depth=4)
    syn = SyntheticSet(spc, 32, num_classes=CLASSES, channels=3, config=cfg, backend=backend).cuda().train()
    upstream = torch.randn(CLASSES * spc, 3, 32, 32, device="cuda")
    noise = syn.quantizer.sample_noise(syn.stack.latents, torch.Generator("cuda").manual_seed(0))

    def step():
        syn.zero_grad(set_to_none=True)
        images, _, bits = syn.forward_with_rate(noise=noise)
        ((images * upstream).sum() + (bits / syn.num_pixels_per_slice).sum()).backward()

    return timed(step, repeats=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print all figures as JSON on the last line")
    parser.add_argument("--quick", action="store_true", help="CIFAR-10 shapes only")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/kernels.py needs a CUDA GPU")
    peak = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  copy bandwidth {peak / 1e12:.2f} TB/s")
    results = {"device": torch.cuda.get_device_name(), "copy_TBps": peak / 1e12, "ops": {}}
    names = [k for k in SHAPES if not args.quick or k.startswith("cifar")]
    print(f"{'shape':17s}{'op':18s}{'pass':>9s}{'torch ms':>10s}{'triton ms':>11s}{'speed-up':>10s}{'BW %':>7s}")
    for shape_name in names:
        for op_name, make, inputs, nbytes in op_cases(SHAPES[shape_name]):
            for mode in ("fwd", "fwd+bwd"):
                row = {}
                for backend in ("torch", "triton"):
                    fn = make(backend)
                    row[backend] = timed(fn if mode == "fwd" else fwd_bwd(fn, inputs))
                speedup = row["torch"] / row["triton"]
                bw = nbytes / (row["triton"] / 1e3) / peak if mode == "fwd" else None
                results["ops"][f"{shape_name}/{op_name}/{mode}"] = dict(row, speedup=speedup, bandwidth_fraction=bw)
                bw_text = f"{100 * bw:7.1f}" if bw is not None else "      -"
                print(f"{shape_name:17s}{op_name:18s}{mode:>9s}{row['torch']:>10.3f}{row['triton']:>11.3f}"
                      f"{speedup:>9.2f}x{bw_text}")
            torch.cuda.empty_cache()
    step = {}
    for backend in ("torch", "triton"):
        step[backend] = joint_step(backend, 240)
        torch.cuda.empty_cache()  # the first set is gone before the second is built
    step["speedup"] = step["torch"] / step["triton"]
    results["joint_step_cifar10_spc240_v4-960"] = step
    print(f"joint training step, CIFAR-10 spc 240, v4-960: torch {step['torch']:.1f} ms, "
          f"triton {step['triton']:.1f} ms, speed-up {step['speedup']:.2f}x")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
