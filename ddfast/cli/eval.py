"""``ddfast eval``: evaluate a synthetic set with the reference protocol (5 fresh networks).

The synthetic set is a ``torch.save``-d dict::

    {"images": float32 [N, C, H, W],   # in the network's input space: (x - mean) / std of the
                                       # dataset, or ZCA-whitened when --zca is given
     "labels": int64 [N],
     "syn_lr": float,                  # optional: a TM set's learned SGD step size, used when
                                       # the optimizer is SGD and --lr is not set
     "meta":   dict}                   # optional, free-form

which is what ``ddfast.distill.PixelSet.save`` writes. The test set comes from ``--dataset``
(normalized with its mean/std, or whitened with ``--zca``) or from ``--test-set``, a file with
``images``/``labels`` already in the synthetic images' space.
"""
from __future__ import annotations

import argparse

import torch

from ddfast.cli._common import check_distinct, check_output_path
from ddfast.device import resolve_device
from ddfast.distill.baselines import PixelSet
from ddfast.distill.dsa import DEFAULT_STRATEGY
from ddfast.distill.networks import default_convnet
from ddfast.distill.zca import ZCA
from ddfast.errors import ConfigError
from ddfast.eval.protocol import evaluate
from ddfast.fileio import atomic_write_json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast eval``."""
    p = subparsers.add_parser("eval", help="evaluate a synthetic set (train fresh networks, test once)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("synthetic", help="synthetic set (.pt with images, labels[, syn_lr])")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="test data: dataset name (ddfast.data.load)")
    src.add_argument("--test-set", help="test data: .pt with images/labels in the synthetic images' space")
    p.add_argument("--data-root", default=None)
    p.add_argument("--zca", default=None, help="zca.pt: whiten the --dataset test images instead of normalizing")
    p.add_argument("--arch", default=None, help="network (default: ConvNet, ConvNetD5 at 128 px)")
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
    p.add_argument("--json", default=None, help="also write the result as JSON to this path")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _test_tensors(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    if args.test_set:
        test = PixelSet.load(args.test_set)
        return test.images, test.labels
    from ddfast.data import load

    ds = load(args.dataset, args.data_root, "test")
    if args.zca:
        return ZCA.load(args.zca)(ds.to_float()), ds.labels
    return ds.normalize(ds.to_float()), ds.labels


def run(args: argparse.Namespace) -> int:
    """Evaluate and print ``mean ± std`` with every run's accuracy."""
    if args.zca and not args.dataset:
        raise ConfigError("--zca applies to --dataset test data; a --test-set must already be whitened")
    device = resolve_device(args.device)
    if args.json:
        check_output_path(args.json, "--json")
        check_distinct({"--json": args.json, "synthetic set": args.synthetic})
    syn = PixelSet.load(args.synthetic)
    test_images, test_labels = _test_tensors(args)
    arch = args.arch or default_convnet(syn.images.shape[2:])
    result = evaluate(
        syn.images, syn.labels, (test_images, test_labels), arch=arch, runs=args.runs, epochs=args.epochs,
        lr=args.lr, syn_lr=syn.syn_lr, batch=args.batch, dsa=not args.no_dsa, seed=args.seed, optimizer=args.optimizer,
        dsa_strategy=args.dsa_strategy, device=device, progress=not args.quiet,
    )
    print(result)
    if args.json:
        record = {
            "synthetic": str(args.synthetic), "arch": result.arch, "mean": result.mean, "std": result.std,
            "accuracies": result.accuracies, "epochs": result.epochs, "lr": result.lr, "optimizer": result.optimizer,
            "runs": args.runs, "dsa": not args.no_dsa, "seed": args.seed,
        }
        atomic_write_json(args.json, record)
    return 0
