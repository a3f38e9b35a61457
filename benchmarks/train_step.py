"""One codec training step: the batched multi-slice path versus a per-slice loop, same weights.

*step*: forward (quantize with noise, upsample, synthesis) + rate (contexts, ARM, Laplace bits)
+ backward of  sum(images * upstream) + bits / pixels  (the shape of a joint rate-utility step:
the utility gradient arrives from outside as `upstream`); the loop runs the plain per-slice
reference codec (ddfast.codec.reference) slice after slice on views of the same stacked weights.

*joint*: a whole joint rate-utility update, utility U = sum(normalized images * upstream), lr_it
1000, ldb 5, ldb_it 10, per-slice clip 0.1, Adam. Fused: ``JointTrainer.update`` (one forward and
one backward of all slices). Two-pass, the DD-RUO reference's scheme (``TensorPool.get_data`` +
``backward``): decode every slice without gradients, backpropagate U to the images, then re-run
each slice's codec with gradients and the same noise, backpropagate (image gradient x lr_it, rate
gradient), clip and step -- with the per-slice reference codec.

*TensorPool*: the same joint iteration written against ``ddfast.integrations.TensorPool`` (``get_data``,
the utility's backward on the images, ``fill_data_diff``, ``backward(lr_it, ldb_it)``), as a DD-RUO
training loop calls it, against the two-pass reference above.

*GFLOP/s*: the step's floating-point work (``step_flop``: the multiply-adds of the synthesis, the
ARM and the upsampling, 2 FLOP each forward and 4 backward for the input and weight gradients; the
elementwise rate and data movement are not counted) over the batched step's time, and its fraction
of a float32 4096 x 4096 matmul's throughput measured in the same run.

    python benchmarks/train_step.py            # both shapes of issue 2
    python benchmarks/train_step.py --json     # one JSON object on the last line
    python benchmarks/train_step.py --step-only --shape cifar100_100x8_v4-240   # GFLOP/s only
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from ddfast.codec import CodecConfig, SyntheticSet, clip_grad_norm_per_slice
from ddfast.codec.reference import slice_forward
from ddfast.distill.joint import JointTrainer, RateUtility, Stage
from ddfast.integrations import TensorPool

WEIGHTS = RateUtility(lr_it=1000.0, ldb=5.0, stages=(Stage(10 ** 6, 10.0),))

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


def step_flop(syn: SyntheticSet) -> float:
    """FLOP of one training step's nets (forward 2, backward 4 per multiply-add), all slices."""
    stack = syn.stack
    images = syn.layout.num_slices * stack.images_per_slice
    h, w = stack.image_size
    synthesis = sum(spec.in_channels * spec.out_channels * spec.kernel ** 2 for spec in stack.synthesis.layers)
    c, depth = stack.config.arm_context, stack.config.arm_depth
    latents = sum(gh * gw for gh, gw in stack.grid_shapes)
    taps = (stack.upsampling_kernel.shape[-1] // 2 + 1) ** 2
    levels = len(stack.grid_shapes)
    upsampled = sum((levels - 1 - i) * gh * gw for i, (gh, gw) in enumerate(stack.grid_shapes[:-1]))
    macs = images * (h * w * synthesis + latents * (depth * c * c + 2 * c) + upsampled * taps)
    return 6.0 * macs


def matmul_flop_per_s(size: int = 4096, repeats: int = 3) -> float:
    """Throughput of a float32 size x size matmul on the CPU (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * size ** 3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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


def normalize(images: torch.Tensor) -> torch.Tensor:
    return (images - 0.45) / 0.25


class UpstreamUtility:
    """U = sum(images * upstream): the utility's gradient arrives from outside (one update per iteration)."""

    def __init__(self, upstream: torch.Tensor) -> None:
        self.upstream = upstream

    def run_iteration(self, iteration: int, update) -> float:
        return update(lambda images, labels: (images * self.upstream).sum()).loss

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def joint_two_pass(syn: SyntheticSet, optimizer: torch.optim.Optimizer, upstream: torch.Tensor,
                   noise: torch.Tensor) -> None:
    w = WEIGHTS
    rate_weight = w.stages[0].ldb_it * w.ldb
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        quantized = syn.quantized_latents(noise=noise)
        images = torch.cat([slice_forward(syn.stack, s, quantized[s], n)[0]
                            for s, n in enumerate(syn.layout.slice_sizes)])
    leaf = images.requires_grad_(True)
    (normalize(leaf) * upstream).sum().backward()
    quantized = syn.quantized_latents(noise=noise)
    pixels = syn.num_pixels_per_slice
    start = 0
    for s, n in enumerate(syn.layout.slice_sizes):
        slice_images, bits = slice_forward(syn.stack, s, quantized[s], n)
        objective = (slice_images * leaf.grad[start:start + n]).sum() * w.lr_it + rate_weight * bits.sum() / pixels[s]
        objective.backward(retain_graph=s + 1 < syn.num_slices)
        start += n
    clip_grad_norm_per_slice(syn.parameters(), w.max_grad_norm)
    optimizer.step()


def tensor_pool_iteration(pool: TensorPool, upstream: torch.Tensor) -> None:
    """The DD-RUO loop's joint iteration written against the TensorPool adapter (one fused pass)."""
    images, _, _ = pool.get_data()
    (normalize(images) * upstream).sum().backward()
    pool.fill_data_diff()
    pool.backward(WEIGHTS.lr_it, WEIGHTS.stages[0].ldb_it)


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


def compare_references(syn: SyntheticSet, upstream: torch.Tensor, noise: torch.Tensor, batched: float,
                       args: argparse.Namespace) -> dict:
    """The batched step against the per-slice loop, and the joint update three ways (printed and returned)."""
    loop = time_step(loop_step, syn, upstream, noise, args.repeats, args.device)
    trainer = JointTrainer(syn, UpstreamUtility(upstream), WEIGHTS, normalize)
    fused = time_step(lambda s, u, n: trainer.run_iteration(), syn, upstream, noise, args.repeats, args.device)
    optimizer = torch.optim.Adam(syn.parameters(), lr=WEIGHTS.lr)
    two_pass = time_step(lambda s, u, n: joint_two_pass(s, optimizer, u, n), syn, upstream, noise, args.repeats,
                         args.device)
    pool = TensorPool(syn, WEIGHTS.ldb)
    via_pool = time_step(lambda s, u, n: tensor_pool_iteration(pool, u), syn, upstream, noise, args.repeats,
                         args.device)
    print(f"{'':24s} per-slice loop {loop * 1e3:9.1f} ms   speed-up {loop / batched:5.2f}x")
    print(f"{'':24s} joint fused {fused * 1e3:6.1f} ms   two-pass {two_pass * 1e3:9.1f} ms   "
          f"speed-up {two_pass / fused:5.2f}x")
    print(f"{'':24s} TensorPool adapter {via_pool * 1e3:6.1f} ms   vs two-pass: {two_pass / via_pool:5.2f}x")
    return {"loop_s": loop, "speedup": loop / batched, "joint_fused_s": fused, "joint_two_pass_s": two_pass,
            "joint_speedup": two_pass / fused, "tensor_pool_s": via_pool, "tensor_pool_speedup": two_pass / via_pool}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    parser.add_argument("--step-only", action="store_true",
                        help="time the batched step and the matmul only (no per-slice or two-pass references)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}")
    results = {}
    matmul = matmul_flop_per_s() if args.device == "cpu" else None
    if matmul is not None:
        print(f"float32 4096^2 matmul: {matmul / 1e9:.1f} GFLOP/s")
    for name in args.shape or list(SHAPES):
        syn, upstream = build(SHAPES[name], args.device)
        noise = syn.quantizer.sample_noise(syn.stack.latents, torch.Generator(args.device).manual_seed(1))
        batched = time_step(batched_step, syn, upstream, noise, args.repeats, args.device)
        flop = step_flop(syn)
        results[name] = {"batched_s": batched, "step_gflop": flop / 1e9, "step_gflop_per_s": flop / batched / 1e9}
        line = (f"{name:24s} batched {batched * 1e3:9.1f} ms, {flop / 1e9:.1f} GFLOP per step, "
                f"{flop / batched / 1e9:.1f} GFLOP/s")
        if matmul is not None:
            results[name]["matmul_gflop_per_s"] = matmul / 1e9
            results[name]["fraction_of_matmul"] = flop / batched / matmul
            line += f" = {100 * flop / batched / matmul:.1f} % of the matmul's"
        print(line)
        if not args.step_only:
            results[name].update(compare_references(syn, upstream, noise, batched, args))
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
