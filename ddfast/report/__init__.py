"""Reports on a distilled dataset: pictures of a .ddf file, rate-utility curves, cross-architecture tables.

- :mod:`ddfast.report.pages`: a file's decoded images per class, with the initialization and the
  multi-scale latent grids under them (the layout of DD-RUO, Figs. A1–A14);
- :mod:`ddfast.report.curves`: accuracy against kB per class for run folders, beside the
  paper's anchor points (:mod:`ddfast.report.paper`, DD-RUO Tables A3 and A4);
- :mod:`ddfast.report.crossarch`: a set evaluated with several architectures, as a Markdown
  table like DD-RUO's Table A5, and JSON.

Pictures need matplotlib, an optional extra: ``pip install 'ddfast[plot]'``.
"""
from ddfast.report.crossarch import CrossArchReport, check_architectures, parse_architectures
from ddfast.report.curves import RunPoint, draw_curve, read_run
from ddfast.report.figures import MissingDependencyError, require_matplotlib
from ddfast.report.pages import ClassPanel, class_panels, draw_page, page_size
from ddfast.report.paper import TABLE_A3, TABLE_A4, Anchor, PaperAnchors, paper_anchors

__all__ = [
    "TABLE_A3", "TABLE_A4", "Anchor", "ClassPanel", "CrossArchReport", "MissingDependencyError", "PaperAnchors",
    "RunPoint", "check_architectures", "class_panels", "draw_curve", "draw_page", "page_size", "paper_anchors",
    "parse_architectures", "read_run", "require_matplotlib",
]
