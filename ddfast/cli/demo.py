"""``ddfast demo``: the whole DD-RUO job on the Fashion-MNIST subset that ships with the package.

1. init: every class's codec is fitted to 10 real training images (phase 1);
2. joint: distribution matching (DM) plus the rate, in two lambda stages (phase 2);
3. the .ddf file: post-quantized to fit 1.5 kB per class, written, read back and decoded;
4. evaluation: fresh ConvNets trained on the decoded set, tested on the subset's 200 test images;
5. the vanilla baseline: DM on plain pixels with as many 8-bit images per class as the same
   budget buys (28 x 28 = 784 bytes each), evaluated the same way;
6. a PNG: per class, the decoded distilled images.

About eight minutes on a 2-core CPU. The evaluation is shortened (2 runs of 300 epochs instead of
the protocol's 5 x 1000) and the subset is small (50 training images per class), so the figures
show the job working, not the method's accuracy; ``ddfast distill`` runs the full settings.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ddfast.cli._common import check_output_path, parse_assignments, save_image_grid
from ddfast.coding import decompress
from ddfast.data import load
from ddfast.device import resolve_device
from ddfast.distill import as_8bit, distill_dm
from ddfast.eval import evaluate
from ddfast.pipeline import RunSummary, distill, resolve_preset

BYTES_PER_PIXEL_IMAGE = 28 * 28  # an 8-bit Fashion-MNIST image


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast demo``."""
    p = subparsers.add_parser("demo", help="the whole job on the bundled data: distill, file, decode, evaluate",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="ddfast-demo", help="the run folder (default ./ddfast-demo)")
    p.add_argument("--png", default=None, help="write the decoded images here (one row per class)")
    p.add_argument("--preset", default="bundled-dm-demo", help="the preset (default bundled-dm-demo)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="change a preset field")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    """Distill, write and decode the file, evaluate it and the pixel baseline, print both."""
    device = resolve_device(args.device)
    preset = resolve_preset(args.preset, parse_assignments(args.set))
    if args.png:
        check_output_path(args.png, "--png")
    print(f"ddfast demo: {preset.description}; {preset.spc} images per class, synthesis {preset.synthesis}, "
          f"ARM C={preset.arm_context} depth {preset.arm_depth}, device {device}")
    summary = distill(preset, args.out, device=device, resume=args.resume, progress=not args.quiet)
    baseline_ipc = max(1, int(preset.budget_kb * 1000) // BYTES_PER_PIXEL_IMAGE)
    baseline = _pixel_baseline(preset, baseline_ipc, device, not args.quiet)
    _print_table(summary, baseline_ipc, baseline)
    if args.png:
        images, _ = decompress(Path(summary.file).read_bytes(), device=device)
        save_image_grid(args.png, list(images.cpu().split(preset.spc)))
        print(f"wrote {args.png}")
    if summary.budget_message:
        print(summary.budget_message)
    return 0 if summary.budget_met else 1


def _pixel_baseline(preset, ipc: int, device: torch.device, progress: bool):
    """DM on plain pixels at ``ipc`` images per class, as many joint iterations, stored as 8-bit pixels
    and evaluated alike."""
    train, test = load(preset.dataset, None, "train"), load(preset.dataset, None, "test")
    pixels = distill_dm(train, ipc, iterations=sum(it for it, _ in preset.stages), batch_real=preset.batch_real,
                        seed=preset.seed, device=device, progress=progress)
    return evaluate(as_8bit(pixels.images, train), pixels.labels, test, runs=preset.eval_runs,
                    epochs=preset.eval_epochs, seed=preset.seed, device=device, progress=progress)


def _print_table(summary: RunSummary, baseline_ipc: int, baseline) -> None:
    runs = f"{summary.eval_runs} run(s) x {summary.eval_epochs} epochs"
    print()
    print(f"{'synthetic set':<34}{'kB per class':>13}{'images/class':>14}  accuracy ({runs}; shortened)")
    print(f"{'DM-RUO: the .ddf file':<34}{summary.bytes_per_class / 1000:>13.3f}{summary.images_per_class:>14}  "
          f"{100 * summary.accuracy_mean:.1f} +- {100 * summary.accuracy_std:.1f} %")
    print(f"{'DM on pixels, 8-bit (baseline)':<34}{baseline_ipc * BYTES_PER_PIXEL_IMAGE / 1000:>13.3f}"
          f"{baseline_ipc:>14}  {100 * baseline.mean:.1f} +- {100 * baseline.std:.1f} %")
    print()
    print(f"file {summary.file}: " + ", ".join(f"{k} {v}" for k, v in summary.bytes.items()) + " bytes")
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in summary.seconds.items()))
