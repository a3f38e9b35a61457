"""The networks of the dataset-distillation references, built by name with ``get_network``.

Module names and registration order follow mtt-distillation's ``networks.py``, so
``parameters()`` — and therefore the flat vector ``torch.cat([p.flatten() for p in
net.parameters()])`` stored in expert buffers — is ordered exactly as in the references, and
reference state dicts load as they are. ``"instancenorm"`` is ``GroupNorm(C, C, affine=True)``
as in the references (not ``nn.InstanceNorm2d``).

Deliberate differences: no clock reseeding (pass ``seed`` for a reproducible initialization),
no device placement or ``DataParallel``, and classifier input sizes are computed for any image
size instead of being fixed for 32-pixel inputs (identical at 32 px, and at 28 px with one
channel). ``"ViT"`` is DD-RUO's ViT with its patch side chosen per resolution (:func:`vit_patch`;
16 px at 128 px, as DD-RUO ran it). Every network has ``embed(x)`` (the flattened features before
the final linear layer), which distribution matching uses.
"""
from __future__ import annotations

import abc

import math
from typing import Any, Callable, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddfast.distill.vit import ViT
from ddfast.errors import ConfigError

ImageSize = Union[int, Sequence[int]]


class Classifier(nn.Module, abc.ABC):
    """Base class of every network here: ``forward(x) = head(embed(x))``."""

    @abc.abstractmethod
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features that the final linear layer classifies."""

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The final linear layer."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _norm(kind: str, channels: int, spatial: tuple[int, int] = (1, 1)) -> nn.Module | None:
    if kind == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "layernorm":
        return nn.LayerNorm([channels, *spatial], elementwise_affine=True)
    if kind == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    if kind == "none":
        return None
    raise ConfigError(f"unknown normalization {kind!r}")


def _activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.01)
    raise ConfigError(f"unknown activation {kind!r}")


def _pooling(kind: str) -> nn.Module | None:
    if kind == "avgpooling":
        return nn.AvgPool2d(kernel_size=2, stride=2)
    if kind == "maxpooling":
        return nn.MaxPool2d(kernel_size=2, stride=2)
    if kind == "none":
        return None
    raise ConfigError(f"unknown pooling {kind!r}")


def _check_size(name: str, h: int, w: int, image_size: tuple[int, int]) -> None:
    if h < 1 or w < 1:
        raise ConfigError(f"image size {image_size} is too small for {name}")


# -- ConvNet family ------------------------------------------------------------------------------
class ConvNet(Classifier):
    """``depth`` × [3×3 conv (width) → norm → activation → 2×2 pool], then a linear layer.

    The first convolution uses padding 3 when the input has one channel (so 28-pixel images
    behave as 32-pixel ones), padding 1 otherwise.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        width: int = 128,
        depth: int = 3,
        act: str = "relu",
        norm: str = "instancenorm",
        pooling: str = "avgpooling",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        h, w = image_size
        in_ch = channels
        for d in range(depth):
            pad = 3 if channels == 1 and d == 0 else 1
            layers.append(nn.Conv2d(in_ch, width, kernel_size=3, padding=pad))
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            norm_layer = _norm(norm, width, (h, w))
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(_activation(act))
            pool = _pooling(pooling)
            if pool is not None:
                layers.append(pool)
                h, w = h // 2, w // 2
            in_ch = width
        _check_size(f"a depth-{depth} ConvNet", h, w, image_size)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * h * w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


class MLP(Classifier):
    """Linear layers 128 → 128 → classes on the flattened image."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.fc_1 = nn.Linear(channels * image_size[0] * image_size[1], 128)
        self.fc_2 = nn.Linear(128, 128)
        self.fc_3 = nn.Linear(128, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc_2(F.relu(self.fc_1(x.flatten(1)))))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc_3(features)


class LeNet(Classifier):
    """LeNet-5 (padding 2 on the first convolution for one-channel input)."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        pad = 2 if channels == 1 else 0
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        h, w = (((s + 2 * pad - 4) // 2 - 4) // 2 for s in image_size)
        _check_size("LeNet", h, w, image_size)
        self.fc_1 = nn.Linear(16 * h * w, 120)
        self.fc_2 = nn.Linear(120, 84)
        self.fc_3 = nn.Linear(84, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        return F.relu(self.fc_2(F.relu(self.fc_1(x))))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc_3(features)


class AlexNet(Classifier):
    """The references' small AlexNet: five convolutions (128-192-256-192-192), three max-pools."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        pad = 4 if channels == 1 else 2
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, kernel_size=5, stride=1, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(128, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(192, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(192, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        h, w = ((s + 2 * pad - 4) // 8 for s in image_size)
        _check_size("AlexNet", h, w, image_size)
        self.fc = nn.Linear(192 * h * w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(Classifier):
    """VGG-11 with instance norm (GroupNorm(C, C)) or batch norm after every convolution."""

    def __init__(
        self, channels: int, num_classes: int, image_size: tuple[int, int], norm: str = "instancenorm"
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = channels
        h, w = image_size
        for i, item in enumerate(_VGG11):
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                h, w = h // 2, w // 2
                continue
            pad = 3 if channels == 1 and i == 0 else 1
            layers += [nn.Conv2d(in_ch, item, kernel_size=3, padding=pad), _norm(norm, item), nn.ReLU(inplace=True)]
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            in_ch = item
        layers.append(nn.AvgPool2d(kernel_size=1, stride=1))
        _check_size("VGG11", h, w, image_size)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512 * h * w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


# -- ResNets -------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """ResNet basic block; with ``avgpool_stride`` a stride-2 block convolves at stride 1 and
    then average-pools (the references' ResNet18_AP "modification")."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str, avgpool_stride: bool) -> None:
        super().__init__()
        self.stride = stride
        self.avgpool_stride = avgpool_stride
        conv_stride = 1 if avgpool_stride else stride
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=conv_stride, padding=1, bias=False)
        self.bn1 = _norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = _norm(norm, planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if avgpool_stride:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=1, bias=False),
                    nn.AvgPool2d(kernel_size=2, stride=2),
                    _norm(norm, planes),
                )
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                    _norm(norm, planes),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.avgpool_stride and self.stride != 1:
            out = F.avg_pool2d(out, kernel_size=2, stride=2)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(Classifier):
    """ResNet-18 of the references.

    ``variant``: ``"cifar"`` (3×3 stem, 4×4 average pool before the classifier),
    ``"ap"`` (stride replaced by average pooling, no final pooling) or ``"imagenet"``
    (7×7 stride-2 stem, max pool, global average pool).
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        norm: str = "instancenorm",
        variant: str = "cifar",
    ) -> None:
        super().__init__()
        self.variant = variant
        ap = variant == "ap"
        if variant == "imagenet":
            self.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = _norm(norm, 64)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = _norm(norm, 64)
        in_planes = 64
        for i, planes in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(in_planes, planes, stride, norm, ap), BasicBlock(planes, planes, 1, norm, ap)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            in_planes = planes
        h, w = (self._final_size(s) for s in image_size)
        _check_size(f"ResNet18 ({variant})", h, w, image_size)
        self.classifier = nn.Linear(512 * h * w, num_classes)

    def _final_size(self, s: int) -> int:
        if self.variant == "imagenet":
            return 1
        if self.variant == "ap":
            return s // 8
        for _ in range(3):
            s = (s - 1) // 2 + 1
        return s // 4

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.variant == "imagenet":
            out = self.maxpool(out)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.variant == "imagenet":
            out = F.adaptive_avg_pool2d(out, 1)
        elif self.variant == "cifar":
            out = F.avg_pool2d(out, 4)
        return out.flatten(1)


def batchnorm_layers(net: nn.Module) -> list[nn.Module]:
    """The BatchNorm modules of ``net`` (any dimensionality), in ``modules()`` order."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batchnorm(net: nn.Module) -> bool:
    """Whether ``net`` contains a BatchNorm layer (its output then depends on the whole batch)."""
    return bool(batchnorm_layers(net))


# -- registry ------------------------------------------------------------------------------------
VIT_TOKENS = 64  # DD-RUO's ViT: 16-pixel patches on 128-pixel images, an 8 x 8 token grid


def vit_patch(image_size: tuple[int, int]) -> int:
    """The patch side that gives the ``"ViT"`` network a token grid closest to DD-RUO's 8 × 8.

    DD-RUO (Table A5) ran its ViT only on 128-pixel images, with 16-pixel patches; the same patch
    would leave 4 tokens at 32 px and does not divide 28 px. The patch is the divisor p of both
    sides whose (H/p)·(W/p) tokens are nearest to 64 on a log scale (ties: the larger patch):
    16 at 128 px, 8 at 64 px, 4 at 32 px (8 × 8 tokens) and at 28 px (7 × 7).
    """
    h, w = image_size
    divisors = [p for p in range(1, min(h, w) + 1) if h % p == 0 and w % p == 0]
    return min(divisors, key=lambda p: (abs(math.log((h // p) * (w // p) / VIT_TOKENS)), -p))


Builder = Callable[[int, int, tuple[int, int]], nn.Module]


def _convnet(**options: Any) -> Builder:
    return lambda c, k, size: ConvNet(c, k, size, **options)


_BUILDERS: dict[str, Builder] = {
    "ConvNet": _convnet(),
    **{f"ConvNetD{d}": _convnet(depth=d) for d in range(1, 9)},
    **{f"ConvNetW{w}": _convnet(width=w) for w in (32, 64, 128, 256, 512, 1024)},
    "ConvNetKIP": _convnet(width=1024, norm="none"),
    "ConvNetAS": _convnet(act="sigmoid"),
    "ConvNetAR": _convnet(act="relu"),
    "ConvNetAL": _convnet(act="leakyrelu"),
    "ConvNetNN": _convnet(norm="none"),
    "ConvNetBN": _convnet(norm="batchnorm"),
    "ConvNetLN": _convnet(norm="layernorm"),
    "ConvNetIN": _convnet(norm="instancenorm"),
    "ConvNetGN": _convnet(norm="groupnorm"),
    "ConvNetNP": _convnet(pooling="none"),
    "ConvNetMP": _convnet(pooling="maxpooling"),
    "ConvNetAP": _convnet(pooling="avgpooling"),
    "MLP": MLP,
    "LeNet": LeNet,
    "AlexNet": AlexNet,
    "VGG11": VGG,
    "VGG11BN": lambda c, k, size: VGG(c, k, size, norm="batchnorm"),
    "ResNet18": ResNet18,
    "ResNet18BN": lambda c, k, size: ResNet18(c, k, size, norm="batchnorm"),
    "ResNet18_AP": lambda c, k, size: ResNet18(c, k, size, variant="ap"),
    "ResNet18BN_AP": lambda c, k, size: ResNet18(c, k, size, norm="batchnorm", variant="ap"),
    "ResNet18ImageNet": lambda c, k, size: ResNet18(c, k, size, variant="imagenet"),
    "ViT": lambda c, k, size: ViT(c, k, size, patch=vit_patch(size)),
}

NETWORK_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def image_size_tuple(image_size: ImageSize) -> tuple[int, int]:
    """``32`` or ``(32, 32)`` → ``(32, 32)``; anything else raises ConfigError."""
    if isinstance(image_size, int):
        size = (image_size, image_size)
    else:
        size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"image_size must be an int or (H, W), got {image_size!r}")
    return size  # type: ignore[return-value]


def get_network(
    name: str,
    channels: int,
    num_classes: int,
    image_size: ImageSize,
    *,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Build the reference network ``name`` for C×H×W inputs and ``num_classes`` outputs.

    With ``seed`` the initialization is reproducible and the global RNG is left untouched;
    without it, torch's global RNG is used (never the wall clock). Names: ``NETWORK_NAMES``.
    The network's ``input_shape`` attribute is ``(channels, H, W)``.
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ConfigError(f"unknown network {name!r}; known: {', '.join(NETWORK_NAMES)}")
    if channels < 1 or num_classes < 1:
        raise ConfigError(f"channels and num_classes must be positive, got {channels}, {num_classes}")
    size = image_size_tuple(image_size)
    if seed is None:
        net = builder(channels, num_classes, size)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = builder(channels, num_classes, size)
    net.input_shape = (channels, *size)
    return net.to(device) if device is not None else net


def default_convnet(image_size: ImageSize) -> str:
    """The ConvNet the references use at this resolution: depth 3 up to 32 px (``"ConvNet"``),
    one more block per doubling (``"ConvNetD4"`` at 64 px, ``"ConvNetD5"`` at 128 px)."""
    side = min(image_size_tuple(image_size))
    depth = 3 + max(0, round(math.log2(side / 32))) if side > 32 else 3
    return "ConvNet" if depth == 3 else f"ConvNetD{depth}"


def network_factory(
    name: str, channels: int, num_classes: int, image_size: ImageSize, device: torch.device | str | None = None
) -> Callable[[int | None], nn.Module]:
    """A function ``seed -> fresh network`` (used by losses that need a new net per step)."""
    get_network(name, channels, num_classes, image_size, seed=0)  # validate once, early
    return lambda seed=None: get_network(name, channels, num_classes, image_size, seed=seed, device=device)
