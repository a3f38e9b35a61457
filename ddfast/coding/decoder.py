"""Reading .ddf files: bytes -> QuantizedSet -> images, on the CPU or a GPU.

The latents of every lane of every slice are decoded in parallel by the native wavefront
decoder: C++ with OpenMP over units on the CPU (``csrc/latent_codec.cpp``), one CUDA thread block
per unit on a GPU (``csrc/latent_cuda_kernels.cu``); both run the same integer arithmetic and give
the same latents. Upsampling and synthesis of all slices then run batched, exactly as the
eval-mode forward of the quantized SyntheticSet on that device. A file's soft labels (its
soft-label section, ``ddfast.coding.label_section``) come back with them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ddfast import _cpu
from ddfast.codec import CodecConfig
from ddfast.codec.stack import CodecStack
from ddfast.coding import cuda_decoder
from ddfast.coding.container import unpack
from ddfast.coding.intarm import fixed_point_arm_of
from ddfast.coding.label_section import read_soft_labels
from ddfast.coding.lanes import Geometry, lane_plan
from ddfast.coding.parsed import ParsedFile
from ddfast.coding.quantized import MODULES, QuantizedSet, tensor_specs
from ddfast.coding.slices import read_slice
from ddfast.device import resolve_device
from ddfast.errors import BitstreamError, ConfigError
from ddfast.rans import _cuda, _status


def tensor_shapes(config: CodecConfig, image_size: tuple[int, int], channels: int) -> dict[str, tuple[int, ...]]:
    """Shape of every network tensor of one slice codec, by name."""
    template = CodecStack(1, 1, image_size, channels, config, init_latents=False)
    return {spec.name: tuple(spec.view(template).shape[1:]) for spec in tensor_specs(config, channels)}


def _chosen_classes(classes: Sequence[int] | None, num_classes: int) -> tuple[int, ...]:
    if classes is None:
        return tuple(range(num_classes))
    try:
        picked = tuple(int(c) for c in classes)
    except (TypeError, ValueError):
        raise ConfigError(f"classes must be a list of class ids, got {classes!r}") from None
    bad = [c for c in picked if not 0 <= c < num_classes]
    if bad or not picked or len(set(picked)) != len(picked):
        raise ConfigError(f"classes must be distinct ids in [0, {num_classes}), got {list(classes)}")
    return tuple(sorted(picked))


def parse(data: bytes, classes: Sequence[int] | None = None) -> ParsedFile:
    """Check and parse the header and the sections of the chosen classes (all by default)."""
    container = unpack(data)
    header = container.header
    layout = header.layout
    chosen = _chosen_classes(classes, header.num_classes)
    slices = [s for c in chosen for s in layout.class_slices(c)]
    geometry = Geometry.of(header.image_size, header.config.n_grids, header.config.arm_context)
    plan = lane_plan(geometry, [layout.slice_sizes[s] for s in slices], header.lane_symbols)
    shapes = tensor_shapes(header.config, header.image_size, header.channels)
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    specs = tensor_specs(header.config, header.channels)
    contents = []
    for j, s in enumerate(slices):
        first, last = plan.slice_lanes[j]
        contents.append(read_slice(container.section(s), specs, sizes, last - first))
    return ParsedFile(container, header, slices, contents, geometry, plan, chosen)


def stacked_tensors(parsed: ParsedFile) -> dict[str, torch.Tensor]:
    """The chosen slices' network tensors by name, float32 [S, ...] on the CPU."""
    h = parsed.header
    shapes = tensor_shapes(h.config, h.image_size, h.channels)
    out = {}
    for spec in tensor_specs(h.config, h.channels):
        values = np.stack([d.tensor(spec) for d in parsed.data]).reshape(len(parsed.data), *shapes[spec.name])
        out[spec.name] = torch.from_numpy(values)
    return out


def decode_latents_cpu(parsed: ParsedFile, arm: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(latents int32 [S, n_max, M], per-lane status) with the C++ wavefront decoder."""
    words = np.concatenate([d.words for d in parsed.data])
    lane_words = np.concatenate([d.lane_words for d in parsed.data])
    supports = np.array([d.support for d in parsed.data], dtype=np.int32).reshape(-1, 2)
    grids, offsets = parsed.geometry.arrays()
    layout = parsed.header.layout
    n_max = max(layout.slice_sizes[s] for s in parsed.slices)
    return _cpu.latent_decode(words, lane_words, arm[0], arm[1], parsed.header.config.arm_depth, grids, offsets,
                              parsed.geometry.shift, parsed.plan.units, parsed.plan.lanes, supports,
                              len(parsed.slices), n_max)


def _raise_for_lanes(parsed: ParsedFile, status: np.ndarray) -> None:
    bad = np.flatnonzero(status != _status.OK)
    if not len(bad):
        return
    lane = int(bad[0])
    j = next(j for j, (first, last) in enumerate(parsed.plan.slice_lanes) if first <= lane < last)
    s = parsed.slices[j]
    detail = _status.describe(int(status[lane]))
    more = f" ({len(bad) - 1} more lanes failed)" if len(bad) > 1 else ""
    raise BitstreamError(f"section {s} (slice {s}, class {parsed.header.layout.slice_class[s]}): latent lane "
                         f"{lane - parsed.plan.slice_lanes[j][0]}: {detail}{more}")


def decode(data: bytes, device: torch.device | str | None = "cpu", classes: Sequence[int] | None = None) -> QuantizedSet:
    """The QuantizedSet of a .ddf file (only the given classes, in file order), its tensors on ``device``."""
    dev = resolve_device(device)
    parsed = parse(data, classes)
    h = parsed.header
    soft_labels = read_soft_labels(parsed.container, parsed.classes if classes is not None else None)
    tensors = stacked_tensors(parsed)
    arm = fixed_point_arm_of(tensors, h.config.arm_depth)
    if dev.type == "cuda" and _cuda.unavailable_reason() is None:
        latents, status = cuda_decoder.decode_latents(parsed, arm, dev)
    else:  # the C++ decoder; a GPU without the CUDA library (no nvcc) gets the CPU's latents
        latents, status = decode_latents_cpu(parsed, arm)
        latents = torch.from_numpy(latents).to(dev)
    _raise_for_lanes(parsed, status)
    steps = {m: torch.tensor([d.steps[m] for d in parsed.data], dtype=torch.int64) for m in MODULES}
    return QuantizedSet(
        config=h.config, image_size=h.image_size, channels=h.channels,
        images_per_class=tuple(h.images_per_class[c] for c in parsed.classes), slice_size=h.slice_size,
        latents=latents, steps=steps, tensors={name: t.to(dev) for name, t in tensors.items()},
        classes=parsed.classes if classes is not None else None, normalization=h.normalization, syn_lr=h.syn_lr,
        soft_labels=soft_labels)


class Decompressed(tuple):
    """``(images, labels)`` of a decoded file (unpacks as that pair; also ``.images``, ``.labels``)
    with its soft labels as ``.soft_labels``: float32 [N, K] probabilities, one row per image and
    one column per class of the file, or None when the file has none."""

    soft_labels: torch.Tensor | None

    def __new__(cls, images: torch.Tensor, labels: torch.Tensor,
                soft_labels: torch.Tensor | None = None) -> "Decompressed":
        self = super().__new__(cls, (images, labels))
        self.soft_labels = soft_labels
        return self

    @property
    def images(self) -> torch.Tensor:
        """The decoded images [N, C, H, W], class-major."""
        return self[0]

    @property
    def labels(self) -> torch.Tensor:
        """The class id of every image [N]."""
        return self[1]


def decompress(data: bytes, device: torch.device | str | None = "cpu",
               classes: Sequence[int] | None = None) -> Decompressed:
    """Decode a .ddf file to (images [N, C, H, W] float32 in [0, 1]-ish pixel space, labels [N] int64).

    Images are class-major, in the file's class order (also when ``classes`` picks some, in any
    order); labels are the file's class ids. They equal the eval-mode forward of the quantized
    model on ``device``. ``.soft_labels`` of the result holds the file's soft labels of these
    images, exactly the quantized values (``ddfast.labels.SoftLabels.probabilities``), or None.
    """
    qset = decode(data, device, classes)
    syn = qset.to_synthetic_set(resolve_device(device))
    with torch.no_grad():
        images, labels = syn()
    ids = torch.tensor(qset.class_ids, device=labels.device)
    soft = qset.soft_labels.probabilities(labels.device) if qset.soft_labels is not None else None
    return Decompressed(images, ids[labels], soft)
