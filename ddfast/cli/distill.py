"""``ddfast distill``: run DD-RUO with a preset -- init, joint rate-utility phase, .ddf file, evaluation.

Phases: every slice's codec is fitted to real images of its class (init), trained for the
distillation loss plus the rate in the preset's lambda stages (joint), post-quantized at each MSE
threshold so that the written ``distilled.ddf`` fits ``--budget-kb`` (the finest threshold that
fits), and decoded and evaluated with fresh networks. The run folder holds ``config.json``,
``log.jsonl``, ``checkpoint.pt``, ``init.pt``, ``distilled.pt``, ``distilled.ddf`` and
``summary.json``; ``--resume`` continues an interrupted run to the same result. ``ddfast presets``
lists the presets; ``--config FILE`` (JSON or TOML) and ``--set field=value`` change any field.
Exit status 1 when no file fits the budget (the smallest one is written and the message says
which knob to turn). ``torchrun --nproc-per-node N -m ddfast distill ...`` shares the classes'
codecs among N processes (GPUs); rank 0 prints, writes and evaluates.
"""
from __future__ import annotations

import argparse

from ddfast.cli._common import parse_assignments
from ddfast.device import resolve_device
from ddfast.distill.distributed import is_main
from ddfast.pipeline import distill, resolve_preset


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast distill``."""
    p = subparsers.add_parser("distill", help="distill a dataset into a .ddf file (DD-RUO, with a preset)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True, help="a preset name (see ddfast presets)")
    p.add_argument("--out", required=True, help="the run folder (created; must be empty unless --resume)")
    p.add_argument("--data", default=None, help="the dataset's folder (default: ddfast.data's default places)")
    p.add_argument("--budget-kb", type=float, default=None, help="bytes budget per class in kB (1 kB = 1000 bytes)")
    p.add_argument("--config", default=None, help="a JSON or TOML file of preset fields to change")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change one preset field (VALUE as JSON, e.g. --set spc=20 --set 'stages=[[500,20],[500,2]]')")
    p.add_argument("--experts", default=None, help="TM: a folder of expert trajectories (mtt-distillation layout)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-eval", action="store_true", help="stop after writing the file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    """Check everything, run the phases, print the summary."""
    resolve_device(args.device)
    overrides = parse_assignments(args.set)
    if args.budget_kb is not None:
        overrides["budget_kb"] = args.budget_kb
    preset = resolve_preset(args.preset, overrides, args.config)
    say = print if is_main() else (lambda *_: None)  # torchrun: rank 0 speaks for every process
    say(f"ddfast distill: preset {preset.name} ({preset.description or preset.method}), dataset {preset.dataset}, "
          f"{preset.spc} images per class, synthesis {preset.synthesis}, ARM C={preset.arm_context} depth "
          f"{preset.arm_depth}, {sum(s[0] for s in preset.stages)} joint iterations, out {args.out}")
    summary = distill(preset, args.out, data_root=args.data, experts=args.experts, device=args.device,
                      resume=args.resume, evaluate_file=not args.no_eval, progress=not args.quiet)
    say(summary.describe())
    return 1 if not summary.budget_met else 0
