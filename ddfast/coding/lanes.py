"""Wavefront order and lanes: how the latents of a slice are cut into rANS streams.

Grid g of an image is H_g x W_g. A latent at row r, column x is decoded at step t = x + s * r,
where s is the context's wavefront shift (``ddfast.codec.wavefront_shift``): every context
position then lies at an earlier step, so all latents of one step (of every grid, image and
slice) can be decoded together. The rows of an image are listed grid after grid, top to bottom
(the "row index").

A *lane* is one rANS stream. Lanes never cross slices, and a lane either holds whole images or
a contiguous range of rows of a single image:

- images of m >= ``lane_symbols`` latents are split into min(m // lane_symbols, rows) lanes of
  near-equal size, cut between rows; each such image is a *unit* of its own;
- smaller images are grouped: k = ceil(lane_symbols / m) images per lane, n // k lanes per
  slice (at least one) of near-equal image counts; each lane is a unit.

A unit is what one decoder thread (CPU) or thread block (GPU) runs from the first step to the
last. A lane codes its symbols in the order: step, then image of the unit, then row index.
The plan depends only on the header (shapes, counts, lane_symbols), never on the data, so the
encoder and decoder derive the same plan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from ddfast.codec.context import context_offsets, wavefront_shift
from ddfast.codec.layout import grid_shapes
from ddfast.errors import ConfigError

DEFAULT_LANE_SYMBOLS = 16384


@dataclass(frozen=True)
class Geometry:
    """Grid shapes, context offsets and wavefront shift shared by every image of a set."""

    grid_shapes: tuple[tuple[int, int], ...]
    offsets: tuple[tuple[int, int], ...]
    shift: int

    @classmethod
    def of(cls, image_size: tuple[int, int], n_grids: int, context: int) -> "Geometry":
        """The geometry of images of ``image_size`` with ``n_grids`` grids and context size C."""
        return cls(grid_shapes(tuple(image_size), n_grids), context_offsets(context), wavefront_shift(context))

    @cached_property
    def grid_offset(self) -> np.ndarray:
        """First latent of each grid in an image's flat vector, plus the total (G + 1 entries)."""
        return np.concatenate(([0], np.cumsum([h * w for h, w in self.grid_shapes]))).astype(np.int64)

    @cached_property
    def grid_row(self) -> np.ndarray:
        """First row index of each grid, plus the number of rows (G + 1 entries)."""
        return np.concatenate(([0], np.cumsum([h for h, _ in self.grid_shapes]))).astype(np.int64)

    @property
    def image_latents(self) -> int:
        return int(self.grid_offset[-1])

    @property
    def rows(self) -> int:
        return int(self.grid_row[-1])

    @property
    def steps(self) -> int:
        return max(w + (h - 1) * self.shift for h, w in self.grid_shapes)

    @cached_property
    def row_widths(self) -> np.ndarray:
        """Latents in each row of an image, in row-index order."""
        return np.concatenate([np.full(h, w) for h, w in self.grid_shapes]).astype(np.int64)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(grid_shapes int32 [G, 2], offsets int32 [C, 2]) for the native coder."""
        return (np.array(self.grid_shapes, dtype=np.int32).reshape(-1, 2),
                np.array(self.offsets, dtype=np.int32).reshape(-1, 2))


@dataclass(frozen=True)
class LanePlan:
    """Units [U, 5] (slice, image_begin, image_count, lane_begin, lane_count) and lanes [L, 2] (rows).

    ``slice_lanes[s]`` is the range of lanes of the plan's s-th slice (lanes are slice-major).
    """

    units: np.ndarray
    lanes: np.ndarray
    slice_lanes: tuple[tuple[int, int], ...]

    @property
    def num_lanes(self) -> int:
        return len(self.lanes)


def _row_cuts(widths: np.ndarray, parts: int) -> list[int]:
    """Cut the rows into ``parts`` non-empty ranges of near-equal latent counts; returns part starts."""
    cumulative = np.concatenate(([0], np.cumsum(widths)))
    total, rows = int(cumulative[-1]), len(widths)
    starts = [0]
    for j in range(1, parts):
        cut = int(np.searchsorted(cumulative * parts, j * total, side="left"))
        cut = min(max(cut, starts[-1] + 1), rows - (parts - j))
        starts.append(cut)
    return starts


def plan_slice(geometry: Geometry, images: int, lane_symbols: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """Units (image_begin, image_count, lanes) and lanes (row_begin, row_end) of one slice."""
    m, rows = geometry.image_latents, geometry.rows
    units: list[tuple[int, int, int]] = []
    lanes: list[tuple[int, int]] = []
    if m >= lane_symbols:
        parts = min(m // lane_symbols, rows)
        starts = _row_cuts(geometry.row_widths, parts) + [rows]
        for image in range(images):
            units.append((image, 1, parts))
            lanes.extend(zip(starts[:-1], starts[1:]))
        return units, lanes
    per_lane = math.ceil(lane_symbols / m)
    count = max(1, images // per_lane)
    base, extra = divmod(images, count)
    begin = 0
    for j in range(count):
        size = base + (1 if j < extra else 0)
        units.append((begin, size, 1))
        lanes.append((0, rows))
        begin += size
    return units, lanes


def lane_plan(geometry: Geometry, slice_sizes: Sequence[int], lane_symbols: int) -> LanePlan:
    """The plan of every slice, in order; unit slice indices count the given slices from 0."""
    if not (isinstance(lane_symbols, int) and lane_symbols >= 1):
        raise ConfigError(f"lane_symbols must be a positive integer, got {lane_symbols!r}")
    units, lanes, slice_lanes = [], [], []
    for s, images in enumerate(slice_sizes):
        first = len(lanes)
        slice_units, slice_lanes_rows = plan_slice(geometry, int(images), lane_symbols)
        for image_begin, image_count, count in slice_units:
            units.append((s, image_begin, image_count, len(lanes), count))
            lanes.extend(slice_lanes_rows[:count])
            slice_lanes_rows = slice_lanes_rows[count:]
        slice_lanes.append((first, len(lanes)))
    return LanePlan(np.array(units, dtype=np.int32).reshape(-1, 5), np.array(lanes, dtype=np.int32).reshape(-1, 2),
                    tuple(slice_lanes))


def coding_order(geometry: Geometry, image_count: int, row_begin: int, row_end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A lane's symbols in coding order: (image within the unit, flat latent index, step), each [n].

    The plain-numpy twin of the native coder's traversal (csrc/latent_coder.h, for_lane_step).
    """
    images, flats, steps, rows = [], [], [], []
    for g, (h, w) in enumerate(geometry.grid_shapes):
        first = int(geometry.grid_row[g])
        for r in range(max(row_begin - first, 0), min(row_end - first, h)):
            x = np.arange(w)
            for i in range(image_count):
                images.append(np.full(w, i))
                flats.append(geometry.grid_offset[g] + r * w + x)
                steps.append(x + geometry.shift * r)
                rows.append(np.full(w, first + r))
    if not images:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    image, flat, step, row = (np.concatenate(a).astype(np.int64) for a in (images, flats, steps, rows))
    order = np.lexsort((row, image, step))
    return image[order], flat[order], step[order]
