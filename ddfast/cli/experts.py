"""``ddfast experts``: train expert trajectories for trajectory matching (MTT buffer format).

The buffers land in MTT's layout, ``BUFFER_PATH/<dataset>[/<subset>/<res>][_NO_ZCA]/<model>/
replay_buffer_<n>.pt``, readable by mtt-distillation, FreD, DDiF and DD-RUO. Rerunning the same
command after an interruption continues from the last complete expert.
"""
from __future__ import annotations

import argparse

from ddfast.cli._common import check_output_folder
from ddfast.device import resolve_device
from ddfast.distill.dsa import DEFAULT_STRATEGY
from ddfast.distill.experts import ExpertConfig, buffer_dir, train_experts
from ddfast.distill.networks import default_convnet
from ddfast.distill.zca import ZCA

# ddfast dataset name -> (reference dataset folder, ImageNet subset or None)
_REFERENCE_NAMES = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "fashion_mnist": "FashionMNIST"}


def reference_location(dataset: str) -> tuple[str, str | None]:
    """MTT's folder name for a ddfast dataset, and the ImageNet subset when there is one."""
    from ddfast.data import IMAGENET_SUBSETS, canonical_name

    key = canonical_name(dataset)
    if key in IMAGENET_SUBSETS:
        return "ImageNet", key
    return _REFERENCE_NAMES.get(key, key), None




def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ddfast experts``."""
    p = subparsers.add_parser("experts", help="train expert trajectories (MTT replay buffers)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="dataset name (ddfast.data.load), e.g. cifar10, fashion_mnist")
    p.add_argument("--data-root", default=None, help="dataset location (default: the reader's default)")
    p.add_argument("--model", default=None, help="network name (default: ConvNet, ConvNetD5 at 128 px)")
    p.add_argument("--num-experts", type=int, default=100)
    p.add_argument("--epochs", type=int, default=50, help="epochs per expert (snapshots = epochs + 1)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (lr_teacher)")
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--decay", action="store_true", help="lr x 0.1 after epoch epochs//2 + 1")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dsa-strategy", default=DEFAULT_STRATEGY, help="DSA operations, or 'none'")
    p.add_argument("--dc-align-corners", action="store_true",
                   help="DSA with align_corners=False (DC) instead of MTT's True")
    p.add_argument("--zca", action="store_true",
                   help="ZCA-whiten (eps 0.1, fitted on the training set) instead of mean/std; saves zca.pt")
    p.add_argument("--buffer-path", default="./buffers")
    p.add_argument("--save-interval", type=int, default=10, help="experts per replay_buffer file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--no-test", action="store_true", help="skip the test accuracy of each expert")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the experts; prints the buffer folder."""
    from ddfast.data import load

    device = resolve_device(args.device)
    train = load(args.dataset, args.data_root, "train")
    test = None if args.no_test else load(args.dataset, args.data_root, "test")
    model = args.model or default_convnet(train.image_size)
    reference, subset = reference_location(args.dataset)
    directory = buffer_dir(args.buffer_path, reference, model, zca=args.zca, subset=subset,
                           resolution=train.image_size[0] if subset else None)
    check_output_folder(directory, "--buffer-path")
    if args.zca:
        zca = ZCA(eps=0.1).fit(train.to_float())
        zca.save(directory / "zca.pt")
        images = zca(train.to_float())
        test_pair = (zca(test.to_float()), test.labels) if test is not None else None
    else:
        images = train.normalize(train.to_float())
        test_pair = (test.normalize(test.to_float()), test.labels) if test is not None else None
    config = ExpertConfig(
        model=model, epochs=args.epochs, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
        batch_size=args.batch, dsa_strategy=args.dsa_strategy, align_corners=not args.dc_align_corners,
        decay=args.decay, save_interval=args.save_interval, seed=args.seed,
    )
    files = train_experts(
        images, train.labels, directory, args.num_experts, num_classes=train.num_classes, config=config,
        device=device, test=test_pair, progress=not args.quiet,
    )
    print(f"{len(files)} buffer file(s) in {directory}")
    return 0
