"""The mtt-distillation pattern over a SyntheticSet: ``image_syn`` plus a learnable ``syn_lr``.

MTT's ``distill.py`` keeps a pixel tensor ``image_syn`` and a step size ``syn_lr`` that every
iteration hands to the student's unroll, and steps both after the loss's backward. Here
``image_syn`` is the set decoded for the current iteration (normalized, differentiable, the rate
of every slice tied to it as in :class:`ddfast.integrations.SynSet`), and ``step()`` is one
update of both: the codecs by the per-slice clip and Adam, ``syn_lr`` by SGD(lr_lr, momentum 0.5),
then clamped to >= 0.001 as DD-RUO (and FreD/DDiF) do -- what ``TMUtility`` does for
``JointTrainer``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ddfast.codec import SyntheticSet
from ddfast.distill.joint import RateUtility
from ddfast.integrations.objective import check_positive
from ddfast.integrations.synset import SynSet


class MTTSet(SynSet):
    """A SyntheticSet as MTT's ``image_syn`` with its ``syn_lr``.

    Args:
        syn, weights, mean, std, seed: as for :class:`SynSet`.
        lr_teacher: the initial ``syn_lr`` (the experts' learning rate).
        lr_lr: SGD learning rate of ``syn_lr`` (momentum 0.5).
        min_syn_lr: clamp after each step (None: no clamp, as upstream MTT).

    Attributes:
        syn_lr: the learnable student step size, a leaf tensor with ``requires_grad``.
    """

    def __init__(self, syn: SyntheticSet, weights: RateUtility, *, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, lr_teacher: float = 0.01, lr_lr: float = 1e-5,
                 min_syn_lr: float | None = 0.001, seed: int = 0) -> None:
        super().__init__(syn, weights, mean=mean, std=std, seed=seed)
        self.syn_lr = torch.tensor(check_positive("lr_teacher", lr_teacher), device=syn.valid.device,
                                   requires_grad=True)
        self.lr_optimizer = torch.optim.SGD([self.syn_lr], lr=check_positive("lr_lr", lr_lr), momentum=0.5)
        self.min_syn_lr = None if min_syn_lr is None else check_positive("min_syn_lr", min_syn_lr)
        self._image_syn: torch.Tensor | None = None

    @property
    def image_syn(self) -> torch.Tensor:
        """All images [N, C, H, W], normalized and differentiable, class-major (labels: ``label_syn``).

        Decoded on the first read after each :meth:`step`; later reads in the same iteration
        return the same tensor.
        """
        if self._image_syn is None:
            self._image_syn, _ = self.get()
        return self._image_syn

    def zero_grad(self) -> None:
        """Clear the gradients of the codecs and of ``syn_lr``."""
        self.optim_zero_grad()
        self.syn_lr.grad = None

    def step(self) -> None:
        """One update of the codecs (clip per slice, Adam) and of ``syn_lr`` (SGD, then the clamp)."""
        self.optim_step()
        self.lr_optimizer.step()
        if self.min_syn_lr is not None:
            with torch.no_grad():
                self.syn_lr.clamp_(min=self.min_syn_lr)
        self._image_syn = None
