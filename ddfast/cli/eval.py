"""``ddfast eval``: evaluate a synthetic set with the reference protocol (5 fresh networks).

The synthetic set is a .ddf file or a ``torch.save``-d dict::

    {"images": float32 [N, C, H, W],   # in the network's input space: (x - mean) / std of the
                                       # dataset, or ZCA-whitened when --zca is given
     "labels": int64 [N],
     "syn_lr": float,                  # optional: a TM set's learned SGD step size, used when
                                       # the optimizer is SGD and --lr is not set
     "meta":   dict}                   # optional, free-form

which is what ``ddfast.distill.PixelSet.save`` and ``ddfast decode`` write. A .ddf file is decoded
here and brought into the test images' space: with --dataset, normalized with the dataset's
mean/std (whitened instead with --zca); with --test-set, normalized with the file's own mean/std
when it carries them. Its syn_lr and soft labels are used as a saved set's would be.

The test set comes from ``--dataset`` (normalized with its mean/std, or whitened with ``--zca``)
or from ``--test-set``, a file with ``images``/``labels`` already in the synthetic images' space.

``--arch`` takes one network or a comma-separated list (e.g. ConvNet,AlexNet,VGG11,ResNet18,ViT);
each gets its own default optimizer (DD-RUO: Adam at 0.02, the ViT at 0.015; the ConvNet family
SGD). With several, a table like DD-RUO's Table A5 (mean ± std per architecture) is printed, and
``--markdown FILE.md`` writes it, with its JSON record beside it (FILE.json).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import torch

from ddfast.cli._common import check_distinct, check_input_file, check_output_path, named, read_ddf
from ddfast.coding import decode
from ddfast.coding.container import MAGIC
from ddfast.device import resolve_device
from ddfast.distill.baselines import PixelSet
from ddfast.distill.dsa import DEFAULT_STRATEGY
from ddfast.distill.networks import default_convnet
from ddfast.distill.zca import ZCA
from ddfast.errors import BitstreamError, ConfigError
from ddfast.eval.protocol import EvalResult, evaluate
from ddfast.fileio import atomic_write_bytes, atomic_write_json
from ddfast.report import CrossArchReport, check_architectures, parse_architectures

Transform = Callable[[torch.Tensor], torch.Tensor]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast eval``."""
    p = subparsers.add_parser("eval", help="evaluate a synthetic set or .ddf file (train fresh networks, test once)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("synthetic", help="synthetic set (.pt with images, labels[, syn_lr]) or .ddf file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="test data: dataset name (ddfast.data.load)")
    src.add_argument("--test-set", help="test data: .pt with images/labels in the synthetic images' space")
    p.add_argument("--data-root", default=None)
    p.add_argument("--zca", default=None, help="zca.pt: whiten the --dataset test images instead of normalizing")
    p.add_argument("--arch", default=None,
                   help="network, or a comma-separated list such as ConvNet,AlexNet,VGG11,ResNet18,ViT "
                        "(default: ConvNet, ConvNetD5 at 128 px)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--lr", type=float, default=None,
                   help="default: the file's syn_lr with SGD, else by architecture (Adam: 0.02, ViT 0.015)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help="default: by architecture")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--no-dsa", action="store_true", help="train without DSA")
    p.add_argument("--dsa-strategy", default=DEFAULT_STRATEGY)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None,
                   help="also write the result as JSON to this path (several --arch: the whole report)")
    p.add_argument("--markdown", default=None,
                   help="write the table (Markdown) to this path and its JSON beside it, with the suffix .json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _is_ddf(path: Path) -> bool:
    """A .ddf file by its name or its first bytes."""
    if path.suffix == ".ddf":
        return True
    with path.open("rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


class _Synthetic:
    """The set to evaluate: images (pixels for a .ddf file, else in input space) and what came with it."""

    def __init__(self, path: Path, device: torch.device) -> None:
        self.soft_labels: torch.Tensor | None = None
        self.normalization = None
        self.ddf = _is_ddf(path)
        if not self.ddf:
            syn = PixelSet.load(path)
            self.images, self.labels, self.syn_lr = syn.images, syn.labels, syn.syn_lr
            return
        try:
            qset = decode(read_ddf(path), device)
        except BitstreamError as err:
            raise named(path, err) from err
        with torch.no_grad():
            self.images, index = qset.to_synthetic_set(device)()
        self.labels = torch.tensor(qset.class_ids, device=index.device)[index]
        self.syn_lr, self.normalization = qset.syn_lr, qset.normalization
        if qset.soft_labels is not None:
            self.soft_labels = qset.soft_labels.probabilities(index.device)


def _normalizer(normalization: Any) -> Transform:
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in normalization)
    return lambda x: (x - mean.to(x.device)) / std.to(x.device)


def _test_data(args: argparse.Namespace, syn: _Synthetic) -> tuple[torch.Tensor, torch.Tensor, Transform]:
    """Test images and labels, and the map of a .ddf file's pixels into their space."""
    if args.test_set:
        test = PixelSet.load(args.test_set)
        if syn.ddf and syn.normalization is None:
            print(f"note: {args.synthetic} carries no normalization: its images are evaluated in pixel space")
        transform = _normalizer(syn.normalization) if syn.normalization is not None else (lambda x: x)
        return test.images, test.labels, transform
    from ddfast.data import load

    ds = load(args.dataset, args.data_root, "test")
    if args.zca:
        zca = ZCA.load(args.zca)
        return zca(ds.to_float()), ds.labels, zca
    return ds.normalize(ds.to_float()), ds.labels, ds.normalize


def _record(args: argparse.Namespace, result: EvalResult) -> dict[str, Any]:
    return {
        "synthetic": str(args.synthetic), "arch": result.arch, "mean": result.mean, "std": result.std,
        "accuracies": result.accuracies, "epochs": result.epochs, "lr": result.lr, "optimizer": result.optimizer,
        "runs": args.runs, "dsa": not args.no_dsa, "seed": args.seed,
    }


def _check_outputs(args: argparse.Namespace) -> Path | None:
    """Check every output path before any work; returns the JSON path beside --markdown."""
    outputs = {"synthetic set": args.synthetic}
    beside = None
    if args.json:
        check_output_path(args.json, "--json")
        outputs["--json"] = args.json
    if args.markdown:
        check_output_path(args.markdown, "--markdown")
        beside = Path(args.markdown).with_suffix(".json")
        if beside == Path(args.markdown):
            raise ConfigError(f"--markdown {args.markdown}: give a name whose JSON can lie beside it, e.g. table.md")
        check_output_path(str(beside), "--markdown's JSON")
        outputs["--markdown"] = args.markdown
        outputs["--markdown's JSON"] = str(beside)
    check_distinct(outputs)
    return beside


def run(args: argparse.Namespace) -> int:
    """Evaluate and print ``mean ± std`` with every run's accuracy (a table for several networks)."""
    if args.zca and not args.dataset:
        raise ConfigError("--zca applies to --dataset test data; a --test-set must already be whitened")
    device = resolve_device(args.device)
    archs = parse_architectures(args.arch) if args.arch else None
    beside = _check_outputs(args)
    syn = _Synthetic(check_input_file(args.synthetic, "synthetic set"), device)
    archs = archs or [default_convnet(syn.images.shape[2:])]
    check_architectures(archs, syn.images.shape[1], tuple(syn.images.shape[2:]))
    test_images, test_labels, transform = _test_data(args, syn)
    images = transform(syn.images) if syn.ddf else syn.images
    results = []
    for arch in archs:
        result = evaluate(
            images, syn.labels, (test_images, test_labels), arch=arch, runs=args.runs, epochs=args.epochs,
            lr=args.lr, syn_lr=syn.syn_lr, batch=args.batch, dsa=not args.no_dsa, seed=args.seed,
            optimizer=args.optimizer, dsa_strategy=args.dsa_strategy, soft_labels=syn.soft_labels, device=device,
            progress=not args.quiet,
        )
        print(result)
        results.append(result)
    report = CrossArchReport(Path(args.synthetic).name, args.dataset or Path(args.test_set).name, results,
                             dsa=not args.no_dsa, seed=args.seed)
    if len(results) > 1:
        print()
        print(report.markdown(), end="")
    if args.json:
        atomic_write_json(args.json, _record(args, results[0]) if len(results) == 1 else report.to_dict())
    if args.markdown:
        atomic_write_bytes(args.markdown, report.markdown().encode())
        atomic_write_json(beside, report.to_dict())
        print(f"wrote {args.markdown} and {beside}")
    return 0
