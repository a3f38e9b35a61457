"""Writing .ddf files: a SyntheticSet -> post-quantization -> bytes."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ddfast import _cpu
from ddfast.codec import SyntheticSet
from ddfast.coding.container import Header, pack
from ddfast.coding.label_section import check_soft_labels, row_classes, write_label_section
from ddfast.coding.lanes import DEFAULT_LANE_SYMBOLS, lane_plan
from ddfast.coding.postquant import DEFAULT_MSE_THRESHOLD, check_synthetic_set, post_quantize
from ddfast.coding.quantized import MODULES, RAW, QuantizedSet
from ddfast.coding.slices import write_slice
from ddfast.errors import ConfigError
from ddfast.labels import SoftLabels

Normalization = tuple[Sequence[float], Sequence[float]]


def check_lane_symbols(lane_symbols: int) -> int:
    """The lane length as an int; ConfigError unless it is an integer in [1, 2^31]."""
    if isinstance(lane_symbols, bool) or not isinstance(lane_symbols, (int, np.integer)) or not 1 <= lane_symbols <= 2 ** 31:
        raise ConfigError(f"lane_symbols must be an integer in [1, 2^31], got {lane_symbols!r}")
    return int(lane_symbols)


def check_normalization(normalization: Normalization | None, channels: int) -> tuple | None:
    """(mean, std) as float tuples of one value per channel (stds positive), or None; ConfigError otherwise."""
    if normalization is None:
        return None
    try:
        mean, std = (tuple(float(v) for v in part) for part in normalization)
    except (TypeError, ValueError):
        raise ConfigError(f"normalization must be (mean, std), one value per channel each, got {normalization!r}") from None
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"normalization needs {channels} means and {channels} stds, got {len(mean)} and {len(std)}")
    if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise ConfigError(f"normalization needs finite means and finite positive stds, got {normalization!r}")
    return mean, std


def check_syn_lr(syn_lr: float | None) -> float | None:
    """A finite float, or None; ConfigError otherwise."""
    if syn_lr is None:
        return None
    try:
        value = float(syn_lr)
    except (TypeError, ValueError):
        raise ConfigError(f"syn_lr must be a number, got {syn_lr!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"syn_lr must be finite, got {syn_lr!r}")
    return value


def encode(qset: QuantizedSet, lane_symbols: int = DEFAULT_LANE_SYMBOLS) -> bytes:
    """The .ddf bytes of a post-quantized set (deterministic: the same set gives the same bytes).

    ``qset.soft_labels``, when set, becomes the file's soft-label section; without soft labels
    the file has no such section.
    """
    lane_symbols = check_lane_symbols(lane_symbols)
    counts = tuple(qset.images_per_class)
    soft_labels = check_soft_labels(qset.soft_labels, sum(counts), len(counts))
    header = Header(qset.channels, tuple(qset.image_size), counts, qset.slice_size, qset.config,
                    lane_symbols, check_normalization(qset.normalization, qset.channels), check_syn_lr(qset.syn_lr),
                    soft_labels is not None)
    layout, geometry = qset.layout, qset.geometry
    plan = lane_plan(geometry, layout.slice_sizes, lane_symbols)
    weights, biases = qset.fixed_point_arm()
    supports = qset.supports()
    grids, offsets = geometry.arrays()
    latents = np.ascontiguousarray(qset.latents.cpu().numpy(), dtype=np.int32)
    words, lane_words = _cpu.latent_encode(latents, weights, biases, qset.config.arm_depth, grids, offsets,
                                           geometry.shift, plan.units, plan.lanes, supports)
    word_offsets = np.concatenate(([0], np.cumsum(lane_words)))
    specs = qset.specs
    integers = {s.name: qset.integers(s.name).reshape(layout.num_slices, -1).numpy() for s in specs}
    floats = {s.name: qset.tensors[s.name].reshape(layout.num_slices, -1).float().cpu().numpy() for s in specs}
    sections = []
    for s in range(layout.num_slices):
        steps = {m: (int(qset.steps[m][s, 0]), int(qset.steps[m][s, 1])) for m in MODULES}
        raw = {m for m in MODULES if steps[m][0] == RAW}
        first, last = plan.slice_lanes[s]
        sections.append(write_slice(
            steps, tuple(supports[s]),
            {spec.name: integers[spec.name][s] for spec in specs if spec.module not in raw},
            {spec.name: floats[spec.name][s] for spec in specs if spec.module in raw}, specs,
            lane_words[first:last], words[word_offsets[first]:word_offsets[last]]))
    labels = write_label_section(soft_labels, row_classes(counts)) if soft_labels is not None else None
    return pack(header, sections, labels)


def compress(syn: SyntheticSet, mse_threshold: float = DEFAULT_MSE_THRESHOLD, lane_symbols: int = DEFAULT_LANE_SYMBOLS,
             *, normalization: Normalization | None = None, syn_lr: float | None = None,
             soft_labels: SoftLabels | tuple[torch.Tensor, float] | None = None, search: str = "fast",
             progress: bool = False) -> bytes:
    """Post-quantize ``syn`` and return its .ddf file: a real file whose size is the budget.

    Args:
        mse_threshold: largest MSE (on [0, 1] images) between each slice's decode with quantized
            and with float weights; the paper tries 5e-5, 5e-6, 5e-7 and 5e-8.
        lane_symbols: symbols per rANS lane (longer lanes cost fewer bytes, shorter ones decode
            with more parallelism); see ``ddfast.coding.lanes``.
        normalization: per-channel (mean, std) the decoded images are normalized with for
            training; default ``syn.metadata["normalization"]`` when present.
        syn_lr: a TM set's learned evaluation learning rate; default ``syn.metadata["syn_lr"]``.
        soft_labels: ``(probabilities [N, K], eps)`` (quantized here on the simplex at resolution
            eps = 1/M, ``ddfast.labels.quantize_soft_labels``) or a ``ddfast.labels.SoftLabels``:
            one row per image in the set's class-major order, one column per class. They are
            stored in the file (their bytes count in its size) and returned by ``decompress``.
        search: "fast" (frontier search) or "exhaustive" (every step pair, as the reference).
    """
    check_synthetic_set(syn)
    lane_symbols = check_lane_symbols(lane_symbols)
    normalization = check_normalization(normalization if normalization is not None else
                                         syn.metadata.get("normalization"), syn.channels)
    syn_lr = check_syn_lr(syn_lr if syn_lr is not None else syn.metadata.get("syn_lr"))
    counts = syn.layout.images_per_class
    soft_labels = check_soft_labels(soft_labels, sum(counts), len(counts))
    qset = post_quantize(syn, mse_threshold, search=search, progress=progress)
    qset.normalization, qset.syn_lr, qset.soft_labels = normalization, syn_lr, soft_labels
    return encode(qset, lane_symbols)
