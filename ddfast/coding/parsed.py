"""A parsed .ddf file: what the CPU and GPU latent decoders read."""
from __future__ import annotations

from dataclasses import dataclass

from ddfast.coding.container import Container, Header
from ddfast.coding.lanes import Geometry, LanePlan
from ddfast.coding.slices import SliceData


@dataclass
class ParsedFile:
    """A file's header, the chosen slices' contents, and what the latent decoder needs."""

    container: Container
    header: Header
    slices: list[int]              # indices (in the file) of the chosen slices
    data: list[SliceData]          # their contents
    geometry: Geometry
    plan: LanePlan                 # lane plan of the chosen slices (slice indices count from 0)
    classes: tuple[int, ...]       # the chosen classes
