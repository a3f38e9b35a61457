"""``ddfast plot``: a rate-utility curve (test accuracy against kB per class) of finished run folders.

Every RUN_DIR must hold the ``summary.json`` of an evaluated run (``ddfast distill`` writes it).
Runs of one dataset and method form one line, with error bars of ± the std over the evaluation
runs. For CIFAR-10, CIFAR-100 and ImageNette, DD-RUO's published points (Tables A3 and A4) are
drawn beside. Needs matplotlib (``pip install 'ddfast[plot]'``).
"""
from __future__ import annotations

import argparse

from ddfast.cli._common import check_output_path
from ddfast.errors import ConfigError
from ddfast.report import draw_curve, read_run, require_matplotlib
from ddfast.report.curves import DEFAULT_SIZE, check_size


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast plot``."""
    p = subparsers.add_parser("plot", help="draw accuracy vs. kB per class of run folders as a PNG",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders of ddfast distill")
    p.add_argument("--out", required=True, metavar="CURVE.png", help="the PNG file to write")
    p.add_argument("--size", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}", help="WIDTHxHEIGHT in pixels")
    return p


def _parse_size(text: str) -> tuple[int, int]:
    """``"800x500"`` -> ``(800, 500)``."""
    width, _, height = text.lower().partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise ConfigError(f"--size must be WIDTHxHEIGHT in pixels such as 800x500; got {text!r}") from None
    return check_size(size, "--size")


def run(args: argparse.Namespace) -> int:
    """Read every run's summary (all checked first), draw the curve, and say what was drawn."""
    require_matplotlib("ddfast plot")
    size = _parse_size(args.size)
    target = check_output_path(args.out, "--out")
    points = [read_run(folder) for folder in args.runs]
    tables = draw_curve(points, target, size)
    beside = f"; beside DD-RUO {', '.join(tables)}" if tables else ""
    print(f"ddfast plot: {len(points)} runs -> {args.out} ({size[0]}x{size[1]} pixels){beside}")
    return 0
