"""The FreD/DDiF ``SynSet`` interface over a SyntheticSet.

Their loops (``TM/main_TM_FreD.py``, DDiF's ``SynSet/DDiF.py`` and the DC/DM siblings)::

    synset.init(images_all, labels_all, indices_class)
    images, labels = synset.get(indices)          # differentiable, normalized, class-major
    loss = utility(images, labels)
    synset.optim_zero_grad(); loss.backward(); synset.optim_step()

keep working: ``get`` decodes only the slices that hold the requested images, and ties their
rate to the returned images (``ddfast.integrations.objective.with_rate``), so the loop's own
``loss.backward()`` gives every decoded slice the gradient of DD-RUO's joint objective
lr_it * U + ldb_it * ldb * bpp; ``optim_step`` clips per slice and steps Adam. Ask for each slice
once per step (a whole-set ``get()``, or one ``get`` per class, as those loops do): every
``get`` adds the rate of the slices it decodes.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ddfast.codec import SyntheticSet, WarmupReport
from ddfast.distill.joint import RateUtility
from ddfast.distill.seeding import derive_seed, seeded_generator
from ddfast.errors import ConfigError
from ddfast.integrations.normalization import Normalization
from ddfast.integrations.objective import CodecOptimizer, rate_term, with_rate
from ddfast.integrations.subset import decode_slices


class SynSet:
    """A SyntheticSet behind the FreD/DDiF ``SynSet`` methods.

    Args:
        syn: the set (trained in place); its images are class-major.
        weights: lr_it, ldb and the stages of ldb_it (the stage follows the number of
            ``optim_step`` calls), Adam's lr and the per-slice clip -- as for ``JointTrainer``.
        mean, std: per-channel normalization of the loop's data; ``get`` returns normalized
            images and ``init`` takes normalized real images (None: [0, 1] pixels both ways).
        seed: seed of the quantization noise (the stream of ``JointTrainer(seed=seed)``) and of
            the choice of real images in ``init``.
    """

    def __init__(self, syn: SyntheticSet, weights: RateUtility, *, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, seed: int = 0) -> None:
        if not isinstance(syn, SyntheticSet):
            raise ConfigError(f"SynSet wraps a ddfast.SyntheticSet, got {type(syn).__name__}")
        if not isinstance(weights, RateUtility):
            raise ConfigError(f"weights must be a ddfast.distill.joint.RateUtility, got {type(weights).__name__}")
        self.syn = syn
        self.weights = weights
        self.normalization = Normalization(mean, std, syn.channels)
        self.noise = seeded_generator(derive_seed(seed, 4))
        self.init_generator = seeded_generator(derive_seed(seed, 6))
        self.optimizer = CodecOptimizer(syn, weights.lr, weights.max_grad_norm)
        self.pixels = syn.num_pixels_per_slice.to(torch.float32)
        self.steps = 0

    @property
    def num_per_class(self) -> int:
        """Images per class (FreD/DDiF's instances per class); ConfigError when classes differ."""
        counts = set(self.syn.layout.images_per_class)
        if len(counts) != 1:
            raise ConfigError(f"classes hold different numbers of images {list(self.syn.layout.images_per_class)}; "
                              "use syn.layout.images_per_class")
        return counts.pop()

    @property
    def label_syn(self) -> torch.Tensor:
        """Class-major labels of all images [N]."""
        return self.syn.labels

    @property
    def ldb_it(self) -> float:
        """The rate multiplier of the current stage."""
        return self.weights.stages[self.weights.stage_index(self.steps)].ldb_it

    def init(self, images_all: torch.Tensor, labels_all: torch.Tensor, indices_class: Sequence[Sequence[int]],
             *, beta: float = 1e6, **options: Any) -> WarmupReport:
        """Warm up every class's codecs on random real images of the class (phase 1 of DD-RUO).

        ``images_all`` are the loop's (normalized) real images, ``indices_class[c]`` the
        positions of class c in them. beta = 1e6 is DD-RUO's warm-up for DM and GM (TM: 10);
        other options go to ``ddfast.codec.warm_up``.
        """
        if len(indices_class) != self.syn.num_classes:
            raise ConfigError(f"indices_class has {len(indices_class)} classes, the set {self.syn.num_classes}")
        labels_all = torch.as_tensor(labels_all)
        by_class = []
        for c, positions in enumerate(indices_class):
            positions = torch.as_tensor(positions, dtype=torch.int64).reshape(-1)
            need = self.syn.layout.images_per_class[c]
            if positions.numel() < need:
                raise ConfigError(f"class {c} has {positions.numel()} real images, its codecs need {need}")
            if bool((labels_all[positions.to(labels_all.device)] != c).any()):
                raise ConfigError(f"indices_class[{c}] points at images whose label is not {c}")
            chosen = positions[torch.randperm(positions.numel(), generator=self.init_generator)[:need]]
            by_class.append(self.normalization.to_pixels(images_all[chosen.to(images_all.device)].detach().float()))
        return self.syn.init_from_data(by_class, beta, **options)

    def get(self, indices: torch.Tensor | Sequence[int] | None = None, need_copy: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``indices`` (class-major positions; None: all) and their labels.

        ``need_copy=False``: a train-mode decode that backpropagates the joint objective.
        ``need_copy=True``: a detached eval-mode decode (latents rounded, as the file holds them),
        for evaluation.
        """
        if need_copy:
            return self._copy(indices)
        syn = self.syn.train()
        if indices is None:
            pixels, labels, bits = syn.forward_with_rate(generator=self.noise)
            pixels_per_slice = self.pixels
        else:
            pixels, labels, bits, slices = decode_slices(syn, indices, self.noise)
            pixels_per_slice = self.pixels.to(slices.device).index_select(0, slices)
        rate = rate_term(bits, pixels_per_slice, self.weights.ldb, self.ldb_it)
        return self.normalization.to_input(with_rate(pixels, rate, self.weights.lr_it)), labels

    @torch.no_grad()
    def _copy(self, indices: torch.Tensor | Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = self.syn.training
        self.syn.eval()
        try:
            if indices is None:
                pixels, labels = self.syn()
            else:
                pixels, labels, _, _ = decode_slices(self.syn, indices)
        finally:
            self.syn.train(was_training)
        return self.normalization.to_input(pixels).clone(), labels.clone()

    def optim_zero_grad(self) -> None:
        """Clear the codecs' gradients (FreD/DDiF call it before each loss)."""
        self.optimizer.zero_grad()

    def optim_step(self) -> None:
        """Clip each slice's gradient, one Adam step; counts toward the stage of ldb_it."""
        self.optimizer.step()
        self.steps += 1
