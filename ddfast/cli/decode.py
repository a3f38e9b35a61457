"""``ddfast decode``: decode a .ddf file into a synthetic set that ``ddfast eval`` reads.

The output is a ``PixelSet`` file (``images``, ``labels``, ``syn_lr`` when the file has one, and
``meta``: the source file, the class ids and whether the images are normalized). When the file
carries the per-channel mean/std of its data, the images are normalized with them, (x - mean) /
std, the network's input space; ``--raw`` keeps them in pixel space, [0, 1]. Labels are the
file's class ids, also when ``--classes`` picks some.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from ddfast.cli._common import (
    check_distinct,
    check_input_file,
    check_output_path,
    named,
    parse_classes,
    read_ddf,
    save_image_grid,
)
from ddfast.coding import decode
from ddfast.device import resolve_device
from ddfast.distill.baselines import PixelSet
from ddfast.errors import BitstreamError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast decode``."""
    p = subparsers.add_parser("decode", help="decode a .ddf file into images for ddfast eval",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="the .ddf file")
    p.add_argument("-o", "--output", required=True, help="the synthetic set to write (.pt, ddfast eval's format)")
    p.add_argument("--png", default=None, help="also write a picture: one row per class, pixel space")
    p.add_argument("--classes", default=None, help="decode only these class ids, e.g. 0,3 (default: all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--raw", action="store_true", help="keep pixel space even when the file has a mean/std")
    return p


def normalize(images: torch.Tensor, normalization: tuple[Sequence[float], Sequence[float]]) -> torch.Tensor:
    """(images - mean) / std per channel of [N, C, H, W] images."""
    mean, std = (torch.tensor(v, dtype=images.dtype, device=images.device).view(1, -1, 1, 1) for v in normalization)
    return (images - mean) / std


def run(args: argparse.Namespace) -> int:
    """Decode, write the set (and the picture) atomically, and say what was written."""
    device = resolve_device(args.device)
    classes = parse_classes(args.classes) if args.classes is not None else None
    source = check_input_file(args.file, ".ddf file")
    target = check_output_path(args.output, "output")
    outputs = {"the .ddf file": args.file, "the output": args.output}
    if args.png:
        check_output_path(args.png, "--png")
        outputs["the --png picture"] = args.png
    check_distinct(outputs)
    data = read_ddf(source)
    try:
        qset = decode(data, device, classes)
    except BitstreamError as err:
        raise named(source, err) from err
    with torch.no_grad():
        pixels, index = qset.to_synthetic_set(device)()
    labels = torch.tensor(qset.class_ids, device=index.device)[index]
    normalized = qset.normalization is not None and not args.raw
    meta = {"source": str(args.file), "classes": list(qset.class_ids), "normalized": normalized}
    if qset.normalization is not None:
        meta["normalization"] = [list(qset.normalization[0]), list(qset.normalization[1])]
    images = normalize(pixels, qset.normalization) if normalized else pixels
    PixelSet(images, labels, qset.syn_lr, meta).save(target)
    space = "normalized with the file's mean/std" if normalized else "in pixel space"
    picked = f" (ids {','.join(map(str, qset.class_ids))})" if classes is not None else ""
    n, channels, h, w = pixels.shape
    print(f"ddfast decode: {args.file} -> {args.output}: {len(qset.class_ids)} classes{picked}, "
          f"{n} images of {h}x{w}x{channels}, {space}")
    if qset.normalization is None and not args.raw:
        print(f"note: {args.file} carries no normalization, so the images stay in pixel space")
    if args.png:
        save_image_grid(args.png, [pixels[labels == c] for c in qset.class_ids])
        print(f"wrote {args.png}")
    return 0
