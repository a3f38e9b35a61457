"""``ddfast info``: what a .ddf file holds and where its bytes go.

Prints the set's shape and codec, then the bytes of each part of the file with their share,
the bytes per class (bpc) and the overhead per slice. Unless ``--no-estimate``, it also decodes
the latents to compare their bits in the file (integer ARM, lanes included) with the float ARM's
estimate (what training measures). ``--json`` prints ``ddfast.inspect(...).to_dict()`` instead.
"""
from __future__ import annotations

import argparse
import json

from ddfast.cli._common import bits_difference, check_input_file, named, read_ddf
from ddfast.coding import FileInfo, inspect
from ddfast.coding.inspect import PART_MEANING
from ddfast.errors import BitstreamError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast info``."""
    p = subparsers.add_parser("info", help="itemize a .ddf file (shape, codec, bytes per part)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="the .ddf file")
    p.add_argument("--json", action="store_true", help="print the itemization as JSON")
    p.add_argument("--no-estimate", action="store_true", help="skip decoding the latents for the bit figures")
    return p


def run(args: argparse.Namespace) -> int:
    """Inspect the file and print the table (or JSON)."""
    source = check_input_file(args.file, ".ddf file")
    data = read_ddf(source)
    try:
        info = inspect(data, estimate=not args.no_estimate)
    except BitstreamError as err:
        raise named(source, err) from err
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        _print_table(args.file, info)
    return 0


def _numbers(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _soft_labels(summary: dict | None) -> str:
    if summary is None:
        return "none (training uses the classes)"
    return (f"{summary['rows']} x {summary['classes']} at eps {summary['eps']:.6g}: {summary['bits_per_label']:.1f} "
            f"bits per label in the file, {summary['bound_bits_per_label']:.1f} by DD-RUO's (A4) bound")


def _print_table(name: str, info: FileInfo) -> None:
    counts = info.images_per_class
    per_class = f"{counts[0]} each" if len(set(counts)) == 1 else " ".join(map(str, counts))
    h, w = info.image_size
    rows = [
        ("file", name),
        ("images", f"{sum(counts)} of {h}x{w}x{info.channels} in {info.num_classes} classes"),
        ("images per class", per_class),
        ("slices", f"{len(info.slices)} (" + (f"at most {info.slice_size} images each)" if info.slice_size
                                              else "one per class)")),
        ("codec", ", ".join(f"{key} {value}" for key, value in info.config.items())),
        ("lanes", f"{info.lane_symbols} symbols per lane, {sum(s.lanes for s in info.slices)} lanes"),
        ("normalization", f"mean {_numbers(info.normalization[0])}, std {_numbers(info.normalization[1])}"
         if info.normalization is not None else "none (decoded images stay in pixel space)"),
        ("syn_lr", f"{info.syn_lr:.6g}" if info.syn_lr is not None else "none"),
        ("soft labels", _soft_labels(info.soft_labels)),
    ]
    for key, value in rows:
        print(f"{key:<18}{value}")
    print()
    print(f"{'part':<12}{'bytes':>10}{'%':>7}  meaning")
    for part, size in info.bytes.items():
        print(f"{part:<12}{size:>10}{100 * size / info.total_bytes:>7.1f}  {PART_MEANING[part]}")
    print(f"{'total':<12}{info.total_bytes:>10}{100.0:>7.1f}")
    print()
    print(f"{'bytes per class':<18}{info.bytes_per_class:.1f} (bpc)")
    print(f"{'overhead/slice':<18}{info.overhead_per_slice:.1f} bytes (framing, parameters, lane table)")
    if info.latent_bits is None:
        print(f"{'latent bits':<18}not computed (--no-estimate)")
    else:
        print(f"{'latent bits':<18}{info.coded_latent_bits} in the file, {info.latent_bits:.0f} under the integer "
              f"model, {info.estimated_latent_bits:.0f} estimated by the float ARM: "
              f"{bits_difference(info.coded_latent_bits, info.estimated_latent_bits)}")
