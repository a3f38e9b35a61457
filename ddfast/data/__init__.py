"""Dataset readers: real data from the layouts people already have on disk, no torchvision.

``load(name, root=None, split="train", **options)`` returns an :class:`ImageDataset` (all
images in memory, labels, class names and the reference normalization statistics).
Supported: CIFAR-10/100 (torchvision's python folders), Fashion-MNIST (IDX files, plain or
gzipped; Debian's ``dataset-fashion-mnist`` by default), the six 128x128 ImageNet subsets of
the distillation literature (ImageNet-style class-folder trees), any class-folder tree
(``imagefolder``), and a small Fashion-MNIST subset bundled with the package (``bundled``).
"""
from ddfast.data.dataset import ImageDataset
from ddfast.data.fashion_mnist import FASHION_MNIST_CLASSES
from ddfast.data.imagenet import IMAGENET_SUBSETS, subset_classes
from ddfast.data.registry import (
    DATASET_ALIASES,
    DATASET_NAMES,
    canonical_name,
    load,
    valid_splits,
)
from ddfast.data.stats import (
    CIFAR10_STATS,
    CIFAR100_DC_STATS,
    CIFAR100_STATS,
    FASHION_MNIST_STATS,
    IMAGENET_STATS,
)

__all__ = [
    "CIFAR10_STATS",
    "CIFAR100_DC_STATS",
    "CIFAR100_STATS",
    "DATASET_ALIASES",
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_STATS",
    "IMAGENET_STATS",
    "IMAGENET_SUBSETS",
    "ImageDataset",
    "canonical_name",
    "load",
    "subset_classes",
    "valid_splits",
]
