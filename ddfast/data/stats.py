"""Normalization statistics used by the reference distillation code.

Distilled sets are evaluated the way the references do it, so a dataset carries the exact
per-channel mean/std that MTT / DC / DD-RUO normalize with (the ``get_dataset`` of their ``utils.py``).
Values are given on [0, 1] pixels.
"""
from __future__ import annotations

Stats = tuple[tuple[float, ...], tuple[float, ...]]

#: CIFAR-10 (MTT, DC, DD-RUO).
CIFAR10_STATS: Stats = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))

#: CIFAR-100 as MTT (and so DD-RUO) normalizes it: MTT reuses the CIFAR-10 values.
#: This is what ``load("cifar100")`` reports as ``mean``/``std``.
CIFAR100_STATS: Stats = CIFAR10_STATS

#: CIFAR-100's own statistics, as VICO-UoE/DatasetCondensation (DC/DSA/DM) uses them.
#: Not the default; pass them explicitly when reproducing DC-family numbers.
CIFAR100_DC_STATS: Stats = ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))

#: Fashion-MNIST as VICO-UoE/DatasetCondensation normalizes it.
FASHION_MNIST_STATS: Stats = ((0.2861,), (0.3530,))

#: ImageNet-1k statistics, used for the 128x128 ImageNet subsets (and Tiny ImageNet).
IMAGENET_STATS: Stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
