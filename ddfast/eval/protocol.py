"""The evaluation protocol of the references (``evaluate_synset``), run several times.

Each run trains a freshly initialized network on the synthetic set: batch 256, shuffled,
DSA (non-Siamese) on every batch, ``epochs + 1`` epochs; after epoch ``epochs // 2 + 1`` the
learning rate is multiplied by 0.1 and the optimizer is re-created (momentum reset). The test
set is evaluated **once**, after the last epoch (no maximum over checkpoints). The optimizer is
SGD (momentum 0.9, weight decay 5e-4) for the ConvNet family, MLP and LeNet, with lr 0.01 or a
TM set's learned ``syn_lr``; for the cross-architecture networks DD-RUO (Dataset Distillation as
Data Compression: A Rate-Utility Perspective, ICCV 2025; Sec. A2) uses Adam with
lr 0.02 (AlexNet, VGG-11, ResNet-18) and 0.015 for its ViT (dropout 0.01 is built into the ViT).

A learned ``syn_lr`` is an SGD step size (MTT evaluates TM sets with SGD at ``syn_lr``), so it is
used only when the optimizer is SGD; with Adam the architecture's lr applies unless an explicit
``lr`` is given (:func:`resolve_optimizer`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from ddfast.distill.dsa import DEFAULT_STRATEGY, DSA
from ddfast.distill.networks import get_network
from ddfast.distill.realdata import RealData, real_tensors
from ddfast.distill.seeding import derive_seed, seeded_generator
from ddfast.distill.training import accuracy, train_epoch
from ddfast.errors import ConfigError
from ddfast.labels import check_soft_targets

SGD_MOMENTUM = 0.9
SGD_WEIGHT_DECAY = 5e-4
_ADAM_LR = {"ViT": 0.015}
_ADAM_FAMILIES = ("AlexNet", "VGG", "ResNet", "ViT")


@dataclass
class EvalResult:
    """Test accuracies (fractions in [0, 1]) of every run and their mean ± std (population std,
    as the references' ``np.std``)."""

    arch: str
    accuracies: list[float]
    train_accuracies: list[float]
    epochs: int
    lr: float
    optimizer: str
    mean: float = field(init=False)
    std: float = field(init=False)

    def __post_init__(self) -> None:
        self.mean = float(np.mean(self.accuracies))
        self.std = float(np.std(self.accuracies))

    def __str__(self) -> str:
        runs = ", ".join(f"{100 * a:.2f}" for a in self.accuracies)
        return f"{self.arch}: {100 * self.mean:.2f} ± {100 * self.std:.2f} % ({len(self.accuracies)} runs: {runs})"


def default_optimizer(arch: str) -> tuple[str, float]:
    """``(optimizer, lr)`` the protocol uses for ``arch`` when none is given."""
    if arch.startswith(_ADAM_FAMILIES):
        return "adam", _ADAM_LR.get(arch, 0.02)
    return "sgd", 0.01


def resolve_optimizer(
    arch: str, optimizer: str | None = None, lr: float | None = None, syn_lr: float | None = None
) -> tuple[str, float]:
    """``(optimizer, lr)`` for an evaluation of ``arch``.

    ``optimizer`` defaults to the architecture's (:func:`default_optimizer`). The lr is, in
    order: an explicit ``lr``; a TM set's ``syn_lr`` when the optimizer is SGD (it is an SGD step
    size); the architecture's default lr.
    """
    default_opt, default_lr = default_optimizer(arch)
    optimizer = optimizer or default_opt
    if optimizer not in ("sgd", "adam"):
        raise ConfigError(f"unknown optimizer {optimizer!r}; use 'sgd' or 'adam'")
    if lr is not None:
        chosen = lr
    elif syn_lr is not None and optimizer == "sgd":
        chosen = syn_lr
    else:
        chosen = default_lr
    chosen = float(chosen)
    if not (chosen > 0 and math.isfinite(chosen)):
        raise ConfigError(f"learning rate must be positive, got {chosen}")
    return optimizer, chosen


def _make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=SGD_WEIGHT_DECAY)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ConfigError(f"unknown optimizer {name!r}; use 'sgd' or 'adam'")


def train_and_test(
    net: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    optimizer: str = "sgd",
    batch: int = 256,
    dsa: DSA | None = None,
    generator: torch.Generator | None = None,
    progress: tqdm | None = None,
) -> tuple[float, float]:
    """One run of the protocol on ``net``; returns ``(test accuracy, last-epoch train accuracy)``.

    ``labels`` are class ids [N] or soft labels [N, K] (soft cross-entropy, ``train_epoch``).
    """
    opt = _make_optimizer(optimizer, net.parameters(), lr)
    train_acc = 0.0
    for ep in range(epochs + 1):
        _, train_acc = train_epoch(net, images, labels, opt, batch_size=batch, dsa=dsa, generator=generator)
        if ep == epochs // 2 + 1:
            lr *= 0.1
            opt = _make_optimizer(optimizer, net.parameters(), lr)
        if progress is not None:
            progress.update()
    return accuracy(net, test_images, test_labels), train_acc


def _num_classes(labels: torch.Tensor, test_labels: torch.Tensor, num_classes: int | None) -> int:
    """``num_classes``, or ``max label + 1``; ConfigError if a label does not fit."""
    if labels.numel() == 0 or test_labels.numel() == 0:
        raise ConfigError("the synthetic set and the test set must not be empty")
    low = int(min(labels.min(), test_labels.min()))
    if low < 0:
        raise ConfigError(f"labels must be non-negative class indices, found {low}")
    needed = int(max(labels.max(), test_labels.max())) + 1
    if num_classes is None:
        return needed
    if num_classes < needed:
        raise ConfigError(f"num_classes={num_classes} is too small: the labels go up to {needed - 1}")
    return int(num_classes)


def _check_values(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                  test_labels: torch.Tensor) -> None:
    """ConfigError for NaN/inf pixels, or synthetic labels of classes the test set does not have
    (a network trained on them would still report an accuracy)."""
    for what, x in (("synthetic", images), ("test", test_images)):
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ConfigError(f"the {what} images hold {bad} NaN or infinite value(s)")
    unknown = sorted(set(labels.unique().tolist()) - set(test_labels.unique().tolist()))
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        raise ConfigError(f"synthetic labels {shown} are not classes of the test set "
                          f"(its labels: {int(test_labels.min())}..{int(test_labels.max())})")


def evaluate(
    images: torch.Tensor,
    labels: torch.Tensor,
    test_data: RealData,
    arch: str = "ConvNet",
    runs: int = 5,
    epochs: int = 1000,
    lr: float | None = None,
    batch: int = 256,
    dsa: bool = True,
    seed: int = 0,
    *,
    syn_lr: float | None = None,
    optimizer: str | None = None,
    dsa_strategy: str = DEFAULT_STRATEGY,
    align_corners: bool = True,
    num_classes: int | None = None,
    soft_labels: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> EvalResult:
    """Train ``runs`` fresh ``arch`` networks on ``(images, labels)`` and test each once.

    Args:
        images, labels: the synthetic set, images in the network's input space.
        test_data: an ``ImageDataset`` (normalized with its mean/std here) or a pair of tensors
            already in the same space as ``images`` (e.g. ZCA-whitened).
        lr: explicit learning rate, used with any optimizer; ``None`` → ``syn_lr`` with SGD,
            else the architecture's default (:func:`resolve_optimizer`).
        syn_lr: a TM set's learned step size; used only when the optimizer is SGD and ``lr`` is
            not given.
        optimizer: ``"sgd"`` or ``"adam"``; ``None`` → by architecture (module docstring).
        num_classes: network outputs; default ``max label + 1`` over both sets (the soft labels'
            K when given).
        soft_labels: float [N, K] probabilities (e.g. a .ddf file's, ``ddfast.decompress(...)
            .soft_labels``): the networks train on them with soft cross-entropy instead of on
            ``labels``, which still name each image's class for the checks.
        seed: run ``r`` uses seeds derived from ``(seed, r)`` for initialization, shuffling
            and DSA, so results are reproducible.
    """
    images, labels = real_tensors((images, labels))
    test_images, test_labels = real_tensors(test_data)
    if runs < 1 or epochs < 0 or batch < 1:
        raise ConfigError("runs and batch must be positive and epochs non-negative")
    if test_images.shape[1:] != images.shape[1:]:
        raise ConfigError(f"test images are {tuple(test_images.shape[1:])}, synthetic images {tuple(images.shape[1:])}")
    optimizer, lr = resolve_optimizer(arch, optimizer, lr, syn_lr)
    if soft_labels is not None:
        soft_labels = check_soft_targets(soft_labels, labels.shape[0], num_classes)
        num_classes = soft_labels.shape[1]
    num_classes = _num_classes(labels, test_labels, num_classes)
    _check_values(images, labels, test_images, test_labels)
    device = torch.device(device) if device is not None else images.device
    images, labels = images.to(device), labels.to(device)
    targets = soft_labels.to(device, torch.float32) if soft_labels is not None else labels
    c, h, w = images.shape[1:]
    accs, train_accs = [], []
    bar = tqdm(total=runs * (epochs + 1), desc=f"eval {arch}", unit="epoch", disable=not progress)
    for r in range(runs):
        net = get_network(arch, c, num_classes, (h, w), seed=derive_seed(seed, r, 0), device=device)
        aug = DSA(dsa_strategy, align_corners=align_corners, seed=derive_seed(seed, r, 1)) if dsa else None
        order = seeded_generator(derive_seed(seed, r, 2))
        acc, train_acc = train_and_test(
            net, images, targets, test_images, test_labels, epochs=epochs, lr=lr, optimizer=optimizer,
            batch=batch, dsa=aug, generator=order, progress=bar,
        )
        accs.append(acc)
        train_accs.append(train_acc)
        bar.set_postfix(last=f"{100 * acc:.2f}%")
    bar.close()
    return EvalResult(arch, accs, train_accs, epochs, lr, optimizer)
