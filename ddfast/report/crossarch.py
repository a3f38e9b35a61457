"""Cross-architecture evaluation: one synthetic set, several network families, a table like DD-RUO's Table A5.

Each architecture is evaluated with the protocol of :func:`ddfast.evaluate` and its own default
optimizer: DD-RUO (Sec. A2) trains AlexNet, VGG-11 and ResNet-18 with Adam at lr 0.02 and its ViT
with Adam at 0.015 (dropout 0.01, built into the network); the ConvNet family keeps the
references' SGD. The report is a Markdown table (mean ± std per architecture, in %) and a JSON
record with every run's accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ddfast.distill.networks import NETWORK_NAMES, get_network
from ddfast.errors import ConfigError
from ddfast.eval import EvalResult

_OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}


def parse_architectures(text: str) -> list[str]:
    """``"ConvNet,AlexNet"`` -> ``["ConvNet", "AlexNet"]``; ConfigError for an unknown or repeated name."""
    names = [item.strip() for item in text.split(",")]
    if any(not name for name in names):
        raise ConfigError(f"--arch takes comma-separated network names such as ConvNet,AlexNet; got {text!r}")
    unknown = [name for name in names if name not in NETWORK_NAMES]
    if unknown:
        raise ConfigError(f"unknown network {unknown[0]!r}; known: {', '.join(NETWORK_NAMES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--arch lists a network twice: {text!r}")
    return names


def check_architectures(names: Sequence[str], channels: int, image_size: tuple[int, int]) -> None:
    """Build every network once, without allocating its weights, so that a network that cannot take
    these images (e.g. VGG11 below 32 pixels) fails before any training."""
    with torch.device("meta"):
        for name in names:
            try:
                get_network(name, channels, 1, image_size)
            except ConfigError as err:
                raise ConfigError(f"{name} cannot classify {image_size[0]}x{image_size[1]}x{channels} "
                                  f"images: {err}") from None


@dataclass
class CrossArchReport:
    """The evaluations of one synthetic set with several architectures.

    Attributes:
        source: what was evaluated (a file name); test: the test data (a dataset name or a file).
        results: one :class:`ddfast.eval.EvalResult` per architecture, in the order evaluated.
    """

    source: str
    test: str
    results: list[EvalResult]
    dsa: bool
    seed: int

    def markdown(self) -> str:
        """A caption and a Markdown table: Classifier | Accuracy (%) as mean ± std | Optimizer | lr | Runs."""
        lines = [f"Test accuracy (%) on {self.test} of fresh networks trained on {self.source} "
                 f"(mean ± std over runs; layout of DD-RUO, Table A5).", "",
                 "| Classifier | Accuracy (%) | Optimizer | lr | Runs × epochs |", "|---|---|---|---|---|"]
        for r in self.results:
            lines.append(f"| {r.arch} | {100 * r.mean:.1f} ± {100 * r.std:.1f} | {_OPTIMIZER_NAMES[r.optimizer]} "
                         f"| {r.lr:g} | {len(r.accuracies)} × {r.epochs} |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: the inputs and, per architecture, every run's accuracy (fractions)."""
        return {
            "synthetic": self.source, "test": self.test, "dsa": self.dsa, "seed": self.seed,
            "results": [{"arch": r.arch, "mean": r.mean, "std": r.std, "accuracies": r.accuracies,
                         "epochs": r.epochs, "runs": len(r.accuracies), "optimizer": r.optimizer, "lr": r.lr}
                        for r in self.results],
        }
