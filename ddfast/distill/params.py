"""One flat parameter vector per network, in ``parameters()`` order (the expert-buffer layout).

``FlatModel`` runs a network functionally on such a vector (``torch.func.functional_call`` with
views into it), which is how trajectory matching unrolls a student without copying weights into
modules — the role of the references' ``ReparamModule``.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
from torch.func import functional_call

from ddfast.errors import ConfigError


def flatten_params(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (e.g. ``net.parameters()`` or one buffer snapshot) into one vector."""
    return torch.cat([p.reshape(-1) for p in params])


class FlatModel:
    """A network driven by one flat parameter vector.

    ``model(flat, x)`` equals ``net(x)`` with ``net``'s parameters replaced by the slices of
    ``flat`` (in ``parameters()`` order); gradients flow to ``flat``.
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        named = list(net.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.num_params = sum(self.numels)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``flat`` shaped like the network's parameters, keyed by name."""
        if flat.numel() != self.num_params:
            raise ConfigError(
                f"parameter vector has {flat.numel()} values but the network has {self.num_params}"
            )
        views = torch.split(flat, self.numels)
        return {n: v.reshape(s) for n, v, s in zip(self.names, views, self.shapes)}

    def __call__(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.net, self.unflatten(flat), (x,))
