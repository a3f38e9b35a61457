"""Vanilla pixel synthetic sets distilled with TM, GM or DM — the baselines at equal bytes.

A pixel set stores its images as float32, so it costs N·C·H·W·4 bytes; ``images_per_class``
turns a per-class byte budget into the number of images that budget buys. ``as_8bit`` gives a
set as 8-bit pixels would keep it (N·C·H·W bytes), for comparisons at the bytes of an image file. Every ``distill_*``
function initializes from random real images (class-major labels, as the references), shows a
progress bar and returns a :class:`PixelSet` whose images live in the network's input space
(normalized, or whitened if the real data were). ``max_seconds`` ends a run early after the
iteration that exhausts it; ``meta["iterations"]`` records how many iterations ran.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ddfast.data import ImageDataset
from ddfast.distill.dsa import DEFAULT_STRATEGY, DSA
from ddfast.distill.experts import ExpertBuffer
from ddfast.distill.losses import DistributionMatching, GradientMatching, TrajectoryMatching, get_loops
from ddfast.distill.networks import default_convnet, get_network, network_factory
from ddfast.distill.realdata import ClassSampler, RealData, derive_seed, real_tensors
from ddfast.errors import ConfigError
from ddfast.fileio import atomic_torch_save, load_torch_file

FLOAT32_BYTES = 4
Callback = Callable[[int, "PixelSet", float], None]


@dataclass
class PixelSet:
    """A synthetic set of plain pixels.

    Saved as a ``torch.save`` dict ``{"images": float32 [N, C, H, W], "labels": int64 [N],
    "syn_lr": float (TM sets only, the learned evaluation learning rate), "meta": dict}``;
    images are in the network's input space. ``ddfast eval`` reads this format.
    """

    images: torch.Tensor
    labels: torch.Tensor
    syn_lr: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_bytes(self) -> int:
        """Storage of the images as float32: N·C·H·W·4."""
        return pixel_set_bytes(*self.images.shape)

    def save(self, path: str | os.PathLike) -> None:
        """Write the set atomically (``ddfast.fileio.atomic_torch_save``)."""
        record: dict[str, Any] = {
            "images": self.images.detach().cpu().float(),
            "labels": self.labels.detach().cpu().long(),
            "meta": self.meta,
        }
        if self.syn_lr is not None:
            record["syn_lr"] = float(self.syn_lr)
        atomic_torch_save(record, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PixelSet":
        """Read a set written by :meth:`save` (or any dict with ``images`` and ``labels``)."""
        record = load_torch_file(path, "synthetic set", ConfigError)
        if not isinstance(record, dict) or "images" not in record or "labels" not in record:
            raise ConfigError(f"{path} is not a synthetic set (a dict with 'images' and 'labels')")
        images, labels, syn_lr, meta = record["images"], record["labels"], record.get("syn_lr"), record.get("meta", {})
        for key, value in (("images", images), ("labels", labels)):
            if not isinstance(value, torch.Tensor):
                raise ConfigError(f"synthetic set {path}: '{key}' is a {type(value).__name__}, not a tensor")
        if images.is_complex() or images.dtype == torch.bool:
            raise ConfigError(f"synthetic set {path}: images have dtype {images.dtype}, expected float")
        try:
            images, labels = real_tensors((images.float(), labels))
        except ConfigError as err:
            raise ConfigError(f"synthetic set {path}: {err}") from err
        if syn_lr is not None:
            try:
                syn_lr = float(syn_lr)
            except (TypeError, ValueError, RuntimeError) as err:
                raise ConfigError(f"synthetic set {path}: syn_lr {syn_lr!r} is not a number") from err
        if not isinstance(meta, dict):
            raise ConfigError(f"synthetic set {path}: 'meta' is a {type(meta).__name__}, not a dict")
        return cls(images, labels, syn_lr, dict(meta))


def pixel_set_bytes(n: int, channels: int, height: int, width: int) -> int:
    """Bytes of ``n`` float32 images of C×H×W."""
    return n * channels * height * width * FLOAT32_BYTES


def as_8bit(images: torch.Tensor, dataset: ImageDataset) -> torch.Tensor:
    """Normalized ``images`` as 8-bit pixels keep them: back to [0, 1] with ``dataset``'s mean and std,
    clamped, rounded to multiples of 1/255, normalized again."""
    pixels = dataset.denormalize(images).clamp(0.0, 1.0)
    return dataset.normalize(torch.round(pixels * 255.0) / 255.0)


def images_per_class(budget_bytes: int, channels: int, height: int, width: int) -> int:
    """How many float32 C×H×W images a per-class byte budget buys (at least one)."""
    n = budget_bytes // pixel_set_bytes(1, channels, height, width)
    if n < 1:
        raise ConfigError(
            f"a budget of {budget_bytes} bytes per class is less than one {channels}x{height}x{width} "
            f"float32 image ({pixel_set_bytes(1, channels, height, width)} bytes)"
        )
    return int(n)


def init_from_real(sampler: ClassSampler, ipc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` random real images per class, class-major, and their labels."""
    if ipc < 1:
        raise ConfigError(f"ipc must be positive, got {ipc}")
    short = [c for c in range(sampler.num_classes) if sampler.count(c) < ipc]
    if short:
        raise ConfigError(f"classes {short} have fewer than {ipc} real images")
    images = torch.cat([sampler.sample(c, ipc) for c in range(sampler.num_classes)]).clone()
    labels = torch.arange(sampler.num_classes, device=images.device).repeat_interleave(ipc)
    return images, labels


def _setup(
    real: RealData, ipc: int, arch: str | None, seed: int, dsa: bool, strategy: str, align_corners: bool,
    device: torch.device | str | None,
) -> tuple[ClassSampler, torch.Tensor, torch.Tensor, str, DSA | None]:
    images, labels = real_tensors(real)
    num_classes = getattr(real, "num_classes", None)
    sampler = ClassSampler(images, labels, num_classes, seed=derive_seed(seed, 0), device=device)
    syn, syn_labels = init_from_real(sampler, ipc)
    arch = arch or default_convnet(images.shape[2:])
    aug = DSA(strategy, align_corners=align_corners, seed=derive_seed(seed, 1)) if dsa else None
    return sampler, syn.requires_grad_(True), syn_labels, arch, aug


def _run(
    iterations: int, step: Callable[[int], float], progress: bool, desc: str, snapshot: Callable[[], PixelSet],
    callback: Callback | None, callback_every: int, max_seconds: float | None,
) -> PixelSet:
    """Run up to ``iterations`` steps (fewer if ``max_seconds`` runs out); returns the final
    snapshot with ``meta["iterations"]`` = the number of steps run."""
    start = time.perf_counter()
    done = 0
    with tqdm(total=iterations, desc=desc, unit="it", disable=not progress) as bar:
        while done < iterations:
            loss = step(done)
            done += 1
            bar.update()
            bar.set_postfix(loss=f"{loss:.4f}")
            out_of_time = max_seconds is not None and time.perf_counter() - start >= max_seconds
            if callback is not None and callback_every and (done % callback_every == 0 or done == iterations or out_of_time):
                callback(done, snapshot(), loss)
            if out_of_time:
                break
    result = snapshot()
    result.meta["iterations"] = done
    return result


def distill_gm(
    real: RealData,
    ipc: int,
    *,
    iterations: int = 1000,
    arch: str | None = None,
    lr_img: float = 0.1,
    lr_net: float = 0.01,
    batch_real: int = 256,
    metric: str = "ours",
    loops: tuple[int, int] | None = None,
    dsa: bool = True,
    dsa_strategy: str = DEFAULT_STRATEGY,
    align_corners: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    callback_every: int = 0,
    max_seconds: float | None = None,
) -> PixelSet:
    """Gradient matching (DC, or DSA with ``dsa=True``) from real initialization.

    Per iteration a fresh network and ``loops = (outer, inner)`` (default ``get_loops(ipc)``);
    images by SGD(lr_img, momentum 0.5). ``callback(iteration, set, loss)`` runs every
    ``callback_every`` iterations and after the last one.
    """
    sampler, images, labels, arch, aug = _setup(real, ipc, arch, seed, dsa, dsa_strategy, align_corners, device)
    outer, inner = loops or get_loops(ipc)
    gm = GradientMatching(sampler, metric=metric, batch_real=batch_real, dsa=aug, lr_net=lr_net, seed=derive_seed(seed, 2))
    optimizer = torch.optim.SGD([images], lr=lr_img, momentum=0.5)
    c, h, w = images.shape[1:]

    def step(it: int) -> float:
        gm.set_network(get_network(arch, c, sampler.num_classes, (h, w), seed=derive_seed(seed, 3, it)))
        total = 0.0
        for ol in range(outer):
            loss = gm(images, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            if ol < outer - 1:
                gm.train_network(images, labels, inner)
        return total / (outer * sampler.num_classes)

    def snapshot() -> PixelSet:
        return PixelSet(images.detach().clone(), labels.clone(), meta={"method": "GM", "arch": arch, "ipc": ipc})

    return _run(iterations, step, progress, f"GM ipc={ipc}", snapshot, callback, callback_every, max_seconds)


def distill_dm(
    real: RealData,
    ipc: int,
    *,
    iterations: int = 20000,
    arch: str | None = None,
    lr_img: float = 1.0,
    batch_real: int = 256,
    dsa: bool = True,
    dsa_strategy: str = DEFAULT_STRATEGY,
    align_corners: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    callback_every: int = 0,
    max_seconds: float | None = None,
) -> PixelSet:
    """Distribution matching from real initialization; images by SGD(lr_img, momentum 0.5)."""
    sampler, images, labels, arch, aug = _setup(real, ipc, arch, seed, dsa, dsa_strategy, align_corners, device)
    c, h, w = images.shape[1:]
    dm = DistributionMatching(
        sampler, network_factory(arch, c, sampler.num_classes, (h, w)), batch_real=batch_real, dsa=aug,
        seed=derive_seed(seed, 2),
    )
    optimizer = torch.optim.SGD([images], lr=lr_img, momentum=0.5)

    def step(it: int) -> float:
        loss = dm(images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach()) / sampler.num_classes

    def snapshot() -> PixelSet:
        return PixelSet(images.detach().clone(), labels.clone(), meta={"method": "DM", "arch": arch, "ipc": ipc})

    return _run(iterations, step, progress, f"DM ipc={ipc}", snapshot, callback, callback_every, max_seconds)


def distill_tm(
    real: RealData,
    ipc: int,
    experts: ExpertBuffer,
    *,
    iterations: int = 5000,
    arch: str | None = None,
    syn_steps: int = 20,
    expert_epochs: int = 3,
    max_start_epoch: int = 25,
    batch_syn: int | None = None,
    lr_img: float = 1000.0,
    lr_lr: float = 1e-5,
    lr_teacher: float = 0.01,
    min_syn_lr: float | None = 0.001,
    unroll: str = "recompute",
    dsa: bool = True,
    dsa_strategy: str = DEFAULT_STRATEGY,
    align_corners: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    callback_every: int = 0,
    max_seconds: float | None = None,
) -> PixelSet:
    """Trajectory matching from real initialization: MTT's ``distill.py`` loop with DD-RUO's
    ``syn_lr`` clamp.

    Images by SGD(lr_img, momentum 0.5), ``syn_lr`` by SGD(lr_lr, momentum 0.5). After each step
    ``syn_lr`` is clamped to ≥ ``min_syn_lr`` (default 0.001, as DD-RUO — and FreD/DDiF — do);
    upstream MTT ``distill.py`` does not clamp, which ``min_syn_lr=None`` reproduces. The
    returned set carries the learned ``syn_lr``.
    """
    sampler, images, labels, arch, aug = _setup(real, ipc, arch, seed, dsa, dsa_strategy, align_corners, device)
    c, h, w = images.shape[1:]
    tm = TrajectoryMatching(
        experts, get_network(arch, c, sampler.num_classes, (h, w), seed=0), syn_steps=syn_steps,
        expert_epochs=expert_epochs, max_start_epoch=max_start_epoch, batch_syn=batch_syn, lr_teacher=lr_teacher,
        dsa=aug, unroll=unroll, seed=derive_seed(seed, 2), device=images.device,
    )
    opt_img = torch.optim.SGD([images], lr=lr_img, momentum=0.5)
    opt_lr = torch.optim.SGD(tm.parameters(), lr=lr_lr, momentum=0.5)

    def step(it: int) -> float:
        loss = tm(images, labels)
        opt_img.zero_grad(set_to_none=True)
        opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        opt_img.step()
        opt_lr.step()
        if min_syn_lr is not None:
            tm.clamp_syn_lr_(min_syn_lr)
        return float(loss.detach())

    def snapshot() -> PixelSet:
        return PixelSet(
            images.detach().clone(), labels.clone(), float(tm.syn_lr.detach()),
            meta={"method": "TM", "arch": arch, "ipc": ipc},
        )

    return _run(iterations, step, progress, f"TM ipc={ipc}", snapshot, callback, callback_every, max_seconds)
