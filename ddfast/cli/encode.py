"""``ddfast encode``: post-quantize a saved SyntheticSet and write it as a .ddf file.

The input is a set written by ``SyntheticSet.save`` (a run folder's ``distilled.pt`` is one). Its
metadata's ``normalization`` and ``syn_lr``, when present, go into the file's header. The summary
gives the file's size and where its bytes go, the largest MSE between each slice's quantized and
float decode, and the latents' real bits (integer ARM) against the float ARM's estimate.
"""
from __future__ import annotations

import argparse
import time

from ddfast.cli._common import (
    bits_difference,
    check_distinct,
    check_input_file,
    check_output_path,
)
from ddfast.codec import SyntheticSet
from ddfast.coding import (
    DEFAULT_LANE_SYMBOLS,
    DEFAULT_MSE_THRESHOLD,
    QuantizationReport,
    encode,
    inspect,
    post_quantize,
)
from ddfast.coding.encoder import (
    check_lane_symbols,
    check_normalization,
    check_syn_lr,
)
from ddfast.coding.postquant import SEARCHES
from ddfast.coding.quantized import RAW
from ddfast.device import resolve_device
from ddfast.fileio import atomic_write_bytes


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast encode``."""
    p = subparsers.add_parser("encode", help="post-quantize a saved SyntheticSet and write its .ddf file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("synthetic", help="saved SyntheticSet (.pt, e.g. a run folder's distilled.pt)")
    p.add_argument("-o", "--output", required=True, help="the .ddf file to write")
    p.add_argument("--mse-threshold", type=float, default=DEFAULT_MSE_THRESHOLD,
                   help=f"largest MSE per slice between quantized and float decode (default {DEFAULT_MSE_THRESHOLD:g})")
    p.add_argument("--lane-symbols", type=int, default=DEFAULT_LANE_SYMBOLS,
                   help=f"symbols per rANS lane (default {DEFAULT_LANE_SYMBOLS})")
    p.add_argument("--search", choices=SEARCHES, default="fast", help="step search (default fast)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    """Encode, write the file atomically and print its summary."""
    device = resolve_device(args.device)
    source = check_input_file(args.synthetic, "synthetic set")
    target = check_output_path(args.output, "output")
    check_distinct({"the synthetic set": args.synthetic, "the output": args.output})
    lane_symbols = check_lane_symbols(args.lane_symbols)
    start = time.perf_counter()
    syn = SyntheticSet.load(source, device=device)
    normalization = check_normalization(syn.metadata.get("normalization"), syn.channels)
    syn_lr = check_syn_lr(syn.metadata.get("syn_lr"))
    qset = post_quantize(syn, args.mse_threshold, search=args.search, progress=not args.quiet)
    qset.normalization, qset.syn_lr = normalization, syn_lr
    data = encode(qset, lane_symbols)
    atomic_write_bytes(target, data)
    elapsed = time.perf_counter() - start
    _print_summary(args, syn, qset.report, data, elapsed)
    return 0


def _print_summary(args: argparse.Namespace, syn: SyntheticSet, report: QuantizationReport, data: bytes,
                   elapsed: float) -> None:
    info = inspect(data)
    h, w = syn.image_size
    config = syn.config
    print(f"ddfast encode: {args.synthetic} -> {args.output}: {syn.num_classes} classes, {syn.layout.num_images} "
          f"images of {h}x{w}x{syn.channels}, synthesis {config.synthesis}, ARM C={config.arm_context} "
          f"depth {config.arm_depth}")
    print(f"file: {info.total_bytes} bytes, {info.bytes_per_class / 1000:.3f} kB per class")
    print("  " + ", ".join(f"{part} {size}" for part, size in info.bytes.items()))
    raw = sum(int((steps[:, 0] == RAW).sum()) for steps in report.steps.values())
    print(f"largest MSE vs the float decode: {report.mse.max().item():.3g} (threshold {report.mse_threshold:g})"
          + (f"; {raw} module(s) of {len(report.steps) * syn.num_slices} kept in float32" if raw else ""))
    print(f"latent bits: {info.coded_latent_bits} in the file ({info.latent_bits:.0f} under the integer model), "
          f"{info.estimated_latent_bits:.0f} estimated by the float ARM "
          f"({bits_difference(info.coded_latent_bits, info.estimated_latent_bits)})")
    print(f"time: {elapsed:.2f} s")
