"""The joint rate-utility phase of DD-RUO (phase 2): a utility loss on decoded images plus the rate.

Per codec update (the reference's ``TensorPool.backward``, in one pass): decode the synthetic set
in train mode (softround with Gaussian noise), compute the utility loss U (TM, GM or DM) on the
decoded images in the network's input space and the rate of every slice, and give every slice
the gradient

    g_s = lr_it * dU/dtheta_s + ldb_it * ldb * d bpp_s / dtheta_s,   bpp_s = bits_s / (n_s H W),

clipped to norm ``max_grad_norm`` (0.1) per slice, then one Adam step (lr 1e-3). The utility is
traded against the rate by lambda = lr_it / (ldb_it * ldb); training runs in stages with their own
ldb_it (the paper's two lambda values), switched at the configured iteration in one run.

The reference decodes without gradients, backpropagates U to the images, then re-runs every
class's codec with gradients and the same noise. Here one forward and one backward of all slices
give the same gradients (``two_pass_gradients`` is that formulation, kept as the test twin).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch

from ddfast.codec import SyntheticSet, clip_grad_norm_per_slice
from ddfast.codec.reference import slice_forward
from ddfast.distill.seeding import derive_seed, seeded_generator
from ddfast.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Stage:
    """A stretch of the joint phase: its iterations and its rate multiplier ldb_it."""

    iterations: int
    ldb_it: float

    def __post_init__(self) -> None:
        if not (isinstance(self.iterations, int) and self.iterations >= 0):
            raise ConfigError(f"stage iterations must be a non-negative integer, got {self.iterations!r}")
        if not (math.isfinite(self.ldb_it) and self.ldb_it > 0):
            raise ConfigError(f"stage ldb_it must be finite and > 0, got {self.ldb_it!r}")


@dataclass(frozen=True)
class RateUtility:
    """How the joint phase weighs utility against rate (the reference's lr_it, ldb, ldb_it per stage)."""

    lr_it: float
    ldb: float
    stages: tuple[Stage, ...]
    lr: float = 1e-3
    max_grad_norm: float = 0.1

    def __post_init__(self) -> None:
        for name in ("lr_it", "ldb", "lr", "max_grad_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be finite and > 0, got {value!r}")
        if not self.stages:
            raise ConfigError("the joint phase needs at least one stage")

    @property
    def iterations(self) -> int:
        return sum(stage.iterations for stage in self.stages)

    def stage_index(self, iteration: int) -> int:
        """The stage that iteration ``iteration`` (0-based) belongs to."""
        end = 0
        for i, stage in enumerate(self.stages):
            end += stage.iterations
            if iteration < end:
                return i
        return len(self.stages) - 1

    def stage_starts(self) -> list[int]:
        """The first iteration of every stage."""
        starts, total = [], 0
        for stage in self.stages:
            starts.append(total)
            total += stage.iterations
        return starts

    def lam(self, stage: int) -> float:
        """lambda = lr_it / (ldb_it * ldb) of a stage: larger favours utility."""
        return self.lr_it / (self.stages[stage].ldb_it * self.ldb)


@dataclass
class StepResult:
    """One codec update: the utility loss, each slice's bits, and the images the loss saw (detached)."""

    loss: float
    bits: torch.Tensor
    bpp: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor


Update = Callable[..., StepResult]


class Utility(Protocol):
    """A distillation loss driven through the joint phase (see ``ddfast.distill.utility``).

    Optional attributes ``per_class_loss`` and ``reads_step_images`` say what a run over several
    processes must share (``ddfast.distill.distributed``); without them every rank sees every image.
    """

    def run_iteration(self, iteration: int, update: Update) -> float:
        """One iteration: one or more ``update(loss_fn, subset=None, loss_parameters=())`` calls;
        returns the mean utility loss."""

    def state_dict(self) -> dict[str, Any]:
        """Random streams and any learnable state of the loss (for exact resuming)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class JointTrainer:
    """The joint phase on a SyntheticSet: fused forward/backward, per-slice clip, Adam.

    Args:
        syn: the set (its parameters are trained in place).
        utility: the loss driver (TM, GM or DM).
        weights: lr_it, ldb, the stages, Adam's lr and the clip norm.
        transform: pixels -> network input space (normalization, optionally ZCA).
        seed: seed of the quantization noise.
    """

    def __init__(self, syn: SyntheticSet, utility: Utility, weights: RateUtility, transform: Transform,
                 seed: int = 0) -> None:
        self.syn = syn
        self.utility = utility
        self.weights = weights
        self.transform = transform
        self.noise = seeded_generator(derive_seed(seed, 4))
        self.optimizer = torch.optim.Adam(syn.parameters(), lr=weights.lr)
        self.iteration = 0
        self.pixels = syn.num_pixels_per_slice.to(torch.float32)

    @property
    def stage(self) -> int:
        return self.weights.stage_index(self.iteration)

    def update(self, loss_fn: LossFn, subset: torch.Tensor | None = None,
               loss_parameters: Sequence[torch.Tensor] = ()) -> StepResult:
        """One codec update with utility ``loss_fn(images, labels)`` (images of ``subset`` only, if
        given). ``loss_parameters`` (e.g. TM's syn_lr) receive the plain dU/dp, not lr_it times it."""
        syn = self.syn.train()
        loss_parameters = list(loss_parameters)  # iterated twice below; may be a generator
        images, labels = self._decode(subset)
        bits = syn.rate_bits()
        inputs = self.transform(images)
        utility = loss_fn(inputs, labels)
        bpp = bits / self.pixels.to(bits.device)
        ldb_it = self.weights.stages[self.stage].ldb_it
        total = self.weights.lr_it * utility + ldb_it * self.weights.ldb * bpp.sum()
        self.optimizer.zero_grad(set_to_none=True)
        for p in loss_parameters:
            p.grad = None
        total.backward()
        for p in loss_parameters:
            if p.grad is not None:
                p.grad.div_(self.weights.lr_it)
        clip_grad_norm_per_slice(syn.parameters(), self.weights.max_grad_norm)
        self.optimizer.step()
        return self._result(utility, bits, bpp, inputs, labels)

    def _decode(self, subset: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The images the loss sees (all, or those of ``subset``) and their labels, with fresh noise."""
        if subset is None:
            return self.syn(generator=self.noise)
        return self.syn.forward_subset(subset, generator=self.noise)

    def _result(self, utility: torch.Tensor, bits: torch.Tensor, bpp: torch.Tensor, inputs: torch.Tensor,
                labels: torch.Tensor) -> StepResult:
        """What one update reports (a distributed trainer adds the other ranks' parts)."""
        return StepResult(float(utility.detach()), bits.detach(), bpp.detach(), inputs.detach(), labels)

    def run_iteration(self) -> dict[str, Any]:
        """One iteration of the utility's schedule; returns its figures (loss, bits, lambda, ...)."""
        stage = self.stage
        results: list[StepResult] = []

        def update(loss_fn: LossFn, subset: torch.Tensor | None = None,
                   loss_parameters: Sequence[torch.Tensor] = ()) -> StepResult:
            result = self.update(loss_fn, subset, loss_parameters)
            results.append(result)
            return result

        loss = self.utility.run_iteration(self.iteration, update)
        self.iteration += 1
        last = results[-1]
        return {"iteration": self.iteration, "stage": stage, "lambda": self.weights.lam(stage), "loss": loss,
                "bits": float(last.bits.sum()), "bpp": float(last.bpp.mean()), "updates": len(results)}

    def state_dict(self) -> dict[str, Any]:
        """Everything that determines the rest of the phase: set, optimizer, iteration, random streams."""
        weights = {k: v.detach().cpu().clone() for k, v in self.syn.state_dict().items()}
        return {"iteration": self.iteration, "syn": weights, "optimizer": self.optimizer.state_dict(),
                "noise": self.noise.get_state(), "utility": self.utility.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.syn.load_state_dict(state["syn"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.noise.set_state(state["noise"])
        self.utility.load_state_dict(state["utility"])
        self.iteration = int(state["iteration"])


def fused_gradients(syn: SyntheticSet, loss_fn: LossFn, transform: Transform, lr_it: float, rate_weight: float,
                    noise: torch.Tensor) -> list[torch.Tensor]:
    """The gradients (unclipped) of lr_it * U + rate_weight * sum_s bpp_s from one forward and backward."""
    syn.train().zero_grad(set_to_none=True)
    images, labels = syn(noise=noise)
    bits = syn.rate_bits()
    total = lr_it * loss_fn(transform(images), labels) + rate_weight * (bits / syn.num_pixels_per_slice).sum()
    total.backward()
    return [p.grad.clone() for p in syn.parameters()]


def two_pass_gradients(syn: SyntheticSet, loss_fn: LossFn, transform: Transform, lr_it: float, rate_weight: float,
                       noise: torch.Tensor) -> list[torch.Tensor]:
    """The reference's formulation of the same gradients: decode without gradients, backpropagate
    U to the images, then re-run each slice's codec with the same noise and backpropagate
    (image gradient * lr_it, rate gradient * rate_weight / pixels) through it."""
    syn.train().zero_grad(set_to_none=True)
    with torch.no_grad():
        quantized = syn.quantized_latents(noise=noise)
        images = syn.stack.decode(quantized)[syn.valid]
    leaf = images.clone().requires_grad_(True)
    loss_fn(transform(leaf), syn.labels).backward()
    image_grad = leaf.grad
    quantized = syn.quantized_latents(noise=noise)
    pixels = syn.num_pixels_per_slice
    start = 0
    for s, size in enumerate(syn.layout.slice_sizes):
        slice_images, bits = slice_forward(syn.stack, s, quantized[s], size)
        objective = (slice_images * image_grad[start:start + size]).sum() * lr_it + rate_weight * bits.sum() / pixels[s]
        objective.backward(retain_graph=s < syn.num_slices - 1)
        start += size
    return [p.grad.clone() for p in syn.parameters()]
