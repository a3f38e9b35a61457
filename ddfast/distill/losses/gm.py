"""Gradient matching (DC/DSA, "GM" in DD-RUO) as a reusable loss plus its inner-loop driver.

One *outer iteration* of the reference: a fresh random network; then ``outer_loop`` times:
(1) ``gm(images_syn, labels_syn)`` — for every class, the gradient of CE on ``batch_real`` real
images (detached) and on the class's synthetic images (differentiable), with one Siamese DSA
seed per class, summed distance; the caller steps the images; (2) unless it was the last outer
step, ``gm.train_network(...)`` trains the network ``inner_loop`` epochs on the (detached)
synthetic set. ``get_loops(ipc)`` gives (outer_loop, inner_loop).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddfast.distill.dsa import DSA
from ddfast.distill.networks import batchnorm_layers
from ddfast.distill.realdata import ClassSampler
from ddfast.distill.seeding import seeded_generator
from ddfast.distill.training import model_device, train_epoch
from ddfast.errors import ConfigError

# (outer_loop, inner_loop) by images per class: DC, plus FreD/DDiF (2, 11, 51) and DD-RUO (64, 96).
LOOPS: dict[int, tuple[int, int]] = {
    1: (1, 1), 2: (1, 1), 10: (10, 50), 11: (10, 50), 20: (20, 25), 30: (30, 20),
    40: (40, 15), 50: (50, 10), 51: (50, 10), 64: (50, 10), 96: (50, 10),
}
METRICS = ("ours", "mse", "cos")


def get_loops(ipc: int) -> tuple[int, int]:
    """``(outer_loop, inner_loop)`` of the reference table for ``ipc`` images per class."""
    if ipc not in LOOPS:
        raise ConfigError(f"no gradient-matching loop setting for {ipc} images per class; known: {sorted(LOOPS)}")
    return LOOPS[ipc]


def _layer_distance(g_real: torch.Tensor, g_syn: torch.Tensor) -> torch.Tensor:
    """DC's ``distance_wb``: Σ over output rows of 1 − cos; 1-D tensors contribute 0."""
    if g_real.dim() == 1:
        return g_syn.new_zeros(())
    g_real = g_real.reshape(g_real.shape[0], -1)
    g_syn = g_syn.reshape(g_syn.shape[0], -1)
    cos = (g_real * g_syn).sum(-1) / (g_real.norm(dim=-1) * g_syn.norm(dim=-1) + 1e-6)
    return (1 - cos).sum()


def match_distance(g_syn: Sequence[torch.Tensor], g_real: Sequence[torch.Tensor], metric: str = "ours") -> torch.Tensor:
    """Distance between two gradient lists: ``"ours"`` (layer-wise, DC), ``"mse"`` or ``"cos"``."""
    if metric == "ours":
        return sum((_layer_distance(r, s) for r, s in zip(g_real, g_syn)), g_syn[0].new_zeros(()))
    syn = torch.cat([g.reshape(-1) for g in g_syn])
    real = torch.cat([g.reshape(-1) for g in g_real])
    if metric == "mse":
        return (syn - real).pow(2).sum()
    if metric == "cos":
        return 1 - (real * syn).sum() / (real.norm() * syn.norm() + 1e-6)
    raise ConfigError(f"unknown gradient distance {metric!r}; known: {', '.join(METRICS)}")


class GradientMatching:
    """The GM loss for the current network, and the network's inner-loop training.

    Args:
        sampler: real images by class (in the network's input space).
        metric: ``"ours"`` (reference default), ``"mse"`` or ``"cos"``.
        batch_real: real images per class per matching step.
        dsa: Siamese DSA for matching and non-Siamese DSA for the inner loop (``None``: none).
        lr_net: SGD learning rate (no momentum) of the inner loop.
        batch_train: minibatch of the inner loop.
        bn_images_per_class: real images per class used to set BatchNorm statistics before
            matching (only for networks with BatchNorm).
        seed: seed of the inner loop's shuffling (``None``: drawn from torch's global RNG).
    """

    def __init__(
        self,
        sampler: ClassSampler,
        *,
        metric: str = "ours",
        batch_real: int = 256,
        dsa: DSA | None = None,
        lr_net: float = 0.01,
        batch_train: int = 256,
        bn_images_per_class: int = 16,
        seed: int | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ConfigError(f"unknown gradient distance {metric!r}; known: {', '.join(METRICS)}")
        self.sampler = sampler
        self.metric = metric
        self.batch_real = batch_real
        self.dsa = dsa
        self.lr_net = lr_net
        self.batch_train = batch_train
        self.bn_images_per_class = bn_images_per_class
        self.generator = seeded_generator(seed)
        self.net: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def set_network(self, net: nn.Module, device: torch.device | str | None = None) -> None:
        """Start an outer iteration with ``net`` (a fresh random network) and its SGD optimizer.

        The network goes to ``device`` (default: the sampler's); a call with synthetic images on
        another device moves it there (and rebuilds its stateless optimizer).
        """
        self.net = net.to(self.sampler.device if device is None else device).train()
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=self.lr_net)

    def _require_net(self) -> nn.Module:
        if self.net is None:
            raise ConfigError("call set_network(net) before using the gradient-matching loss")
        return self.net

    def _freeze_batchnorm(self, net: nn.Module, device: torch.device) -> None:
        bns = batchnorm_layers(net)
        if not bns:
            return
        real = torch.cat([self.sampler.sample(c, self.bn_images_per_class) for c in range(self.sampler.num_classes)])
        net.train()
        with torch.no_grad():
            net(real.to(device))
        for m in bns:
            m.eval()

    def __call__(self, images_syn: torch.Tensor, labels_syn: torch.Tensor,
                 classes: Sequence[int] | None = None) -> torch.Tensor:
        """Σ over classes of the gradient distance between real and synthetic batches.

        The network and the real batches are moved to ``images_syn.device`` (the sampler may
        keep the real set elsewhere, e.g. on the CPU). ``classes`` (default: the labels present)
        are the classes whose real batch and DSA seed are drawn, in order; one without images
        here adds nothing (a rank of a distributed run passes every class, so it draws what one
        process draws).
        """
        device = images_syn.device
        net = self._require_net()
        if model_device(net) != device:
            self.set_network(net, device)
            net = self._require_net()
        self._freeze_batchnorm(net, device)
        params = [p for p in net.parameters() if p.requires_grad]
        loss = images_syn.new_zeros(())
        present = torch.unique(labels_syn).tolist()
        order = present if classes is None else list(classes)
        if not set(present) <= set(order):
            raise ConfigError(f"labels {sorted(set(present) - set(order))} are not among the classes {order}")
        for c in order:
            real = self.sampler.sample(c, self.batch_real).to(device)
            seed = self.dsa.draw_seed() if self.dsa is not None else None
            if c not in present:
                continue
            syn = images_syn[labels_syn == c]
            if self.dsa is not None:
                real = self.dsa(real, seed=seed, siamese=True)
                syn = self.dsa(syn, seed=seed, siamese=True)
            y_real = torch.full((real.shape[0],), c, dtype=torch.long, device=real.device)
            g_real = torch.autograd.grad(F.cross_entropy(net(real), y_real), params)
            g_real = [g.detach() for g in g_real]
            y_syn = torch.full((syn.shape[0],), c, dtype=torch.long, device=syn.device)
            g_syn = torch.autograd.grad(F.cross_entropy(net(syn), y_syn), params, create_graph=True)
            loss = loss + match_distance(g_syn, g_real, self.metric)
        return loss

    def train_network(self, images_syn: torch.Tensor, labels_syn: torch.Tensor, epochs: int) -> None:
        """The inner loop: ``epochs`` epochs of SGD on a detached copy of the synthetic set."""
        net = self._require_net()
        images, labels = images_syn.detach().clone(), labels_syn.detach().clone()
        for _ in range(epochs):
            train_epoch(
                net, images, labels, self.optimizer, batch_size=self.batch_train, dsa=self.dsa, generator=self.generator
            )
