"""The objective every adapter trains: DD-RUO's joint rate-utility update on a decoded set.

Per codec update every slice gets the gradient of

    lr_it * U + ldb_it * ldb * sum_s bpp_s,    bpp_s = bits_s / (n_s H W),

clipped to norm ``max_grad_norm`` (0.1) per slice, then one Adam step (lr 1e-3): the update of
the reference's ``TensorPool.backward`` (DD-RUO, Sec. 3.2 and Table A2), as
``ddfast.distill.joint.JointTrainer`` runs it. :func:`with_rate` ties the rate term to decoded
images, so that a loop's own ``loss.backward()`` on those images backpropagates the whole
objective; :class:`CodecOptimizer` is the per-slice clip and the Adam step.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ddfast.codec import SyntheticSet, clip_grad_norm_per_slice
from ddfast.errors import ConfigError


def check_positive(name: str, value: Any) -> float:
    """``value`` as a float; ConfigError unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def rate_term(bits: torch.Tensor, pixels: torch.Tensor, ldb: float, ldb_it: float) -> torch.Tensor:
    """ldb_it * ldb * sum_s bits_s / pixels_s: the rate part of the objective ([S] bits and pixels)."""
    return ldb_it * ldb * (bits / pixels.to(bits.device)).sum()


class _RateUtility(torch.autograd.Function):
    """Identity on the images; backward scales their gradient by lr_it and gives the rate term gradient 1."""

    @staticmethod
    def forward(ctx: Any, images: torch.Tensor, rate: torch.Tensor, lr_it: float) -> torch.Tensor:  # type: ignore[override]
        ctx.lr_it = lr_it
        return images.view_as(images)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None]:  # type: ignore[override]
        rate_grad = grad.new_ones(()) if ctx.needs_input_grad[1] else None
        return grad * ctx.lr_it, rate_grad, None


def with_rate(images: torch.Tensor, rate: torch.Tensor, lr_it: float) -> torch.Tensor:
    """``images`` whose backward adds the rate: a loss U on them backpropagates lr_it * U + rate.

    Other tensors the loss depends on (e.g. TM's syn_lr) get the plain dU, as in ``JointTrainer``.
    The rate counts once however many times the loss reads the images.
    """
    return _RateUtility.apply(images, rate, lr_it)


class CodecOptimizer:
    """Adam over every parameter of a SyntheticSet, with the per-slice gradient clip first.

    Every weight carries the slice dimension first, so one Adam is the reference's per-class Adam
    (every slice steps every update) and the clip acts on each slice's own gradient norm.
    """

    def __init__(self, syn: SyntheticSet, lr: float = 1e-3, max_grad_norm: float = 0.1) -> None:
        self.parameters = list(syn.parameters())
        self.max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
        self.adam = torch.optim.Adam(self.parameters, lr=check_positive("lr", lr))

    def zero_grad(self) -> None:
        """Clear every gradient (set to None)."""
        self.adam.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Clip each slice's gradient to ``max_grad_norm``, then one Adam step."""
        if all(p.grad is None for p in self.parameters):
            raise ConfigError("no codec parameter has a gradient: backpropagate a loss on the decoded images "
                              "before stepping")
        clip_grad_norm_per_slice(self.parameters, self.max_grad_norm)
        self.adam.step()
