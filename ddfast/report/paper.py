"""The accuracies that DD-RUO reports against bytes per class (Tables A3 and A4), as anchor points.

The paper gives budgets in kB per class where 1 kB = 1024 bytes: its unit budget "192 kB" is one
128 × 128 × 3 float32 image (196,608 bytes) and "12 kB" one 32 × 32 × 3 image (12,288 bytes).
ddfast counts 1 kB = 1000 bytes, so :attr:`Anchor.bytes_per_class` converts. Accuracies are in
percent, mean ± std over the paper's runs; "FReD" (Table A3) is spelled "FreD" as in Table A4.
"""
from __future__ import annotations

from dataclasses import dataclass

PAPER_KB_BYTES = 1024
#: The paper's own method in both tables.
PAPER_METHOD = "TM-RUO"


@dataclass(frozen=True)
class Anchor:
    """One published result: a method at a size per class, its accuracy (%) and std."""

    method: str
    kb: float
    accuracy: float
    std: float

    @property
    def bytes_per_class(self) -> float:
        """The size per class in bytes (the paper's kB are 1024 bytes)."""
        return self.kb * PAPER_KB_BYTES


def _rows(method: str, *points: tuple[float, float, float]) -> tuple[Anchor, ...]:
    return tuple(Anchor(method, kb, acc, std) for kb, acc, std in points)


#: DD-RUO, Table A3: the ImageNet Nette subset (128 × 128), every row with a size.
TABLE_A3: dict[str, tuple[Anchor, ...]] = {
    "imagenette": (
        *_rows("TM", (192.0, 51.4, 2.3), (1920.0, 63.0, 1.3), (9600.0, 72.8, 0.8), (9792.0, 73.0, 0.7)),
        *_rows("GLaD", (192.0, 38.7, 1.6)),
        *_rows("H-GLaD", (192.0, 45.4, 1.1)),
        *_rows("FRePo", (192.0, 48.1, 0.7), (1920.0, 66.5, 0.8)),
        *_rows("HaBa", (192.0, 51.9, 0.7), (1920.0, 64.7, 1.6)),
        *_rows("IDC", (192.0, 61.4, 1.0), (1920.0, 70.8, 0.5)),
        *_rows("FreD", (192.0, 66.8, 0.4), (384.0, 69.0, 0.9), (1920.0, 72.0, 0.8)),
        *_rows("SPEED", (192.0, 66.9, 0.7), (1920.0, 72.9, 1.5)),
        *_rows("NSD", (192.0, 68.6, 0.8)),
        *_rows("DDiF", (3.8, 49.1, 2.0), (30.1, 67.1, 0.4), (56.4, 68.3, 1.1), (192.0, 72.0, 0.9),
               (1920.0, 74.6, 0.7), (9591.2, 75.2, 1.3)),
        *_rows(PAPER_METHOD, (3.2, 49.2, 1.2), (8.4, 66.4, 1.6), (18.2, 69.2, 1.5), (101.7, 74.5, 0.8),
               (179.7, 76.5, 0.7)),
    ),
}

#: DD-RUO, Table A4: CIFAR-10 and CIFAR-100 at the budgets 12, 120 and 600 kB (TM-RUO at its own sizes).
TABLE_A4: dict[str, tuple[Anchor, ...]] = {
    "cifar10": (
        *_rows("TM", (12, 46.3, 0.8), (120, 65.3, 0.7), (600, 71.6, 0.2)),
        *_rows("FRePo", (12, 46.8, 0.7), (120, 65.5, 0.4), (600, 71.7, 0.2)),
        *_rows("IDC", (12, 50.0, 0.4), (120, 67.5, 0.5), (600, 74.5, 0.2)),
        *_rows("HaBa", (12, 48.3, 0.8), (120, 69.9, 0.4), (600, 74.0, 0.2)),
        *_rows("FreD", (12, 60.6, 0.8), (120, 70.3, 0.3), (600, 75.8, 0.1)),
        *_rows("RTP", (12, 66.4, 0.4), (120, 71.2, 0.4), (600, 73.6, 0.5)),
        *_rows("NSD", (12, 68.5, 0.8), (120, 73.4, 0.2), (600, 75.2, 0.6)),
        *_rows("SPEED", (12, 63.2, 0.1), (120, 73.5, 0.2), (600, 77.7, 0.4)),
        *_rows("HMN", (12, 65.7, 0.3), (120, 73.7, 0.1), (600, 76.9, 0.2)),
        *_rows("DDiF", (12, 66.5, 0.4), (120, 74.0, 0.4), (600, 77.5, 0.3)),
        *_rows(PAPER_METHOD, (13, 70.3, 0.7), (94, 77.5, 0.3), (246, 79.7, 0.3)),
    ),
    "cifar100": (
        *_rows("TM", (12, 24.3, 0.3), (120, 40.1, 0.4)),
        *_rows("FRePo", (12, 28.7, 0.1), (120, 42.5, 0.2)),
        *_rows("FreD", (12, 34.6, 0.4), (120, 42.7, 0.2)),
        *_rows("RTP", (12, 34.0, 0.4), (120, 42.9, 0.7)),
        *_rows("NSD", (12, 36.5, 0.3), (120, 46.1, 0.2)),
        *_rows("SPEED", (12, 40.4, 0.4), (120, 45.9, 0.3)),
        *_rows("HMN", (12, 36.3, 0.2), (120, 45.4, 0.2)),
        *_rows("DDiF", (12, 42.1, 0.2), (120, 46.0, 0.2)),
        *_rows(PAPER_METHOD, (8, 44.4, 0.3), (53, 49.2, 0.4)),
    ),
}

#: DD-RUO, Table A4, row "Original": accuracy (%, ± std) when training on the whole training set.
WHOLE_DATASET_A4: dict[str, tuple[float, float]] = {"cifar10": (84.8, 0.1), "cifar100": (56.2, 0.3)}


@dataclass(frozen=True)
class PaperAnchors:
    """The published points for one dataset: the table's name, its rows and the whole-dataset accuracy."""

    table: str
    anchors: tuple[Anchor, ...]
    whole_dataset: tuple[float, float] | None


def paper_anchors(dataset: str) -> PaperAnchors | None:
    """The paper's points for a (canonical) dataset name, or None when neither table has it."""
    if dataset in TABLE_A3:
        return PaperAnchors("Table A3", TABLE_A3[dataset], None)
    if dataset in TABLE_A4:
        return PaperAnchors("Table A4", TABLE_A4[dataset], WHOLE_DATASET_A4[dataset])
    return None
