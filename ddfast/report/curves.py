"""Rate-utility curves: test accuracy against the file's kB per class, from run folders' ``summary.json``.

Runs are grouped by (dataset, method) into one line each, with error bars of ± the std over the
evaluation runs. When a dataset is one of DD-RUO's Tables A3/A4, the paper's points are drawn
beside: its own TM-RUO as a dashed line, the other methods as grey points, and the whole-dataset
accuracy as a dotted line. The x axis is logarithmic, in kB of 1000 bytes (the paper's 1024-byte
kB are converted, see :mod:`ddfast.report.paper`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ddfast.data import canonical_name
from ddfast.errors import ConfigError
from ddfast.report.figures import new_figure, require_matplotlib, save_png
from ddfast.report.paper import PAPER_METHOD, paper_anchors

DEFAULT_SIZE = (800, 500)
MIN_SIZE = (200, 150)


@dataclass(frozen=True)
class RunPoint:
    """One run: its dataset and method, the file's bytes per class and its accuracy (fractions)."""

    run: str
    dataset: str
    method: str
    bytes_per_class: float
    accuracy: float
    std: float


def _dataset(name: str) -> str:
    try:
        return canonical_name(name)
    except ConfigError:  # a name ddfast.data does not know (e.g. a folder of the user's): kept as it is
        return name


def read_run(folder: str | os.PathLike) -> RunPoint:
    """The point of a run folder, from its ``summary.json``; ConfigError when it is missing, malformed
    or has no accuracy (a run with evaluation turned off)."""
    path = Path(folder) / "summary.json"
    if not Path(folder).is_dir():
        raise ConfigError(f"run folder {folder} does not exist or is not a folder")
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{folder} is not a finished run folder: it has no summary.json") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from None
    keys = ("dataset", "method", "bytes_per_class", "accuracy_mean", "accuracy_std")
    if not isinstance(summary, dict) or any(k not in summary for k in keys):
        raise ConfigError(f"{path} is not a run summary (it needs {', '.join(keys)})")
    if summary["accuracy_mean"] is None:
        raise ConfigError(f"{path} has no accuracy: the run was not evaluated")
    try:
        numbers = [float(summary[k]) for k in ("bytes_per_class", "accuracy_mean", "accuracy_std")]
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: bytes_per_class, accuracy_mean and accuracy_std must be numbers") from None
    if not all(math.isfinite(v) for v in numbers) or numbers[0] <= 0:
        raise ConfigError(f"{path}: bytes_per_class must be positive and the accuracy finite, got {numbers}")
    return RunPoint(str(folder), _dataset(str(summary["dataset"])), str(summary["method"]), *numbers)


def check_size(size: tuple[int, int], what: str = "the picture") -> tuple[int, int]:
    """``size`` as (width, height); ConfigError below MIN_SIZE (no room for the axes and the legend)."""
    width, height = (int(v) for v in size)
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise ConfigError(f"{what} must be at least {MIN_SIZE[0]}x{MIN_SIZE[1]} pixels, got {width}x{height}")
    return width, height


def draw_curve(points: Sequence[RunPoint], path: str | os.PathLike,
               size: tuple[int, int] = DEFAULT_SIZE) -> list[str]:
    """Write the curve of ``points`` as a PNG of ``size`` pixels; returns the paper tables drawn beside
    (e.g. ``["Table A4 (cifar10)"]``)."""
    require_matplotlib("ddfast.report.draw_curve")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if not points:
        raise ConfigError("a curve needs at least one run")
    width, height = check_size(size)
    figure = new_figure(width, height)
    axes = figure.add_axes((0.09, 0.11, 0.62, 0.8))
    series: dict[tuple[str, str], list[RunPoint]] = {}
    for point in points:
        series.setdefault((point.dataset, point.method), []).append(point)
    for (dataset, method), group in sorted(series.items()):
        group = sorted(group, key=lambda p: p.bytes_per_class)
        axes.errorbar([p.bytes_per_class / 1000 for p in group], [100 * p.accuracy for p in group],
                      yerr=[100 * p.std for p in group], marker="o", capsize=3,
                      label=f"ddfast: {dataset}, {method.upper()}")
    drawn = []
    for dataset in sorted({p.dataset for p in points}):
        published = paper_anchors(dataset)
        if published is None:
            continue
        drawn.append(f"{published.table} ({dataset})")
        ours = [a for a in published.anchors if a.method == PAPER_METHOD]
        others = [a for a in published.anchors if a.method != PAPER_METHOD]
        axes.errorbar([a.bytes_per_class / 1000 for a in ours], [a.accuracy for a in ours],
                      yerr=[a.std for a in ours], color="black", linestyle="--", marker="s", capsize=3,
                      label=f"DD-RUO {published.table}: {PAPER_METHOD}, {dataset}")
        axes.errorbar([a.bytes_per_class / 1000 for a in others], [a.accuracy for a in others],
                      yerr=[a.std for a in others], color="0.6", linestyle="none", marker=".", capsize=2,
                      label=f"{published.table}: other methods, {dataset}")
        if published.whole_dataset is not None:
            axes.axhline(published.whole_dataset[0], color="0.4", linestyle=":",
                         label=f"{published.table}: whole training set, {dataset}")
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("kB per class (1 kB = 1000 bytes)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("accuracy vs. bytes per class")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    save_png(figure, path)
    return drawn
