"""ddfast: distilled datasets as compressed .ddf files (DD-RUO) -- distill, encode, decode,
inspect, evaluate and draw them. Every command has --help."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ddfast.errors import DDFastError

# Subcommand modules (ddfast.cli.<name>); each defines add_parser(subparsers) and run(args) -> int.
SUBCOMMANDS = ("demo", "distill", "presets", "experts", "eval", "encode", "decode", "info", "show", "plot")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="ddfast", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"ddfast.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except DDFastError as err:
        print(f"ddfast {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ddfast {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output (e.g. `| head`) has gone: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
