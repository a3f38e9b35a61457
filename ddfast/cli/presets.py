"""``ddfast presets``: the named run settings of ``ddfast distill`` (the paper's Table A2 and CPU runs).

Columns: method, dataset, images per class (spc), slice size, decoder version, ARM width x depth,
warm-up beta, joint iterations and lambda per stage, byte budget per class. ``--show NAME``
prints every field of one preset as JSON (the format ``ddfast distill --config`` reads).
"""
from __future__ import annotations

import argparse
import json

from ddfast.distill.presets import PRESETS, get_preset


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast presets``."""
    p = subparsers.add_parser("presets", help="list the presets of ddfast distill",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--show", default=None, metavar="NAME", help="print every field of one preset as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Print the table, or one preset's fields."""
    if args.show:
        print(json.dumps(get_preset(args.show).to_dict(), indent=2))
        return 0
    header = f"{'preset':<22}{'method':<7}{'dataset':<14}{'spc':>5}{'slice':>6}  {'decoder':<8}{'ARM':>6}" \
             f"{'beta':>7}  {'stages (iterations x lambda)':<30}{'budget':>8}"
    print(header)
    for name, p in PRESETS.items():
        stages = ", ".join(f"{it} x {lam:g}" for it, lam in p.stages)
        budget = f"{p.budget_kb:g} kB" if p.budget_kb else "-"
        print(f"{name:<22}{p.method:<7}{p.dataset:<14}{p.spc:>5}{(p.slice_size or p.spc):>6}  {p.synthesis:<8}"
              f"{f'{p.arm_context}x{p.arm_depth}':>6}{p.beta:>7g}  {stages:<30}{budget:>8}")
    return 0
