"""Distillation over several processes (``torchrun``): the slices sharded, the result of one process.

``torchrun --nproc-per-node N -m ddfast distill ...`` -- or ``ddfast.distill(...)`` in processes
that torchrun started or that joined a ``torch.distributed`` group -- splits the classes into N
contiguous blocks (:class:`Partition`). Rank r keeps the codecs of its block's slices and their
Adam state, decodes only them and steps only them (:class:`ShardedJointTrainer`). Every rank draws
the random values one process draws -- the quantization noise of every slice (keeping its own
rows), the networks, every class's real batch and DSA seed -- so a run equals the single-process
run up to float rounding:

- a loss that is a sum of per-class terms (the utility's ``per_class_loss``: DM without
  BatchNorm, GM) is computed by each rank on its own classes; the reported loss is their sum;
- any other loss (TM: the unroll's minibatches mix classes) sees every class's images, gathered
  from all ranks; every rank computes the same loss and keeps its own images' part of the
  gradient (the loss's own parameters, TM's syn_lr, get the same gradient on every rank);
- GM's inner loop trains its network on every class's images, gathered without gradient.

What happens once is rank 0's, while the others wait: the warm-up (its random draws span all
slices), training experts, the log, the checkpoints (gathered from every rank, in the format of
one process, so a run resumes with any number of processes), the ``.ddf`` file and the
evaluation. Every rank must reach the run folder (one machine, or a shared file system).
Backends: NCCL on CUDA devices (rank r on ``cuda:LOCAL_RANK``), gloo on the CPU.
"""
from __future__ import annotations

import os
from bisect import bisect_left
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

from ddfast.codec import SyntheticSet
from ddfast.codec.layout import SliceLayout
from ddfast.distill.joint import JointTrainer, RateUtility, StepResult, Transform, Utility
from ddfast.errors import BackendError, ConfigError, DDFastError

T = TypeVar("T")

WAIT = timedelta(hours=24)
"""How long a rank may wait in a collective: the others wait while rank 0 warms up, writes and evaluates."""

# Quantizer modes whose training quantization adds noise (see ddfast.codec.quantizer.Quantizer).
_NOISY_MODES = ("softround", "none")


# -- the process group ----------------------------------------------------------------------------
def active() -> bool:
    """Whether this process is one of several in an initialized ``torch.distributed`` group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: the group's, or torchrun's ``RANK`` before the group exists (0 alone)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes the run's files (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if active():
        dist.barrier()


def share(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (``obj`` itself in a single process)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on rank 0 only; a ``DDFastError`` it raises is raised on every rank."""
    if not active():
        fn(*args)
        return
    error = None
    if is_main():
        try:
            fn(*args)
        except DDFastError as err:
            error = err
    error = share(error)
    if error is not None:
        raise error


@contextmanager
def joined(device: torch.device) -> Iterator[torch.device]:
    """This process's device while it takes part in a run over several processes.

    Started by torchrun (``WORLD_SIZE`` > 1) with no group yet: joins one (NCCL on CUDA, gloo on the
    CPU) for the body and leaves it after. A group that exists already is used as it is. A CUDA
    device without an index becomes ``cuda:LOCAL_RANK``. A single process keeps ``device``.
    """
    own = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not (dist.is_available() and dist.is_initialized())
    if not (own or active()):
        yield device
        return
    if device.type == "cuda":
        if device.index is None:
            local = os.environ.get("LOCAL_RANK")
            device = torch.device("cuda", int(local) if local is not None else rank() % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not own:
        yield device
        return
    if not dist.is_available():
        raise BackendError("this torch build has no torch.distributed; run one process")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=WAIT)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def gather_rows(part: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Every rank's ``part`` (rank r's has ``sizes[r]`` rows) concatenated in rank order, on every rank."""
    width = max(sizes)
    if width == 0:
        return part
    padded = part.new_zeros((width, *part.shape[1:]))
    padded[: part.shape[0]] = part
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


class _GatherRows(torch.autograd.Function):
    """:func:`gather_rows` whose backward keeps this rank's rows of the gradient: every rank
    computes the same loss from the gathered rows, so that part is the whole gradient of its own."""

    @staticmethod
    def forward(ctx: Any, part: torch.Tensor, sizes: tuple[int, ...], own: int) -> torch.Tensor:  # type: ignore[override]
        ctx.start, ctx.stop = sum(sizes[:own]), sum(sizes[:own + 1])
        return gather_rows(part.detach(), sizes)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        return grad[ctx.start:ctx.stop], None, None


# -- who holds what -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Partition:
    """Contiguous blocks of classes, one per rank (near-equal class counts), with their slices and
    images (as ranges of the whole set's class-major slices and images)."""

    class_starts: tuple[int, ...]
    slice_starts: tuple[int, ...]
    image_starts: tuple[int, ...]

    @classmethod
    def build(cls, layout: SliceLayout, world: int) -> "Partition":
        classes = layout.num_classes
        if not 1 <= world <= classes:
            raise ConfigError(f"{world} processes for {classes} classes: each process needs a class of its own")
        class_starts = tuple(r * classes // world for r in range(world + 1))
        slice_starts = tuple(bisect_left(layout.slice_class, c) for c in class_starts)
        image_starts = tuple(sum(layout.images_per_class[:c]) for c in class_starts)
        return cls(class_starts, slice_starts, image_starts)

    @property
    def world(self) -> int:
        return len(self.class_starts) - 1

    def classes(self, r: int) -> range:
        return range(self.class_starts[r], self.class_starts[r + 1])

    def slices(self, r: int) -> range:
        return range(self.slice_starts[r], self.slice_starts[r + 1])

    def images(self, r: int) -> range:
        return range(self.image_starts[r], self.image_starts[r + 1])

    def slice_counts(self) -> list[int]:
        return [len(self.slices(r)) for r in range(self.world)]

    def image_counts(self) -> list[int]:
        return [len(self.images(r)) for r in range(self.world)]


def shard_set(syn: SyntheticSet, partition: Partition, r: int) -> SyntheticSet:
    """A set holding copies of the codecs of rank ``r``'s classes of ``syn`` (labels from 0)."""
    classes, slices = partition.classes(r), partition.slices(r)
    part = SyntheticSet(list(syn.layout.images_per_class[classes.start:classes.stop]), syn.image_size,
                        channels=syn.channels, config=syn.config, slice_size=syn.slice_size,
                        generator=torch.Generator().manual_seed(0), backend=syn.backend, init_latents=False,
                        device=syn.valid.device).to(syn.stack.latents.dtype)
    if part.layout.max_slice_size != syn.layout.max_slice_size:
        raise ConfigError(f"classes {classes.start}-{classes.stop - 1} hold at most {part.layout.max_slice_size} "
                          f"images per slice, the set {syn.layout.max_slice_size}: a run over several processes "
                          "needs the same largest slice in every block of classes")
    part.load_state_dict({k: v[slices.start:slices.stop] for k, v in syn.state_dict().items()})
    part.quantizer, part.metadata = syn.quantizer, dict(syn.metadata)
    return part.train(syn.training)


# -- the joint phase, sharded ------------------------------------------------------------------------
class ShardedJointTrainer(JointTrainer):
    """The joint phase of one rank: ``syn`` is the whole set (the same on every rank); this rank
    trains the codecs of its classes (``self.syn``), and :meth:`gather_set` brings every rank's
    trained codecs back into ``syn``. Arguments as :class:`JointTrainer`'s; needs an initialized
    process group."""

    def __init__(self, syn: SyntheticSet, utility: Utility, weights: RateUtility, transform: Transform,
                 seed: int = 0) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise ConfigError("ShardedJointTrainer needs a torch.distributed process group (start with torchrun)")
        self.full = syn
        self.rank = dist.get_rank()
        self.partition = Partition.build(syn.layout, dist.get_world_size())
        super().__init__(shard_set(syn, self.partition, self.rank), utility, weights, transform, seed)
        self.per_class = bool(getattr(utility, "per_class_loss", False))
        self.reads_images = bool(getattr(utility, "reads_step_images", False))
        self._sizes = self.partition.image_counts()

    def _noise(self) -> torch.Tensor | None:
        """This rank's rows of the quantization noise of the whole set, drawn whole as one process does."""
        if self.syn.quantizer.mode not in _NOISY_MODES:
            return None
        rows = self.partition.slices(self.rank)
        return self.syn.quantizer.sample_noise(self.full.stack.latents, self.noise)[rows.start:rows.stop]

    def _decode(self, subset: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        noise = self._noise()
        offset = self.partition.classes(self.rank).start
        if subset is None:
            images, labels = self.syn(noise=noise)
            self._sizes = self.partition.image_counts()
            if self.per_class:
                return images, labels + offset
            return _GatherRows.apply(images, tuple(self._sizes), self.rank), self.full.labels
        index = torch.as_tensor(subset, dtype=torch.int64).reshape(-1).cpu()
        total = self.full.layout.num_images
        if index.numel() and (index.min() < 0 or index.max() >= total):
            raise ConfigError(f"image indices must lie in [0, {total})")
        owner = torch.searchsorted(torch.tensor(self.partition.image_starts[1:]), index, right=True)
        start = self.partition.images(self.rank).start
        images, labels = self.syn.forward_subset(index[owner == self.rank] - start, noise=noise)
        self._sizes = torch.bincount(owner, minlength=self.partition.world).tolist()
        if self.per_class:
            return images, labels + offset
        gathered = _GatherRows.apply(images, tuple(self._sizes), self.rank)  # rank by rank, each in subset order
        order = torch.argsort(owner, stable=True)
        return gathered[torch.argsort(order).to(gathered.device)], self.full.labels[index.to(self.full.labels.device)]

    def _result(self, utility: torch.Tensor, bits: torch.Tensor, bpp: torch.Tensor, inputs: torch.Tensor,
                labels: torch.Tensor) -> StepResult:
        loss = utility.detach().clone()
        if self.per_class:
            dist.all_reduce(loss)
            if self.reads_images:
                inputs, labels = gather_rows(inputs.detach(), self._sizes), gather_rows(labels, self._sizes)
        slices = self.partition.slice_counts()
        return super()._result(loss, gather_rows(bits.detach(), slices), gather_rows(bpp.detach(), slices), inputs,
                               labels)

    def _gather_slices(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's slices of one state tensor (slice dimension first), where ``tensor`` lives."""
        device = self.syn.valid.device
        return gather_rows(tensor.to(device), self.partition.slice_counts()).to(tensor.device)

    def state_dict(self) -> dict[str, Any]:
        """The state of one process training the whole set (collective: every rank calls it)."""
        state = super().state_dict()
        state["syn"] = {k: self._gather_slices(v) for k, v in state["syn"].items()}
        optimizer = state["optimizer"]
        state["optimizer"] = {**optimizer, "state": {
            i: {k: self._gather_slices(v) if torch.is_tensor(v) and v.dim() > 0 else v for k, v in s.items()}
            for i, s in optimizer["state"].items()}}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore this rank's part of a whole-set state (from :meth:`state_dict` or one process)."""
        rows = self.partition.slices(self.rank)
        own = slice(rows.start, rows.stop)
        optimizer = state["optimizer"]
        super().load_state_dict({**state, "syn": {k: v[own] for k, v in state["syn"].items()}, "optimizer": {
            **optimizer, "state": {i: {k: v[own].clone() if torch.is_tensor(v) and v.dim() > 0 else v
                                       for k, v in s.items()} for i, s in optimizer["state"].items()}}})

    @torch.no_grad()
    def gather_set(self) -> SyntheticSet:
        """The whole set ``syn`` holding every rank's trained codecs (collective: every rank calls it)."""
        self.full.load_state_dict({k: self._gather_slices(v) for k, v in self.syn.state_dict().items()})
        return self.full
