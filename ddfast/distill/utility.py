"""The distillation losses as drivers of the joint phase: what one iteration of DM, GM or TM does.

Each driver calls ``update(loss_fn, ...)`` (one codec update, see ``ddfast.distill.joint``) as
many times as its method takes per iteration, and carries its random streams for resuming:

- DM: one update per iteration with a fresh frozen random network (inside the loss).
- GM: a fresh random network per iteration; ``outer`` updates, each followed (but the last) by
  ``inner`` epochs of network training on the just-decoded images -- the DC loop.
- TM: one update per iteration on the images the unroll's minibatches use (drawn first, so only
  those are decoded), then the learnable syn_lr steps with SGD(lr_lr, momentum 0.5) and is
  clamped to >= min_syn_lr, as DD-RUO does.

For a run over several processes (``ddfast.distill.distributed``) a driver says what its loss
needs: ``per_class_loss`` -- the loss is a sum of per-class terms, each seeing only its class's
images, so every rank computes its own classes' terms (DM without BatchNorm, GM); otherwise
(TM: the unroll's minibatches mix classes) every rank sees every class's images.
``reads_step_images`` -- ``run_iteration`` reads the images of every class from the update's
result (GM trains its network on them).
"""
from __future__ import annotations

from typing import Any

import torch

from ddfast.distill.joint import Update
from ddfast.distill.losses import DistributionMatching, GradientMatching, TrajectoryMatching
from ddfast.distill.networks import get_network, has_batchnorm
from ddfast.distill.realdata import ClassSampler
from ddfast.distill.seeding import derive_seed


def _streams_state(sampler: ClassSampler, loss: Any) -> dict[str, Any]:
    state = {"sampler": sampler.generator.get_state(), "loss": loss.generator.get_state()}
    if loss.dsa is not None:
        state["dsa"] = loss.dsa.generator.get_state()
    return state


def _load_streams(sampler: ClassSampler, loss: Any, state: dict[str, Any]) -> None:
    sampler.generator.set_state(state["sampler"])
    loss.generator.set_state(state["loss"])
    if loss.dsa is not None:
        loss.dsa.generator.set_state(state["dsa"])


class DMUtility:
    """Distribution matching: one codec update per iteration."""

    reads_step_images = False

    def __init__(self, dm: DistributionMatching) -> None:
        self.dm = dm

    @property
    def per_class_loss(self) -> bool:
        """True unless the network has BatchNorm, whose batch statistics mix the classes."""
        return not has_batchnorm(self.dm.net_factory(0))

    def run_iteration(self, iteration: int, update: Update) -> float:
        classes = range(self.dm.sampler.num_classes)
        return update(lambda images, labels: self.dm(images, labels, classes=classes)).loss

    def state_dict(self) -> dict[str, Any]:
        return _streams_state(self.dm.sampler, self.dm)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _load_streams(self.dm.sampler, self.dm, state)


class GMUtility:
    """Gradient matching: ``outer`` codec updates per iteration on one fresh network, ``inner``
    training epochs of that network between them.

    Args:
        gm: the loss (owns the sampler, DSA and the inner loop's optimizer settings).
        arch, channels, num_classes, image_size: the network to build each iteration.
        loops: (outer, inner), e.g. ``ddfast.distill.get_loops(spc)``.
        seed: the networks are seeded from (seed, iteration).
    """

    per_class_loss = True
    reads_step_images = True

    def __init__(self, gm: GradientMatching, arch: str, channels: int, num_classes: int,
                 image_size: tuple[int, int], loops: tuple[int, int], seed: int) -> None:
        self.gm = gm
        self.arch, self.channels, self.num_classes, self.image_size = arch, channels, num_classes, tuple(image_size)
        self.outer, self.inner = loops
        self.seed = seed

    def run_iteration(self, iteration: int, update: Update) -> float:
        net = get_network(self.arch, self.channels, self.num_classes, self.image_size,
                          seed=derive_seed(self.seed, 3, iteration))
        self.gm.set_network(net)
        total = 0.0
        classes = range(self.num_classes)
        for k in range(self.outer):
            result = update(lambda images, labels: self.gm(images, labels, classes=classes))
            total += result.loss
            if k < self.outer - 1:
                self.gm.train_network(result.images, result.labels, self.inner)
        return total / self.outer

    def state_dict(self) -> dict[str, Any]:
        return _streams_state(self.gm.sampler, self.gm)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _load_streams(self.gm.sampler, self.gm, state)


class TMUtility:
    """Trajectory matching with a learnable syn_lr; decodes only the images the unroll uses."""

    per_class_loss = False
    reads_step_images = False

    def __init__(self, tm: TrajectoryMatching, num_images: int, lr_lr: float = 1e-5,
                 min_syn_lr: float | None = 0.001) -> None:
        self.tm = tm
        self.num_images = num_images
        self.min_syn_lr = min_syn_lr
        self.optimizer = torch.optim.SGD(tm.parameters(), lr=lr_lr, momentum=0.5)

    def run_iteration(self, iteration: int, update: Update) -> float:
        plan = self.tm.draw_plan(self.num_images, self.tm.syn_lr.device)
        needed = plan.images_needed()
        subset = needed if len(needed) < self.num_images else None
        if subset is not None:
            plan = plan.on_subset(needed)
        result = update(lambda images, labels: self.tm(images, labels, plan=plan), subset=subset,
                        loss_parameters=self.tm.parameters())
        self.optimizer.step()
        if self.min_syn_lr is not None:
            self.tm.clamp_syn_lr_(self.min_syn_lr)
        return result.loss

    @property
    def syn_lr(self) -> float:
        return float(self.tm.syn_lr.detach())

    def state_dict(self) -> dict[str, Any]:
        state = {"loss": self.tm.generator.get_state(), "experts": self.tm.experts.state_dict(),
                 "syn_lr": self.tm.syn_lr.detach().clone(), "optimizer": self.optimizer.state_dict()}
        if self.tm.dsa is not None:
            state["dsa"] = self.tm.dsa.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tm.generator.set_state(state["loss"])
        self.tm.experts.load_state_dict(state["experts"])
        with torch.no_grad():
            self.tm.syn_lr.copy_(state["syn_lr"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.tm.dsa is not None:
            self.tm.dsa.generator.set_state(state["dsa"])
