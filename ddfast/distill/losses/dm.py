"""Distribution matching (DM) as a reusable loss: ``loss = dm(images_syn, labels_syn)``.

Per call: a fresh randomly initialized network (frozen, in train mode); for every class, one
Siamese DSA seed for its real batch and its synthetic images; the loss is
Σ_c ‖mean φ(A(x_real,c)) − mean φ(A(x_syn,c))‖², φ = the network's ``embed`` (flattened
features), real embeddings detached. Networks with BatchNorm embed all classes in one forward
pass, as the reference does.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from ddfast.distill.dsa import DSA
from ddfast.distill.networks import has_batchnorm
from ddfast.distill.realdata import ClassSampler
from ddfast.distill.seeding import fresh_seed, seeded_generator
from ddfast.errors import ConfigError


class DistributionMatching:
    """The DM loss.

    Args:
        sampler: real images by class (in the network's input space).
        net_factory: ``seed -> fresh network`` (see ``networks.network_factory``); the network
            needs an ``embed`` method.
        batch_real: real images per class per call.
        dsa: Siamese DSA, one seed per class (``None``: no augmentation).
        seed: seed of the loss's random stream (network seeds are drawn from it).
    """

    def __init__(
        self,
        sampler: ClassSampler,
        net_factory: Callable[[int | None], nn.Module],
        *,
        batch_real: int = 256,
        dsa: DSA | None = None,
        seed: int | None = None,
    ) -> None:
        self.sampler = sampler
        self.net_factory = net_factory
        self.batch_real = batch_real
        self.dsa = dsa
        self.generator = seeded_generator(seed)

    def _network(self, device: torch.device) -> nn.Module:
        net = self.net_factory(fresh_seed(self.generator)).to(device).train()
        if not hasattr(net, "embed"):
            raise ConfigError(f"{type(net).__name__} has no embed(); DM needs feature embeddings")
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    def __call__(self, images_syn: torch.Tensor, labels_syn: torch.Tensor,
                 classes: Sequence[int] | None = None) -> torch.Tensor:
        """Σ over classes of the squared distance between mean real and synthetic embeddings.

        ``classes`` (default: the labels present) are the classes whose real batch and DSA seed
        are drawn, in order; one without images here adds nothing. A rank of a distributed run
        holds some classes' images and passes every class, so it draws what one process draws.
        """
        net = self._network(images_syn.device)
        present = torch.unique(labels_syn).tolist()
        order = present if classes is None else list(classes)
        if not set(present) <= set(order):
            raise ConfigError(f"labels {sorted(set(present) - set(order))} are not among the classes {order}")
        reals, syns = [], []
        for c in order:
            real = self.sampler.sample(c, self.batch_real).to(images_syn.device)
            seed = self.dsa.draw_seed() if self.dsa is not None else None
            if c not in present:
                continue
            syn = images_syn[labels_syn == c]
            if self.dsa is not None:
                real = self.dsa(real, seed=seed, siamese=True)
                syn = self.dsa(syn, seed=seed, siamese=True)
            reals.append(real)
            syns.append(syn)
        if has_batchnorm(net):
            emb_real = net.embed(torch.cat(reals)).detach().split([r.shape[0] for r in reals])
            emb_syn = net.embed(torch.cat(syns)).split([s.shape[0] for s in syns])
        else:
            emb_real = [net.embed(r).detach() for r in reals]
            emb_syn = [net.embed(s) for s in syns]
        loss = images_syn.new_zeros(())
        for er, es in zip(emb_real, emb_syn):
            loss = loss + (er.mean(0) - es.mean(0)).pow(2).sum()
        return loss
