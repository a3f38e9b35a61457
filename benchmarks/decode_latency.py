"""Decode latency of .ddf files (bytes -> images) for the configurations of DD-RUO's Table A7.

DD-RUO: Dataset Distillation as Data Compression: A Rate-Utility Perspective (ICCV 2025). Each
configuration (codec settings of DD-RUO Table A2) becomes a real .ddf file whose latents are
drawn from the ARM, not fitted to images: the SyntheticSet is built (seeded); its ARM output
weights are shrunk, so the mean depends gently on the context, and its log-scale output bias is set
so that the Laplace scale b = exp(s - 4) is about 0.33 at a zero context (about 1 bit per latent; a
fitted CIFAR codec measured about 1.1); the set is quantized at fixed steps (``quantize_at``) and
its latents are sampled from the integer ARM by running the native wavefront decoder on uniformly
random words (support [-16, 15]); the file is checked to decode to them. Synthesis weights keep
their initialization: decode time does not depend on their values. The latents' coded bits per
latent of every file are reported.

Per configuration, after one warm-up decode, each stage runs --repeat times (median and min):
total ``ddfast.decompress(data, device)``; entropy decoding ``ddfast.coding.decode`` (parse,
weights, latents); synthesis (``QuantizedSet.to_synthetic_set`` + the eval forward). On a GPU the
A100 80 GB figures of DD-RUO Table A7 are printed beside ours (ratio A100 / ours); on the CPU the
plain reference decoder (``ddfast.coding.reference.decompress_reference``) is timed once on the
--reference configurations, its images checked against ours, and the ratio reference / ours
printed. --set benchmarks a saved, fitted SyntheticSet instead: ``ddfast.compress`` time (the
post-quantization search included), then the same decode figures.

    python benchmarks/decode_latency.py                      # every configuration, CUDA if present
    python benchmarks/decode_latency.py --configs cifar10-spc64 imagenet-spc1 --repeat 1
    python benchmarks/decode_latency.py --device cuda --repeat 10 --json
    python benchmarks/decode_latency.py --set fitted.pt      # a SyntheticSet saved by SyntheticSet.save

--json prints every figure as one JSON object on the last line.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ddfast
from ddfast import _cpu
from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.coding import DEFAULT_LANE_SYMBOLS, QuantizedSet, decode, encode, quantize_at
from ddfast.coding.lanes import Geometry, lane_plan
from ddfast.coding.reference import decompress_reference
from ddfast.device import resolve_device
from ddfast.errors import ConfigError

SEED = 0
# Step exponents (weights, biases) per module; ARM biases at 2^-14, since 2^-16 holds only |b| < 1.
STEPS = {"arm": (8, 14), "synthesis": (12, 12), "upsampling": (12, 0)}
OUT_WEIGHT_SCALE = 0.25   # ARM output weights N(0, 1) / 4 at init -> N(0, 1) / 16
LOG_SCALE_BIAS = 2.9      # s at a zero context: b = exp(s - 4) = 0.33, about 1 bit per latent
# Support the latents are drawn with (the file keeps their actual range). The latents' model gives
# every symbol of the support a frequency of at least 2^-16, so a wider one draws more outliers
# (fitted sets span about [-8, 8]).
DRAW_SUPPORT = (-16, 15)
WORDS_PER_SYMBOL = 0.75   # random words per symbol of a lane (plus 2), so no lane runs dry
IMAGE_TOLERANCE = 2 / 65535
METHOD = (f"latents drawn from the integer ARM (output weights x{OUT_WEIGHT_SCALE}, b = exp(s - 4) = "
          f"{np.exp(LOG_SCALE_BIAS - 4):.2f} at a zero context, support {list(DRAW_SUPPORT)}) by decoding random "
          f"words; synthesis weights at their initialization; steps {STEPS}; {DEFAULT_LANE_SYMBOLS} symbols per lane")


@dataclass(frozen=True)
class Setting:
    """One row of DD-RUO Table A7 with its codec settings (DD-RUO Table A2)."""

    classes: int
    spc: int
    size: int
    synthesis: str
    context: int
    depth: int
    slice_size: int
    a100_ms: float            # Table A7: average synthetic dataset generation time, A100 80 GB
    a100_ms_per_image: float


CONFIGS = {
    "cifar10-spc64": Setting(10, 64, 32, "v4-480", 16, 4, 64, 55.30, 0.09),
    "cifar10-spc240": Setting(10, 240, 32, "v4-960", 16, 4, 240, 105.04, 0.04),
    "cifar10-spc718": Setting(10, 718, 32, "v4-1200", 16, 4, 360, 318.57, 0.04),
    "cifar100-spc48": Setting(100, 48, 32, "v4-240", 16, 4, 48, 677.13, 0.14),
    "cifar100-spc120": Setting(100, 120, 32, "v4-960", 16, 4, 120, 706.31, 0.06),
    "imagenet-spc1": Setting(10, 1, 128, "v4-40", 16, 2, 1, 51.95, 5.19),
    "imagenet-spc8": Setting(10, 8, 128, "v4-160", 16, 2, 8, 52.32, 0.65),
    "imagenet-spc15": Setting(10, 15, 128, "v4-240", 16, 2, 15, 60.58, 0.40),
    "imagenet-spc51": Setting(10, 51, 128, "v5-240", 32, 4, 51, 161.51, 0.32),
    "imagenet-spc102": Setting(10, 102, 128, "v5-240", 32, 4, 102, 295.87, 0.29),
}
CPU_REFERENCE = ("cifar10-spc64", "imagenet-spc1")


def machine(device: torch.device) -> dict[str, Any]:
    """CPU model, threads, torch version and, on CUDA, the GPU and which latent decoder runs there."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    facts = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
             "torch": torch.__version__, "ddfast": ddfast.__version__, "device": str(device)}
    if device.type == "cuda":
        from ddfast.rans import _cuda

        reason = _cuda.unavailable_reason()
        facts["gpu"] = torch.cuda.get_device_name(device)
        facts["latent_decoder"] = "CUDA kernel" if reason is None else f"CPU fallback ({reason})"
    return facts


def draw_latents(qset: QuantizedSet, rng: np.random.Generator) -> torch.Tensor:
    """Latents [S, n_max, M] sampled from the set's integer ARM: the native decoder run on random words."""
    geometry, layout = qset.geometry, qset.layout
    plan = lane_plan(geometry, layout.slice_sizes, DEFAULT_LANE_SYMBOLS)
    row_start = np.concatenate(([0], np.cumsum(geometry.row_widths)))
    images = np.repeat(plan.units[:, 2], plan.units[:, 4])  # lanes are listed unit by unit
    lane_symbols = images * (row_start[plan.lanes[:, 1]] - row_start[plan.lanes[:, 0]])
    lane_words = (WORDS_PER_SYMBOL * lane_symbols).astype(np.int64) + 2
    words = rng.integers(1, 2 ** 32, size=int(lane_words.sum()), dtype=np.uint32)
    weights, biases = qset.fixed_point_arm()
    grids, offsets = geometry.arrays()
    support = np.tile(np.array(DRAW_SUPPORT, dtype=np.int32), (layout.num_slices, 1))
    latents, _ = _cpu.latent_decode(words, lane_words, weights, biases, qset.config.arm_depth, grids, offsets,
                                    geometry.shift, plan.units, plan.lanes, support, layout.num_slices,
                                    layout.max_slice_size)
    return torch.where(layout.valid_mask().unsqueeze(-1), torch.from_numpy(latents), 0)


def build(setting: Setting) -> bytes:
    """The .ddf file of a configuration, its latents drawn from the ARM (checked to decode back)."""
    config = CodecConfig(synthesis=setting.synthesis, arm_context=setting.context, arm_depth=setting.depth)
    syn = SyntheticSet(setting.spc, setting.size, num_classes=setting.classes, channels=3, config=config,
                       slice_size=setting.slice_size, generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        syn.stack.arm.out_w.mul_(OUT_WEIGHT_SCALE)
        syn.stack.arm.out_b[:, 1] = LOG_SCALE_BIAS
    qset = quantize_at(syn, STEPS)
    qset.latents = draw_latents(qset, np.random.default_rng(SEED))
    data = encode(qset)
    assert torch.equal(decode(data).latents, qset.latents), "the file does not decode to the drawn latents"
    return data


def clock(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of ``fn``, the device synchronized before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(data: bytes, device: torch.device, repeat: int) -> dict[str, float]:
    """Median and min ms of the total decode, entropy decoding and synthesis, after one warm-up decode."""
    qset = decode(data, device)

    def synthesize() -> None:
        syn = qset.to_synthetic_set(device)
        with torch.no_grad():
            syn()

    stages = {"total": lambda: ddfast.decompress(data, device), "entropy": lambda: decode(data, device),
              "synthesis": synthesize}
    ddfast.decompress(data, device)
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(repeat):
        for name, fn in stages.items():
            times[name].append(clock(fn, device))
    figures = {}
    for name, seconds in times.items():
        figures[f"{name}_ms"] = statistics.median(seconds) * 1e3
        figures[f"{name}_min_ms"] = min(seconds) * 1e3
    return figures


def file_figures(data: bytes) -> dict[str, Any]:
    """Images, classes, file size and the coded bits per latent of a file."""
    info = ddfast.inspect(data, estimate=False)
    images = sum(info.images_per_class)
    latents = images * Geometry.of(info.image_size, info.config["n_grids"], info.config["arm_context"]).image_latents
    return {"classes": info.num_classes, "images": images, "file_bytes": info.total_bytes,
            "kb_per_class": info.total_bytes / info.num_classes / 1000,
            "bits_per_latent": 8 * info.bytes["latents"] / latents}


def reference_figures(data: bytes, device: torch.device, total_ms: float) -> dict[str, float]:
    """Time the plain reference decoder once; check its images against ours."""
    start = time.perf_counter()
    ref_images, ref_labels = decompress_reference(data)
    seconds = time.perf_counter() - start
    images, labels = ddfast.decompress(data, device)
    assert torch.equal(labels.cpu(), ref_labels), "reference labels differ"
    difference = float((images.cpu() - ref_images).abs().max())
    assert difference <= IMAGE_TOLERANCE, f"reference images differ by {difference}"
    return {"reference_ms": seconds * 1e3, "reference_ratio": seconds * 1e3 / total_ms,
            "reference_max_abs_diff": difference}


def row(name: str, r: dict[str, Any], file_s: float) -> str:
    """One line of the table (``file_s``: seconds to make the file)."""
    line = (f"{name:17s} {r['images']:6d} {r['file_bytes'] / 1000:9.1f} {r['kb_per_class']:8.2f} "
            f"{r['bits_per_latent']:6.3f} {file_s:7.2f} {r['total_ms']:10.2f} {r['total_min_ms']:9.2f} "
            f"{r['ms_per_image']:8.3f} {r['entropy_ms']:10.2f} {r['synthesis_ms']:10.2f}")
    if "a100_ms" in r:
        line += f" {r['a100_ms']:8.2f} {r['a100_ms_per_image']:11.2f} {r['a100_ratio']:9.2f}"
    return line


def header(a100: bool) -> str:
    """The table's column names (with the A100 columns of DD-RUO Table A7 when ``a100``)."""
    line = (f"{'configuration':17s} {'images':>6s} {'file kB':>9s} {'kB/cls':>8s} {'bits':>6s} {'file s':>7s} "
            f"{'total ms':>10s} {'min ms':>9s} {'ms/img':>8s} {'entropy ms':>10s} {'synth ms':>10s}")
    if a100:
        line += f" {'A100 ms':>8s} {'A100 ms/img':>11s} {'A100/ours':>9s}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), metavar="NAME",
                        help=f"configurations to run (default: all): {', '.join(CONFIGS)}")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each stage (median and min reported)")
    parser.add_argument("--reference", nargs="*", choices=list(CONFIGS), metavar="NAME",
                        help=f"configurations to also decode with the plain reference decoder (default: "
                             f"{' '.join(CPU_REFERENCE)} or the --set on the CPU, none on CUDA; the flag alone: none)")
    parser.add_argument("--set", type=Path, help="benchmark this saved SyntheticSet instead of the configurations")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        device = resolve_device(args.device)
        syn = SyntheticSet.load(args.set) if args.set is not None else None
    except ConfigError as err:
        parser.error(str(err))
    cuda = device.type == "cuda"
    reference = args.reference if args.reference is not None else ([] if cuda else list(CPU_REFERENCE))
    if syn is not None:
        method = f"{args.set}, a saved SyntheticSet, written by ddfast.compress (post-quantization search included)"
        makers = {f"set:{args.set.name}": lambda: ddfast.compress(syn)}
        if args.reference is None and not cuda:
            reference = list(makers)
    else:
        method = METHOD
        makers = {name: functools.partial(build, CONFIGS[name]) for name in args.configs}

    facts = machine(device)
    print("machine: " + ", ".join(f"{key} {value}" for key, value in facts.items()))
    print(f"method: {method}")
    print(f"timing: median and min of {args.repeat} after one warm-up decode; file s: seconds to "
          f"{'compress the set' if syn is not None else 'build the file'}")
    print(header(cuda and syn is None), flush=True)
    results: dict[str, dict[str, Any]] = {}
    for name, make in makers.items():
        start = time.perf_counter()
        data = make()
        file_s = time.perf_counter() - start
        r: dict[str, Any] = {"compress_s" if syn is not None else "build_s": file_s, **file_figures(data),
                             **measure(data, device, args.repeat)}
        r["ms_per_image"] = r["total_ms"] / r["images"]
        if cuda and name in CONFIGS:
            setting = CONFIGS[name]
            r.update(a100_ms=setting.a100_ms, a100_ms_per_image=setting.a100_ms_per_image,
                     a100_ratio=setting.a100_ms / r["total_ms"])
        print(row(name, r, file_s), flush=True)
        if name in reference:
            r.update(reference_figures(data, device, r["total_ms"]))
            print(f"  reference decoder: {r['reference_ms']:.0f} ms, ratio = reference / ours = "
                  f"{r['reference_ratio']:.1f}x; images agree (max |diff| {r['reference_max_abs_diff']:.2g})",
                  flush=True)
        results[name] = r
    if args.json:
        print(json.dumps({"machine": facts, "method": method, "repeat": args.repeat, "results": results}))


if __name__ == "__main__":
    main()
