"""``ddfast demo``: fit the codec to the bundled Fashion-MNIST subset and report quality and size.

This is phase 1 of DD-RUO (initialization by overfitting real images) on data that ships with
the package, so it runs anywhere in a few minutes on a CPU. It prints, per class, the PSNR of
the decoded images and the estimated size of their latents, plus the size of one slice's
network weights.
"""
from __future__ import annotations

import argparse
import time

import torch

from ddfast.cli._common import save_image_grid
from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.data import load
from ddfast.errors import ConfigError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="fit the codec to the bundled data (phase 1)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spc", type=int, default=10, help="synthetic images per class (default 10)")
    parser.add_argument("--beta", type=float, default=1e3, help="rate-distortion trade-off: loss = MSE + bpp/beta")
    parser.add_argument("--synthesis", default="v4-40", help="synthesis version (Table A1), default v4-40")
    parser.add_argument("--arm-context", type=int, default=16, help="ARM context size C (8/16/24/32/64)")
    parser.add_argument("--arm-depth", type=int, default=2, help="ARM hidden layers")
    parser.add_argument("--candidates", type=int, nargs="+", default=[5, 2],
                        help="candidates kept per warm-up phase (reference: 5 2)")
    parser.add_argument("--iterations", type=int, nargs="+", default=[200, 200],
                        help="iterations per warm-up phase (reference: 400 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--png", help="also save a picture: per class, real images above decoded ones")
    parser.add_argument("--save", help="save the fitted SyntheticSet (state dict and config) to this .pt file")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.spc < 1:
        raise ConfigError(f"--spc must be >= 1, got {args.spc}")
    torch.manual_seed(args.seed)
    data = load("bundled", split="train")
    picked = data.take_per_class(args.spc, generator=torch.Generator().manual_seed(args.seed))
    by_class = picked.by_class()
    config = CodecConfig(synthesis=args.synthesis, arm_context=args.arm_context, arm_depth=args.arm_depth)
    syn = SyntheticSet(args.spc, data.image_size, num_classes=data.num_classes, channels=data.channels,
                       config=config, generator=torch.Generator().manual_seed(args.seed)).to(args.device)
    print(f"ddfast demo: {data.num_classes} classes x {args.spc} images of {data.image_size[0]}x"
          f"{data.image_size[1]}x{data.channels} (bundled Fashion-MNIST), synthesis {config.synthesis}, "
          f"ARM C={config.arm_context} depth {config.arm_depth}, beta={args.beta:g}, device {args.device}")
    start = time.perf_counter()
    report = syn.init_from_data([images.to(args.device) for images in by_class], beta=args.beta,
                                candidates=tuple(args.candidates), iterations=tuple(args.iterations),
                                generator=torch.Generator(args.device).manual_seed(args.seed))
    elapsed = time.perf_counter() - start
    _print_report(syn, data.classes, report)
    print(f"warm-up time: {elapsed:.1f} s")
    if args.png:
        _save_png(args.png, syn, by_class)
        print(f"wrote {args.png}")
    if args.save:
        syn.metadata.update(dataset="bundled", classes=list(data.classes),
                            normalization=[list(map(float, data.mean)), list(map(float, data.std))])
        syn.save(args.save)
        print(f"wrote {args.save}")
    return 0


def _print_report(syn: SyntheticSet, classes: list[str], report) -> None:
    class_bits = syn.class_bits(report.bits.cpu())
    psnr = report.psnr.cpu()
    weights = syn.num_parameters()
    print(f"{'class':<14}{'PSNR (dB)':>10}{'latents (kB)':>14}")
    for label, name in enumerate(classes):
        slices = syn.layout.class_slices(label)
        print(f"{name:<14}{psnr[slices].mean().item():>10.2f}{class_bits[label].item() / 8000:>14.3f}")
    total_params = sum(weights.values())
    print(f"{'mean':<14}{psnr.mean().item():>10.2f}{class_bits.mean().item() / 8000:>14.3f}")
    print(f"network weights per class: {total_params} parameters ({weights}), "
          f"{total_params * 4 / 1000:.1f} kB as float32 before post-quantization")


def _save_png(path: str, syn: SyntheticSet, by_class) -> None:
    """Per class, a row of the real images and below it the decoded ones."""
    syn.eval()
    with torch.no_grad():
        decoded, _ = syn()
    decoded = decoded.cpu()
    rows, start = [], 0
    for images, n in zip(by_class, syn.layout.images_per_class):
        real = images[:n].cpu()
        rows += [real.float() / 255.0 if real.dtype == torch.uint8 else real.float(), decoded[start:start + n]]
        start += n
    save_image_grid(path, rows)
