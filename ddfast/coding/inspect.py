"""What a .ddf file holds and where its bytes go: ``ddfast.inspect(data)`` and ``ddfast info``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ddfast import _cpu
from ddfast.coding.decoder import decode, parse
from ddfast.coding.label_section import read_soft_labels
from ddfast.coding.quantized import float_latent_bits
from ddfast.labels import soft_label_bits

PARTS = ("header", "framing", "parameters", "weights", "lane_table", "latents", "soft_labels")
PART_MEANING = {
    "header": "magic, version, header fields and their length and CRC32",
    "framing": "each slice section's length and CRC32",
    "parameters": "each slice's quantization steps and latent support",
    "weights": "the coded network weights (code table, parameters, payload)",
    "lane_table": "the word count of every latent lane",
    "latents": "the rANS words of the latents",
    "soft_labels": "the soft-label section (resolution, codes, its length and CRC32); only in files with one",
}


@dataclass
class SliceInfo:
    """One slice: its class, images, lanes, steps and bytes per part."""

    slice: int
    class_id: int
    images: int
    lanes: int
    steps: dict[str, tuple[int, int]]
    bytes: dict[str, int]


@dataclass
class FileInfo:
    """The shape of a file's set and the bytes of each part (``bytes`` sums to ``total_bytes``)."""

    total_bytes: int
    channels: int
    image_size: tuple[int, int]
    images_per_class: tuple[int, ...]
    slice_size: int | None
    config: dict
    lane_symbols: int
    normalization: tuple | None
    syn_lr: float | None
    bytes: dict[str, int]
    slices: list[SliceInfo] = field(default_factory=list)
    latent_bits: float | None = None            # -sum log2 p of the latents under the integer ARM
    estimated_latent_bits: float | None = None  # the float ARM's estimate (what training measures)
    soft_labels: dict | None = None  # rows, classes, eps, bits per label in the file and DD-RUO's (A4) bound

    @property
    def num_classes(self) -> int:
        """Number of classes in the file."""
        return len(self.images_per_class)

    @property
    def bytes_per_class(self) -> float:
        """The paper's bpc: the file's size divided by the number of classes."""
        return self.total_bytes / self.num_classes

    @property
    def coded_latent_bits(self) -> int:
        """Bits the file spends on latents (the lanes' words)."""
        return 8 * self.bytes["latents"]

    @property
    def overhead_per_slice(self) -> float:
        """Mean bytes per slice that are neither weights nor latents (framing, parameters, lane table)."""
        return (self.bytes["framing"] + self.bytes["parameters"] + self.bytes["lane_table"]) / len(self.slices)

    def to_dict(self) -> dict:
        """Every field and the derived figures (bpc, overheads) as a JSON-ready dict (``ddfast info --json``)."""
        out = asdict(self)
        out.update(num_classes=self.num_classes, bytes_per_class=self.bytes_per_class,
                   coded_latent_bits=self.coded_latent_bits, overhead_per_slice=self.overhead_per_slice)
        return out


def inspect(data: bytes, estimate: bool = True) -> FileInfo:
    """Parse (and check) a whole file; with ``estimate``, also decode its latents for the bit figures."""
    parsed = parse(data)
    h = parsed.header
    layout = h.layout
    slices = []
    for j, (s, content) in enumerate(zip(parsed.slices, parsed.data)):
        first, last = parsed.plan.slice_lanes[j]
        sizes = {"framing": parsed.container.framing_bytes(s), **content.sizes}
        slices.append(SliceInfo(s, layout.slice_class[s], layout.slice_sizes[s], last - first, dict(content.steps), sizes))
    totals = {part: sum(info.bytes.get(part, 0) for info in slices) for part in PARTS if part != "soft_labels"}
    totals["header"] = parsed.container.header_bytes
    labels = read_soft_labels(parsed.container)
    if labels is not None:
        totals["soft_labels"] = parsed.container.label_section_bytes
    info = FileInfo(len(data), h.channels, tuple(h.image_size), tuple(h.images_per_class), h.slice_size,
                    h.config.to_dict(), h.lane_symbols, h.normalization, h.syn_lr, totals, slices)
    if labels is not None:
        info.soft_labels = {"rows": len(labels), "classes": labels.num_classes, "eps": labels.eps,
                            "bits_per_label": 8 * totals["soft_labels"] / len(labels),
                            "bound_bits_per_label": soft_label_bits(labels.num_classes, labels.eps)}
    if estimate:
        qset = decode(data)
        weights, biases = qset.fixed_point_arm()
        grids, offsets = qset.geometry.arrays()
        counts = np.array(layout.slice_sizes, dtype=np.int32)
        info.latent_bits = float(_cpu.latent_bits(
            np.ascontiguousarray(qset.latents.numpy()), counts, weights, biases, h.config.arm_depth, grids, offsets,
            qset.geometry.shift, qset.supports()).sum())
        syn = qset.to_synthetic_set("cpu")
        info.estimated_latent_bits = float(float_latent_bits(syn.stack, qset.latents, layout.slice_sizes).sum())
    return info
