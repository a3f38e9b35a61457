"""The plain reference decoder of .ddf files: the twin of the native decoder and its speed baseline.

It decodes the way the DD-RUO reference decodes its bitstream -- one slice after another, the
ARM evaluated in torch as the decoding advances -- but per wavefront step instead of per symbol:
at each step the integer ARM (``ddfast.coding.intarm.arm_reference``, int64 torch) runs on the
step's latents of the slice, then every lane decodes its symbols of the step one call at a time
through ``ddfast.rans.IncrementalDecoder``. The coding order comes from ``lanes.coding_order``
(numpy), not from the native traversal, and the images from the per-slice codec of
``ddfast.codec.reference``. Only the file parsing and the rANS lane coder are shared with the
fast path.
"""
from __future__ import annotations

import numpy as np
import torch

from ddfast.codec.reference import slice_upsample
from ddfast.codec.synthesis import synthesis_forward
from ddfast.codec.synthetic_set import OUTPUT_LEVELS
from ddfast.coding.decoder import parse, stacked_tensors
from ddfast.coding.intarm import FREQUENCY_FLOOR, arm_reference, fixed_point_arm_of, split_layers
from ddfast.coding.lanes import coding_order
from ddfast.coding.parsed import ParsedFile
from ddfast.ops.torch_ops import neighbour_index
from ddfast.rans import IncrementalDecoder, RansStreams


def _step_positions(parsed: ParsedFile) -> list[np.ndarray]:
    """Flat latent indices of an image decoded at each wavefront step."""
    g = parsed.geometry
    steps = [[] for _ in range(g.steps)]
    for grid, (h, w) in enumerate(g.grid_shapes):
        for r in range(h):
            for x in range(w):
                steps[x + g.shift * r].append(int(g.grid_offset[grid]) + r * w + x)
    return [np.array(p, dtype=np.int64) for p in steps]


def decode_slice_latents(parsed: ParsedFile, arm: tuple[np.ndarray, np.ndarray], j: int) -> np.ndarray:
    """Latents [n, M] of the j-th chosen slice."""
    h, g = parsed.header, parsed.geometry
    images = h.layout.slice_sizes[parsed.slices[j]]
    layer_w, layer_b = split_layers(arm[0][j], arm[1][j], h.config.arm_context, h.config.arm_depth)
    neighbours = neighbour_index(g.grid_shapes, g.offsets)  # [M, C], M = a zero slot
    latents = torch.zeros(images, g.image_latents + 1, dtype=torch.int64)
    mu = torch.zeros(images, g.image_latents, dtype=torch.int64)
    ls = torch.zeros_like(mu)
    first_lane, last_lane = parsed.plan.slice_lanes[j]
    # Each lane's symbols in coding order, as (slice image, flat index), split by step.
    lanes = []
    for unit in parsed.plan.units[parsed.plan.units[:, 0] == j]:
        _, image_begin, image_count, lane_begin, lane_count = (int(v) for v in unit)
        for lane in range(lane_begin, lane_begin + lane_count):
            image, flat, step = coding_order(g, image_count, *parsed.plan.lanes[lane])
            bounds = np.searchsorted(step, np.arange(g.steps + 1))
            lanes.append((lane - first_lane, image + image_begin, flat, bounds))
    data = parsed.data[j]
    lo, hi = data.support
    decoder = IncrementalDecoder(RansStreams(data.words, data.lane_words), lo, hi, backend="cpp",
                                 floor=FREQUENCY_FLOOR)
    for t, positions in enumerate(_step_positions(parsed)):
        context = latents[:, neighbours[torch.from_numpy(positions)].reshape(-1)]
        step_mu, step_ls = arm_reference(context.reshape(-1, h.config.arm_context), layer_w, layer_b)
        mu[:, positions] = step_mu.reshape(images, -1)
        ls[:, positions] = step_ls.reshape(images, -1)
        pending = [(lane, image[b[t]:b[t + 1]], flat[b[t]:b[t + 1]]) for lane, image, flat, b in lanes]
        for k in range(max((len(p[1]) for p in pending), default=0)):
            live = [p for p in pending if len(p[1]) > k]
            ids = np.array([p[0] for p in live], dtype=np.int64)
            img = np.array([p[1][k] for p in live])
            pos = np.array([p[2][k] for p in live])
            symbols = decoder.decode_step(ids, mu[img, pos].numpy().astype(np.int32), ls[img, pos].numpy().astype(np.int32))
            latents[img, pos] = torch.from_numpy(symbols).to(torch.int64)
    decoder.finish()
    return latents[:, :-1].to(torch.int32).numpy()


def decompress_reference(data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of a file, slice after slice, on the CPU (slow; for tests and benchmarks)."""
    parsed = parse(data)
    h = parsed.header
    tensors = stacked_tensors(parsed)
    arm = fixed_point_arm_of(tensors, h.config.arm_depth)
    layers = h.config.synthesis_layers(h.channels)
    images = []
    for j in range(len(parsed.slices)):
        latents = torch.from_numpy(decode_slice_latents(parsed, arm, j)).to(torch.float32)
        upsampled = slice_upsample(latents, parsed.geometry.grid_shapes, tensors["upsampling_kernel"][j])
        weights = [tensors[f"synthesis.weights.{i}"][j] for i in range(len(layers))]
        biases = [tensors[f"synthesis.biases.{i}"][j] for i in range(len(layers))]
        decoded = synthesis_forward(upsampled, layers, weights, biases)
        images.append(torch.round(decoded * OUTPUT_LEVELS) / OUTPUT_LEVELS)
    labels = torch.tensor([h.layout.slice_class[s] for s in parsed.slices for _ in range(h.layout.slice_sizes[s])])
    return torch.cat(images), labels
