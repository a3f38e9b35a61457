"""The DD-RUO ``TensorPool`` interface over a SyntheticSet (one fused forward and backward).

The reference's loop per iteration (``TM/pool_tm.py``, ``DM/pool_dm.py``, ``DC/pool_dc.py``)::

    pool.train(); data, labels, bpp = pool.get_data()
    loss = utility((data - mean) / std, labels); loss.backward()
    pool.fill_data_diff(); pool.backward(lr_it, ldb_it)

keeps working unchanged. The reference decodes every class without gradients and, in
``backward``, re-runs each class's codec with the stored noise. Here ``get_data`` runs one
differentiable forward of all slices (images and rate) and keeps its graph; the images are
handed out as a detached leaf (``pool.data``) so the loop's ``loss.backward()`` stops there;
``fill_data_diff`` takes the images' gradient; ``backward`` runs ONE backward of
lr_it * <images, grad> + ldb_it * ldb * sum_s bpp_s through the kept graph, clips each slice's
gradient to 0.1 and steps Adam -- the gradients of the reference's two passes (DD-RUO, Sec. 3.2).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch

from ddfast.codec import CodecConfig, SyntheticSet, WarmupReport
from ddfast.coding import DEFAULT_MSE_THRESHOLD, QuantizedSet, post_quantize
from ddfast.coding.quantized import MODULES, tensor_specs
from ddfast.distill.seeding import derive_seed, seeded_generator
from ddfast.errors import ConfigError
from ddfast.integrations.objective import CodecOptimizer, check_positive, rate_term


class TensorPool:
    """A SyntheticSet behind DD-RUO's ``TensorPool`` methods.

    Args:
        syn: the set (trained in place). Slices play the reference's per-class codecs.
        ldb: the rate weight of the joint phase (DM/GM 5, TM 0.1); ``init_from_data`` warms up
            with beta = 1 / ldb, as the reference does.
        lr: Adam's learning rate (the reference's ``lr``, 1e-3).
        max_grad_norm: the per-slice clip (0.1).
        seed: seed of the quantization noise (the same stream as ``JointTrainer(seed=seed)``).

    Attributes:
        data: the images of the last ``get_data`` ([0, 1] pixels, a leaf with ``requires_grad``).
        quantized: the ``QuantizedSet`` of the last ``quantize_net`` (``ddfast.coding.encode`` writes it).
    """

    def __init__(self, syn: SyntheticSet, ldb: float, *, lr: float = 1e-3, max_grad_norm: float = 0.1,
                 seed: int = 0) -> None:
        if not isinstance(syn, SyntheticSet):
            raise ConfigError(f"TensorPool wraps a ddfast.SyntheticSet, got {type(syn).__name__}")
        self.syn = syn
        self.ldb = check_positive("ldb", ldb)
        self.lr, self.max_grad_norm = lr, max_grad_norm
        self.noise = seeded_generator(derive_seed(seed, 4))
        self.optimizer = CodecOptimizer(syn, lr, max_grad_norm)
        self.pixels = syn.num_pixels_per_slice.to(torch.float32)
        self.data: torch.Tensor | None = None
        self.quantized: QuantizedSet | None = None
        self._graph: tuple[torch.Tensor, torch.Tensor] | None = None
        self._grad: torch.Tensor | None = None

    @classmethod
    def build(cls, num_classes: int, slice_size: int | None, samples_per_class: int | Sequence[int], ldb: float,
              image_size: int | tuple[int, int], channels: int = 3, lr: float = 1e-3, layers_v: str = "v4-480",
              arm: int = 16, dim: int = 4, *, device: torch.device | str | None = None, seed: int = 0) -> TensorPool:
        """A new pool from the reference constructor's arguments (GPU list and thread count dropped:
        all slices run in one batched forward). ``layers_v`` is the synthesis version (Table A1),
        ``arm`` the ARM context size C and ``dim`` its hidden layers."""
        counts = [samples_per_class] * num_classes if isinstance(samples_per_class, int) else list(samples_per_class)
        if len(counts) != num_classes:
            raise ConfigError(f"num_classes={num_classes} but {len(counts)} per-class sample counts were given")
        syn = SyntheticSet(counts, image_size, channels=channels,
                           config=CodecConfig(synthesis=layers_v, arm_context=arm, arm_depth=dim),
                           slice_size=slice_size, generator=torch.Generator().manual_seed(seed), device=device)
        return cls(syn, ldb, lr=lr, seed=seed)

    # -- modes and solvers ---------------------------------------------------------------------
    def train(self) -> None:
        """Later decodes quantize with noise and softround (the joint phase's quantizer)."""
        self.syn.train()

    def test(self) -> None:
        """Later decodes hard-round the latents (and the images to 16-bit levels)."""
        self.syn.eval()

    def set_training_phase(self, phase: int) -> None:
        """The reference selects the joint quantizer with phase 0, the only phase its loops use."""
        if phase != 0:
            raise ConfigError(f"only training phase 0 (the joint phase) exists here, got {phase!r}")

    def init_solvers(self) -> None:
        """Fresh Adam state (the reference creates its per-class optimizers here)."""
        self.optimizer = CodecOptimizer(self.syn, self.lr, self.max_grad_norm)

    # -- the joint step ------------------------------------------------------------------------
    def get_data(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Decode every image: (images [N, C, H, W] in [0, 1], class-major labels [N], mean bpp of the slices).

        In train mode the forward keeps its graph for :meth:`backward`; the images come back as
        the leaf ``self.data``, so a loss on them backpropagates only to ``self.data.grad``.
        """
        self._graph, self._grad = None, None
        with torch.set_grad_enabled(self.syn.training):
            images, labels, bits = self.syn.forward_with_rate(generator=self.noise if self.syn.training else None)
        if self.syn.training:
            self._graph = (images, bits)
        self.data = images.detach().requires_grad_(True)
        bpp = bits.detach() / self.pixels.to(bits.device)
        return self.data, labels, float(bpp.mean())

    def fill_data_diff(self, grad: torch.Tensor | None = None) -> None:
        """Take the utility's gradient on the images: ``grad``, or ``self.data.grad`` by default."""
        if self._graph is None:
            raise ConfigError("call train() and get_data() before fill_data_diff()")
        if grad is None:
            grad = self.data.grad if self.data is not None else None
            if grad is None:
                raise ConfigError("pool.data has no gradient: backpropagate the utility loss on the images of "
                                  "get_data() first, or pass the gradient")
        if tuple(grad.shape) != tuple(self._graph[0].shape):
            raise ConfigError(f"the gradient has shape {tuple(grad.shape)}, the images {tuple(self._graph[0].shape)}")
        self._grad = grad.detach()

    def backward(self, lr_it: float, ldb_it: float) -> None:
        """One codec update: backward of lr_it * <images, grad> + ldb_it * ldb * sum_s bpp_s, clip, Adam."""
        lr_it, ldb_it = check_positive("lr_it", lr_it), check_positive("ldb_it", ldb_it)
        if self._graph is None or self._grad is None:
            raise ConfigError("call get_data() (in train mode) and fill_data_diff() before backward()")
        images, bits = self._graph
        objective = lr_it * (images * self._grad.to(images)).sum() + rate_term(bits, self.pixels, self.ldb, ldb_it)
        self._graph, self._grad = None, None
        self.optimizer.zero_grad()
        objective.backward()
        self.optimizer.step()

    # -- phases around the joint one -------------------------------------------------------------
    def init_from_data(self, ref_dict: Mapping[int, torch.Tensor] | Sequence[torch.Tensor],
                       **options: Any) -> WarmupReport:
        """Warm up every slice on real images: ``ref_dict[c]`` holds [0, 1] images of class c.

        beta defaults to 1 / ldb as in the reference; other options go to ``ddfast.codec.warm_up``.
        """
        beta = options.pop("beta", 1.0 / self.ldb)
        return self.syn.init_from_data(ref_dict, beta, **options)

    def quantize_net(self, mse_threshold: float = DEFAULT_MSE_THRESHOLD) -> tuple[float, dict[str, float]]:
        """Post-quantize every slice's networks in place (DD-RUO, Sec. 3.3).

        Returns (bpp, per-component bpp): each is the mean over slices of bits / (n_s H W), the
        components (latents under the integer ARM, arm, synthesis, upsampling) sum to bpp. The
        QuantizedSet is kept as ``self.quantized``; later decodes use the quantized weights.
        """
        qset = post_quantize(self.syn, mse_threshold)
        with torch.no_grad():
            for spec in tensor_specs(self.syn.config, self.syn.channels):
                view = spec.view(self.syn.stack)
                view.copy_(qset.tensors[spec.name].to(view))
        self.quantized = qset
        pixels = self.pixels.to(torch.float64)
        report = qset.report
        parts = {"latents": report.latent_bits.to(torch.float64)}
        parts.update({module: report.weight_bits[module].to(torch.float64) for module in MODULES})
        breakdown = {name: float((bits / pixels).mean()) for name, bits in parts.items()}
        return sum(breakdown.values()), breakdown

    # -- files -------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the codecs atomically (``SyntheticSet.save``); like the reference, no noise, no Adam state."""
        self.syn.save(path)

    def load(self, path: str | os.PathLike) -> None:
        """Read codecs written by :meth:`save` into this pool (same layout and codec) and reset Adam."""
        saved = SyntheticSet.load(path, device=self.syn.valid.device)
        if saved.layout != self.syn.layout or saved.config != self.syn.config or \
                saved.image_size != self.syn.image_size or saved.channels != self.syn.channels:
            raise ConfigError(f"{path} holds a set of another shape or codec than this pool")
        with torch.no_grad():
            for dst, src in zip(self.syn.parameters(), saved.parameters(), strict=True):
                dst.copy_(src)
        self.syn.metadata = dict(saved.metadata)
        self.init_solvers()

    save_slice_pool = save
    load_slice_pool = load
