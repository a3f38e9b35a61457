"""``ddfast show``: a PNG page of a .ddf file's images, one panel per class (DD-RUO, Figs. A1–A14).

Each panel shows images of one class in columns (``--images``: which ones, by index within the
class; default the first 10). Under every image: one row per latent grid of the decoder, the
integer latents repeated up to the image size, in a diverging colour map (blue below 0, red above,
one range per row). With ``--run RUN_DIR`` a first row shows the initialization, the codec after
phase 1 that the run saved as ``init.pt``, above the distilled images. Needs matplotlib
(``pip install 'ddfast[plot]'``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ddfast.cli._common import (
    check_distinct,
    check_input_file,
    check_output_path,
    named,
    parse_classes,
    read_ddf,
)
from ddfast.codec import SyntheticSet
from ddfast.coding import decode
from ddfast.device import resolve_device
from ddfast.errors import BitstreamError, ConfigError
from ddfast.report import class_panels, draw_page, require_matplotlib


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast show``."""
    p = subparsers.add_parser("show", help="draw a .ddf file's images and latents per class as a PNG page",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="the .ddf file")
    p.add_argument("--out", required=True, metavar="PAGE.png", help="the PNG page to write")
    p.add_argument("--classes", default=None, help="only these class ids, e.g. 0,3 (default: all)")
    p.add_argument("--images", default=None,
                   help="image indices within each class, e.g. 0,4 (default: the first 10 of each class)")
    p.add_argument("--run", default=None, metavar="RUN_DIR",
                   help="the run folder of the file: its initialization (init.pt) becomes a first row")
    p.add_argument("--no-latents", action="store_true", help="images only, no latent rows")
    p.add_argument("--scale", type=int, default=None,
                   help="draw each pixel as SCALE x SCALE (default: enough for 64-pixel tiles)")
    p.add_argument("--device", default="auto", help="where to decode: auto, cpu, cuda, cuda:1, ...")
    return p


def _parse_indices(text: str) -> list[int]:
    """``"0,4"`` -> ``[0, 4]``: distinct non-negative image indices."""
    try:
        indices = [int(item) for item in text.split(",")]
    except ValueError:
        raise ConfigError(f"--images must be comma-separated image indices such as 0,4; got {text!r}") from None
    if min(indices) < 0 or len(set(indices)) != len(indices):
        raise ConfigError(f"--images must list distinct non-negative indices; got {text!r}")
    return indices


def run(args: argparse.Namespace) -> int:
    """Check everything, decode the file (and load the initialization), draw and write the page."""
    require_matplotlib("ddfast show")
    device = resolve_device(args.device)
    classes = parse_classes(args.classes) if args.classes is not None else None
    columns = _parse_indices(args.images) if args.images is not None else None
    if args.scale is not None and args.scale < 1:
        raise ConfigError(f"--scale must be a positive integer, got {args.scale}")
    source = check_input_file(args.file, ".ddf file")
    init_file = None
    if args.run is not None:
        if not Path(args.run).is_dir():
            raise ConfigError(f"--run {args.run} does not exist or is not a folder")
        init_file = check_input_file(str(Path(args.run) / "init.pt"), "the run's initialization")
    target = check_output_path(args.out, "--out")
    check_distinct({"the .ddf file": args.file, "--out": args.out})
    try:
        qset = decode(read_ddf(source), device, classes)
    except BitstreamError as err:
        raise named(source, err) from err
    syn = qset.to_synthetic_set(device)
    init = SyntheticSet.load(init_file, device=device) if init_file is not None else None
    with torch.no_grad():
        panels = class_panels(syn, qset.class_ids, columns, init=init, latents=not args.no_latents)
    width, height = draw_page(panels, target, args.scale)
    rows = "initialization, distilled" if init is not None else "distilled"
    if not args.no_latents:
        rows += f", {len(syn.stack.grid_shapes)} latent grids"
    print(f"ddfast show: {args.file} -> {args.out}: {len(panels)} classes ({rows}), {width}x{height} pixels")
    return 0
