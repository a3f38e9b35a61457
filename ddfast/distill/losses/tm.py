"""Trajectory matching (MTT) as a reusable loss: ``loss = tm(images_syn, labels_syn)``.

Per call: pick an expert and a start epoch s ~ U{0 … max_start_epoch − 1}; start the student at
θ₀ = trajectory[s]; take ``syn_steps`` plain SGD steps θₖ₊₁ = θₖ − syn_lr·∇CE(student(A(x)), y)
on minibatches of the synthetic set (chunks of a random permutation, the last chunk first) with
non-Siamese DSA; return ‖θ_N − θ*‖² / ‖θ₀ − θ*‖² with θ* = trajectory[s + expert_epochs].
The loss is differentiable w.r.t. the images (and whatever produced them) and ``syn_lr``.

Two ways to differentiate through the unroll:

* ``unroll="recompute"`` (default): the forward pass keeps only the N + 1 flat parameter
  vectors; the backward pass walks the steps in reverse, rebuilding one step's graph at a time
  and pulling the adjoint through it (a Hessian-vector product per step). Memory is
  O(N·P + one step's activations) instead of O(N × one step's double-backward graph), for about
  one extra forward/backward per step. Gradients are exact (same values as ``"graph"``): the
  forward pass records torch's global RNG state (CPU and the images' device) before every step
  and the backward pass replays it, so a student with dropout sees the same masks when a step
  is rebuilt. On a device type without a readable RNG state a student with active dropout is
  refused (use ``"graph"`` there).
* ``unroll="graph"``: the references' approach (``ReparamModule``): the whole unroll stays in
  the autograd graph. Faster, but memory grows with N × batch × activations.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddfast.distill.dsa import DSA
from ddfast.distill.experts import ExpertBuffer, Trajectory
from ddfast.distill.params import FlatModel, flatten_params
from ddfast.distill.seeding import fresh_seed, seeded_generator
from ddfast.errors import ConfigError


@dataclass
class UnrollPlan:
    """Everything that fixes one unroll: start/target, minibatches and augmentation seeds."""

    start: torch.Tensor
    target: torch.Tensor
    batches: list[torch.Tensor]
    dsa_seeds: list[int | None]

    def images_needed(self) -> torch.Tensor:
        """The sorted synthetic indices the unroll's minibatches use."""
        return torch.unique(torch.cat(self.batches)) if self.batches else torch.zeros(0, dtype=torch.long)

    def on_subset(self, subset: torch.Tensor) -> "UnrollPlan":
        """The same plan for a set holding only the images ``subset`` (sorted; every index the
        minibatches use must be in it): batch indices become positions in ``subset``."""
        subset = subset.to(self.batches[0].device) if self.batches else subset
        batches = [torch.searchsorted(subset, b) for b in self.batches]
        return UnrollPlan(self.start, self.target, batches, self.dsa_seeds)


class TrajectoryMatching:
    """The TM loss over an expert buffer.

    Args:
        experts: an :class:`ExpertBuffer` or a list of trajectories.
        student: a network of the experts' architecture (only its structure is used).
        syn_steps: N, student steps per call.
        expert_epochs: M, the target is M epochs after the start.
        max_start_epoch: T⁺ (exclusive upper bound of the start epoch).
        batch_syn: synthetic minibatch size (``None``: all images).
        lr_teacher: initial ``syn_lr``.
        dsa: augmentation applied (non-Siamese) to each minibatch; ``None`` for none.
        unroll: ``"recompute"`` (low memory) or ``"graph"`` (reference); see the module doc.
        seed: seed of the loss's own random stream (expert choice is the buffer's).
        device: device of ``syn_lr``.
        image_shape: ``(C, H, W)`` the student takes; default its ``input_shape`` attribute
            (set by ``get_network``). When known, other image shapes raise ConfigError.

    Attributes:
        syn_lr: learnable student step size, a leaf tensor with ``requires_grad``; optimize it
            (``parameters()``) and call :meth:`clamp_syn_lr_` after each step.
    """

    def __init__(
        self,
        experts: ExpertBuffer | Sequence[Trajectory],
        student: nn.Module,
        *,
        syn_steps: int = 20,
        expert_epochs: int = 3,
        max_start_epoch: int = 25,
        batch_syn: int | None = None,
        lr_teacher: float = 0.01,
        dsa: DSA | None = None,
        unroll: str = "recompute",
        seed: int | None = None,
        device: torch.device | str | None = None,
        image_shape: Sequence[int] | None = None,
    ) -> None:
        if syn_steps < 1 or expert_epochs < 1 or max_start_epoch < 1:
            raise ConfigError("syn_steps, expert_epochs and max_start_epoch must be positive")
        if unroll not in ("recompute", "graph"):
            raise ConfigError(f"unroll must be 'recompute' or 'graph', got {unroll!r}")
        if batch_syn is not None and batch_syn < 1:
            raise ConfigError(f"batch_syn must be positive, got {batch_syn}")
        self.experts = experts if isinstance(experts, ExpertBuffer) else ExpertBuffer(experts, seed=seed)
        self.model = FlatModel(student.train())
        self.syn_steps = syn_steps
        self.expert_epochs = expert_epochs
        self.max_start_epoch = max_start_epoch
        self.batch_syn = batch_syn
        self.dsa = dsa
        self.unroll = unroll
        self.syn_lr = torch.tensor(float(lr_teacher), device=device, requires_grad=True)
        self.generator = seeded_generator(seed)
        shape = image_shape if image_shape is not None else getattr(student, "input_shape", None)
        self.image_shape = None if shape is None else tuple(int(v) for v in shape)

    def parameters(self) -> list[torch.Tensor]:
        """The learnable tensors of the loss: ``[syn_lr]``."""
        return [self.syn_lr]

    @torch.no_grad()
    def clamp_syn_lr_(self, min_value: float = 0.001) -> None:
        """Clamp ``syn_lr`` to ≥ ``min_value`` in place (FreD/DDiF/DD-RUO, after each step)."""
        self.syn_lr.clamp_(min=min_value)

    # -- planning -------------------------------------------------------------------------------
    def draw_plan(self, n: int, device: torch.device | str) -> UnrollPlan:
        """Draw the next unroll for a set of ``n`` images: expert, start epoch, minibatches, DSA seeds.

        Drawing it before decoding lets a caller decode only ``plan.images_needed()``.
        """
        device = torch.device(device)
        trajectory = self.experts.next()
        last = self.max_start_epoch - 1 + self.expert_epochs
        if len(trajectory) <= last:
            raise ConfigError(
                f"expert trajectory has {len(trajectory)} snapshots; max_start_epoch "
                f"{self.max_start_epoch} with expert_epochs {self.expert_epochs} needs {last + 1}"
            )
        s = int(torch.randint(0, self.max_start_epoch, (1,), generator=self.generator))
        start = flatten_params(trajectory[s]).to(device, torch.float32)
        target = flatten_params(trajectory[s + self.expert_epochs]).to(device, torch.float32)
        if start.numel() != self.model.num_params:
            raise ConfigError(
                f"expert snapshots have {start.numel()} parameters but the student has "
                f"{self.model.num_params}; the student must be the experts' architecture"
            )
        batch = self.batch_syn or n
        batches: list[torch.Tensor] = []
        chunks: list[torch.Tensor] = []
        for _ in range(self.syn_steps):
            if not chunks:
                chunks = list(torch.randperm(n, generator=self.generator).split(batch))
            batches.append(chunks.pop().to(device))
        seeds: list[int | None] = [fresh_seed(self.generator) if self.dsa else None for _ in range(self.syn_steps)]
        return UnrollPlan(start, target, batches, seeds)

    def _step_loss(self, theta: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, plan: UnrollPlan, k: int) -> torch.Tensor:
        idx = plan.batches[k]
        x = images[idx]
        if self.dsa is not None:
            x = self.dsa(x, seed=plan.dsa_seeds[k])
        return F.cross_entropy(self.model(theta, x), labels[idx])

    # -- the loss -------------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, labels: torch.Tensor, plan: UnrollPlan | None = None) -> torch.Tensor:
        """TM loss of the synthetic set ``images`` [n, C, H, W] (network input space) with
        hard ``labels`` [n]; ``plan`` (default: a fresh :meth:`draw_plan`) fixes the unroll."""
        self._check_inputs(images, labels)
        self.model.net.to(images.device)
        if plan is None:
            plan = self.draw_plan(images.shape[0], images.device)
        labels = labels.to(images.device, torch.long)
        if self.unroll == "graph":
            return self._graph_loss(images, labels, plan)
        return _RecomputedUnroll.apply(images, self.syn_lr, self, labels, plan)

    def _check_inputs(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise ConfigError("TM expects images and labels as tensors")
        if images.dim() != 4 or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ConfigError(
                f"TM expects images [n, C, H, W] and labels [n], got {tuple(images.shape)} and {tuple(labels.shape)}"
            )
        if not images.is_floating_point():
            raise ConfigError(f"TM expects float images, got {images.dtype}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ConfigError(f"TM expects integer class labels (hard labels), got {labels.dtype}")
        if self.image_shape is not None and tuple(images.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"the student takes images shaped {self.image_shape} (C, H, W), got {tuple(images.shape[1:])}"
            )

    def _graph_loss(self, images: torch.Tensor, labels: torch.Tensor, plan: UnrollPlan) -> torch.Tensor:
        theta = plan.start.clone().requires_grad_(True)
        for k in range(self.syn_steps):
            ce = self._step_loss(theta, images, labels, plan, k)
            (grad,) = torch.autograd.grad(ce, theta, create_graph=True)
            theta = theta - self.syn_lr * grad
        return _normalized_distance(theta, plan)


def _normalized_distance(theta: torch.Tensor, plan: UnrollPlan) -> torch.Tensor:
    return (theta - plan.target).pow(2).sum() / (plan.start - plan.target).pow(2).sum()


@dataclass
class _RNGState:
    """torch's global RNG state: the CPU generator and, when readable, the device's."""

    cpu: torch.Tensor
    device: torch.device
    accelerator: torch.Tensor | None


def _device_rng(device: torch.device) -> Any | None:
    """The ``torch.<type>`` module whose ``get_rng_state``/``set_rng_state`` serve ``device``."""
    if device.type in ("cpu", "meta"):
        return None
    try:
        module = torch.get_device_module(device.type)
    except (AttributeError, RuntimeError, ValueError):
        return None
    if hasattr(module, "get_rng_state") and hasattr(module, "set_rng_state"):
        return module
    return None


def _has_active_dropout(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 and m.training for m in net.modules())


def _capture_rng(device: torch.device) -> _RNGState:
    module = _device_rng(device)
    return _RNGState(torch.get_rng_state(), device, None if module is None else module.get_rng_state(device))


@contextmanager
def _replay_rng(state: _RNGState) -> Iterator[None]:
    """Run the body from the recorded RNG state; the RNG state from before is restored after."""
    module = _device_rng(state.device)
    saved_cpu = torch.get_rng_state()
    saved_accel = module.get_rng_state(state.device) if module is not None else None
    torch.set_rng_state(state.cpu)
    if module is not None and state.accelerator is not None:
        module.set_rng_state(state.accelerator, state.device)
    try:
        yield
    finally:
        torch.set_rng_state(saved_cpu)
        if module is not None and saved_accel is not None:
            module.set_rng_state(saved_accel, state.device)


class _RecomputedUnroll(torch.autograd.Function):
    """TM unroll whose backward pass recomputes one student step at a time, replaying the RNG
    state each step saw in the forward pass (dropout masks)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, images: torch.Tensor, syn_lr: torch.Tensor, tm: TrajectoryMatching, labels: torch.Tensor, plan: UnrollPlan
    ) -> torch.Tensor:
        device = images.device
        if device.type not in ("cpu", "meta") and _device_rng(device) is None and _has_active_dropout(tm.model.net):
            raise ConfigError(
                f"unroll='recompute' cannot replay dropout masks on {device.type} (no readable RNG state); "
                "use unroll='graph' or put the student in eval mode"
            )
        lr = syn_lr.detach()
        images = images.detach()
        thetas = [plan.start]
        rng_states = []
        for k in range(tm.syn_steps):
            rng_states.append(_capture_rng(device))
            with torch.enable_grad():
                theta = thetas[-1].detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(tm._step_loss(theta, images, labels, plan, k), theta)
            thetas.append(thetas[-1] - lr * grad)
        ctx.tm, ctx.labels, ctx.plan, ctx.thetas, ctx.rng_states = tm, labels, plan, thetas, rng_states
        ctx.save_for_backward(images, syn_lr)
        return _normalized_distance(thetas[-1], plan)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None, None]:
        images, syn_lr = ctx.saved_tensors
        tm, labels, plan, thetas, rng_states = ctx.tm, ctx.labels, ctx.plan, ctx.thetas, ctx.rng_states
        want_images, want_lr = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        lr = syn_lr.detach()
        denom = (plan.start - plan.target).pow(2).sum()
        adjoint = grad_out * 2 * (thetas[-1] - plan.target) / denom  # dL/dθ_N
        grad_images = torch.zeros_like(images) if want_images else None
        grad_lr = torch.zeros((), device=images.device)
        leaf = images.detach().requires_grad_(want_images)
        for k in reversed(range(tm.syn_steps)):
            with torch.enable_grad(), _replay_rng(rng_states[k]):
                theta = thetas[k].detach().requires_grad_(True)
                ce = tm._step_loss(theta, leaf, labels, plan, k)
                (grad,) = torch.autograd.grad(ce, theta, create_graph=True)
                # θ_{k+1} = θ_k − lr·g_k: pull the adjoint v through this step.
                inputs = (theta, leaf) if want_images else (theta,)
                vjp = torch.autograd.grad(grad, inputs, grad_outputs=adjoint, allow_unused=True)
            grad_lr -= (grad.detach() * adjoint).sum()
            if want_images and vjp[1] is not None:
                grad_images -= lr * vjp[1]
            adjoint = adjoint - lr * vjp[0]
        ctx.thetas = ctx.rng_states = None
        grad_lr = grad_lr.to(syn_lr.device, syn_lr.dtype) if want_lr else None
        return grad_images, grad_lr, None, None, None
