"""A picture of a distilled set, one panel per class, in the layout of DD-RUO's Figs. A1–A14.

A panel's columns are images of the class. Its rows are, top to bottom: the initialization (the
phase-1 codec, when given), the distilled images, then one row per latent grid of the decoder
(grid i has ⌈H/2^i⌉ × ⌈W/2^i⌉ integer latents; it is shown upsampled to H × W by repetition, in a
diverging colour map centred on 0, with one symmetric range per row: ±max|ŷ| of that row).

Page geometry, in pixels (``s`` = scale, every image drawn as ``s·H`` × ``s·W``)::

    width  = LABEL_WIDTH + columns · (s·W + GAP) + MARGIN        (columns: the widest panel)
    height = Σ over panels (HEADER_HEIGHT + rows · (s·H + GAP)) + MARGIN
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ddfast.codec import SyntheticSet
from ddfast.errors import ConfigError
from ddfast.report.figures import new_figure, require_matplotlib, save_png

LABEL_WIDTH = 112
HEADER_HEIGHT = 22
GAP = 2
MARGIN = 4
#: Images per class shown when no columns are chosen.
DEFAULT_COLUMNS = 10
#: Images smaller than this (in pixels, the shorter side) are enlarged by a whole factor by default.
TARGET_TILE = 64
LATENT_COLORMAP = "RdBu_r"


@dataclass
class ClassPanel:
    """One class of a page.

    Attributes:
        class_id: the class id (in the file).
        columns: the image index within the class of every column.
        images: [n, C, H, W] pixels in [0, 1], one per column.
        init: the initialization's images of the same columns, or None.
        latents: per latent grid, the integer latents [n, h_i, w_i] of the columns (empty: no latent rows).
    """

    class_id: int
    columns: list[int]
    images: torch.Tensor
    init: torch.Tensor | None = None
    latents: list[torch.Tensor] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows of the panel: the initialization (if any), the images, one per latent grid."""
        return (self.init is not None) + 1 + len(self.latents)


def default_scale(image_size: tuple[int, int]) -> int:
    """The whole enlargement that brings the shorter image side to at least TARGET_TILE pixels."""
    return max(1, math.ceil(TARGET_TILE / min(image_size)))


def _check_init(syn: SyntheticSet, class_ids: Sequence[int], init: SyntheticSet) -> None:
    if (init.image_size, init.channels) != (syn.image_size, syn.channels):
        raise ConfigError(f"the initialization holds {init.image_size[0]}x{init.image_size[1]}x{init.channels} "
                          f"images, the file {syn.image_size[0]}x{syn.image_size[1]}x{syn.channels}")
    for k, cid in enumerate(class_ids):
        if cid >= init.num_classes:
            raise ConfigError(f"the initialization has {init.num_classes} classes, the file has class {cid}")
        have, want = init.layout.images_per_class[cid], syn.layout.images_per_class[k]
        if have != want:
            raise ConfigError(f"class {cid}: the initialization has {have} images, the file {want}")


def _columns(syn: SyntheticSet, class_ids: Sequence[int], columns: Sequence[int] | None) -> list[list[int]]:
    """The image indices shown for each class; ConfigError for an index some class does not have."""
    counts = syn.layout.images_per_class
    if columns is None:
        return [list(range(min(n, DEFAULT_COLUMNS))) for n in counts]
    chosen = [int(j) for j in columns]
    if not chosen or len(set(chosen)) != len(chosen) or min(chosen) < 0:
        raise ConfigError(f"image indices must be distinct and non-negative, got {list(columns)}")
    for cid, n in zip(class_ids, counts):
        if max(chosen) >= n:
            raise ConfigError(f"image {max(chosen)} asked for, but class {cid} has {n} images (0..{n - 1})")
    return [chosen for _ in counts]


def _split_grids(flat: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """[n, M] latents -> per grid [n, h, w] (grids are stored one after the other, in raster order)."""
    sizes = [h * w for h, w in shapes]
    return [part.reshape(-1, h, w) for part, (h, w) in zip(flat.split(sizes, dim=1), shapes)]


@torch.no_grad()
def _images(syn: SyntheticSet, index: torch.Tensor) -> torch.Tensor:
    """Eval-mode images [n, C, H, W] of class-major images ``index``, on the CPU, clamped to [0, 1]."""
    images, _ = syn.forward_subset(index)
    return images.cpu().float().clamp(0, 1)


def class_panels(syn: SyntheticSet, class_ids: Sequence[int] | None = None, columns: Sequence[int] | None = None,
                 *, init: SyntheticSet | None = None, latents: bool = True) -> list[ClassPanel]:
    """The panels of a page for every class of ``syn`` (decoded in eval mode, only the shown images).

    Args:
        syn: the distilled set, e.g. ``QuantizedSet.to_synthetic_set()`` of a decoded file.
        class_ids: the id of each class of ``syn`` (default 0, 1, ...); ``init`` is indexed by these ids.
        columns: image indices within each class (default: the first DEFAULT_COLUMNS of each class).
        init: the set after phase 1 (a run folder's ``init.pt``): its images form the first row.
        latents: add one row per latent grid.

    Both sets are put in eval mode (rounded latents, the images a file decodes to).
    """
    ids = list(range(syn.num_classes)) if class_ids is None else [int(c) for c in class_ids]
    if len(ids) != syn.num_classes:
        raise ConfigError(f"{len(ids)} class ids given for a set of {syn.num_classes} classes")
    if init is not None:
        _check_init(syn, ids, init)
    shown = _columns(syn, ids, columns)
    syn.eval()
    if init is not None:
        init.eval()
    with torch.no_grad():
        quantized = syn.quantized_latents().cpu()  # integers in eval mode, [S, n_max, M]
    panels = []
    for k, (cid, cols) in enumerate(zip(ids, shown)):
        index = torch.tensor(cols, dtype=torch.int64) + sum(syn.layout.images_per_class[:k])
        panel = ClassPanel(cid, cols, _images(syn, index))
        if latents:
            slice_of, position = syn.layout.locate(index)
            panel.latents = _split_grids(quantized[slice_of, position].round().to(torch.int32), syn.stack.grid_shapes)
        if init is not None:
            panel.init = _images(init, torch.tensor(cols, dtype=torch.int64) + sum(init.layout.images_per_class[:cid]))
        panels.append(panel)
    return panels


def page_size(panels: Sequence[ClassPanel], scale: int) -> tuple[int, int]:
    """(width, height) in pixels of the page of ``panels`` (formula in the module docstring)."""
    if not panels:
        raise ConfigError("a page needs at least one class")
    _, _, h, w = panels[0].images.shape
    columns = max(len(p.columns) for p in panels)
    width = LABEL_WIDTH + columns * (scale * w + GAP) + MARGIN
    height = sum(HEADER_HEIGHT + p.rows * (scale * h + GAP) for p in panels) + MARGIN
    return width, height


def _enlarge(tile: np.ndarray, factor_y: int, factor_x: int) -> np.ndarray:
    return np.repeat(np.repeat(tile, factor_y, axis=0), factor_x, axis=1)


def _rgb(image: torch.Tensor, scale: int) -> np.ndarray:
    """[C, H, W] pixels -> [s·H, s·W, 3] (one channel drawn grey)."""
    pixels = image.permute(1, 2, 0).numpy()
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return _enlarge(pixels[:, :, :3], scale, scale)


def _latent_rgb(grid: torch.Tensor, level: int, image_size: tuple[int, int], scale: int, limit: float,
                cmap) -> np.ndarray:
    """Grid ``level``'s [h, w] integers -> [s·H, s·W, 3]: each latent repeated over the 2^level × 2^level
    pixels it sits on (cropped to H × W), coloured on [-limit, +limit]."""
    h, w = image_size
    values = _enlarge(grid.numpy().astype(np.float64), 2 ** level, 2 ** level)[:h, :w]
    colours = cmap(0.5 + values / (2 * limit))[:, :, :3]
    return _enlarge(colours, scale, scale)


def _row_labels(panel: ClassPanel, limits: list[float]) -> list[str]:
    labels = (["init"] if panel.init is not None else []) + ["distilled"]
    for i, (grid, limit) in enumerate(zip(panel.latents, limits)):
        labels.append(f"grid {i}: {grid.shape[1]}×{grid.shape[2]}\n|ŷ| ≤ {limit:g}")
    return labels


def draw_page(panels: Sequence[ClassPanel], path: str | os.PathLike, scale: int | None = None) -> tuple[int, int]:
    """Write the page of ``panels`` as a PNG file (atomically); returns its (width, height) in pixels."""
    require_matplotlib("ddfast.report.draw_page")
    import matplotlib

    if not panels:
        raise ConfigError("a page needs at least one class")
    _, _, h, w = panels[0].images.shape
    scale = default_scale((h, w)) if scale is None else int(scale)
    if scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale}")
    width, height = page_size(panels, scale)
    cmap = matplotlib.colormaps[LATENT_COLORMAP]
    canvas = np.ones((height, width, 3))
    figure = new_figure(width, height)
    th, tw = scale * h, scale * w
    y = 0
    for panel in panels:
        title = f"class {panel.class_id}: image{'s' if len(panel.columns) > 1 else ''} " + ", ".join(
            map(str, panel.columns))
        figure.text(4 / width, 1 - (y + 4) / height, title, va="top", fontsize=9, fontweight="bold")
        y += HEADER_HEIGHT
        limits = [max(1.0, float(grid.abs().max())) for grid in panel.latents]
        tiles = ([panel.init] if panel.init is not None else []) + [panel.images]
        for label, row in zip(_row_labels(panel, limits), range(panel.rows)):
            figure.text(4 / width, 1 - (y + th / 2) / height, label, va="center", fontsize=8)
            for col in range(len(panel.columns)):
                if row < len(tiles):
                    tile = _rgb(tiles[row][col], scale)
                else:
                    level = row - len(tiles)
                    tile = _latent_rgb(panel.latents[level][col], level, (h, w), scale, limits[level], cmap)
                x = LABEL_WIDTH + col * (tw + GAP)
                canvas[y:y + th, x:x + tw] = tile
            y += th + GAP
    figure.figimage(canvas, xo=0, yo=0, origin="upper")
    save_png(figure, path)
    return width, height
