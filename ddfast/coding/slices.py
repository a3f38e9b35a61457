"""One slice's section of a .ddf file: its steps, latent support, weights and latent lanes.

    steps           5 x u8   exponents k of the steps 2^-k: ARM weights, ARM biases, synthesis
                             weights, synthesis biases, upsampling weights; RAW (255) in a
                             module's weight field (synthesis or upsampling only, bias field 0)
                             means the module is stored as float32
    latent support  lo (zigzag varint), hi - lo (varint): every latent of the slice is in [lo, hi]
    weights         the integer tensors of the quantized modules, in tensor order
                    (ddfast.coding.weights), then the float32 tensors of RAW modules
    lane table      words of each lane (varint); the lanes are the slice's lane plan
                    (ddfast.coding.lanes), so their number is not stored
    lane words      u32 words of every lane, lane after lane (each a constriction AnsCoder stream)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ddfast.coding.binary import Reader, Writer
from ddfast.coding.intarm import MAX_ABS_LATENT
from ddfast.coding.quantized import RAW, TensorSpec
from ddfast.coding.weights import read_tensors, write_tensors

STEP_FIELDS = (("arm", 0), ("arm", 1), ("synthesis", 0), ("synthesis", 1), ("upsampling", 0))
MAX_EXPONENTS = {("arm", 0): 8, ("arm", 1): 16, ("synthesis", 0): 15, ("synthesis", 1): 15, ("upsampling", 0): 15}
RAW_ALLOWED = ("synthesis", "upsampling")


@dataclass
class SliceData:
    """The content of one slice section, and the bytes each part of it took."""

    steps: dict[str, tuple[int, int]]
    support: tuple[int, int]
    integers: dict[str, np.ndarray]  # quantized tensors (int64, flat)
    floats: dict[str, np.ndarray]    # tensors of RAW modules (float32, flat)
    lane_words: np.ndarray           # int64 [lanes]
    words: np.ndarray                # uint32
    sizes: dict[str, int] = field(default_factory=dict)  # bytes: parameters, weights, lane_table, latents

    def tensor(self, spec: TensorSpec) -> np.ndarray:
        """The float32 values of a tensor (dequantized: q * 2^-k), flat."""
        if spec.name in self.floats:
            return self.floats[spec.name]
        k = self.steps[spec.module][int(spec.bias)]
        return (self.integers[spec.name] * 2.0 ** -k).astype(np.float32)


def write_slice(steps: dict[str, tuple[int, int]], support: tuple[int, int], integers: dict[str, np.ndarray],
                floats: dict[str, np.ndarray], specs: Sequence[TensorSpec], lane_words: np.ndarray,
                words: np.ndarray) -> bytes:
    """The section bytes of one slice (see the module doc)."""
    out = Writer()
    for module, which in STEP_FIELDS:
        out.u8(int(steps[module][which]))
    out.svarint(int(support[0]))
    out.uvarint(int(support[1] - support[0]))
    write_tensors(out, [integers[s.name] for s in specs if s.name in integers])
    for spec in specs:
        if spec.name in floats:
            out.floats(floats[spec.name])
    for count in lane_words:
        out.uvarint(int(count))
    out.words(words)
    return bytes(out.buffer)


def read_slice(r: Reader, specs: Sequence[TensorSpec], sizes: dict[str, int], lanes: int) -> SliceData:
    """Parse one slice section (its CRC already checked); BitstreamError for anything invalid."""
    start = r.pos
    raw = {module: False for module, _ in STEP_FIELDS}
    values = {}
    for module, which in STEP_FIELDS:
        at = r.pos
        k = r.u8(f"{module} step")
        if k == RAW and module in RAW_ALLOWED and which == 0:
            raw[module] = True
        elif k > MAX_EXPONENTS[(module, which)] or (which == 1 and raw[module] and k != 0):
            raise r.fail(f"invalid {module} {'bias' if which else 'weight'} step exponent {k}", at)
        values[(module, which)] = k
    steps = {m: (values[(m, 0)], values.get((m, 1), 0)) for m, _ in STEP_FIELDS}
    lo = r.svarint("latent support", limit=MAX_ABS_LATENT)
    hi = lo + r.uvarint("latent support span", maximum=2 * MAX_ABS_LATENT)
    if hi > MAX_ABS_LATENT:
        raise r.fail(f"latent support [{lo}, {hi}] exceeds +-{MAX_ABS_LATENT}")
    parameters = r.pos - start
    start = r.pos
    quantized = [s for s in specs if not raw[s.module]]
    ints = read_tensors(r, [sizes[s.name] for s in quantized], "weights")
    integers = {s.name: q for s, q in zip(quantized, ints)}
    floats = {}
    for spec in specs:
        if raw[spec.module]:
            at = r.pos
            floats[spec.name] = r.floats(sizes[spec.name], f"{spec.name} (float32)")
            if not np.isfinite(floats[spec.name]).all():
                raise r.fail(f"{spec.name} holds a non-finite float32", at)
    weights = r.pos - start
    start = r.pos
    lane_words = np.array([r.uvarint(f"word count of lane {l}", maximum=r.remaining // 4) for l in range(lanes)],
                          dtype=np.int64).reshape(-1)
    lane_table = r.pos - start
    total = int(lane_words.sum())
    words = r.words(total, "lane words")
    if r.remaining:
        raise r.fail(f"{r.remaining} unexpected bytes after the last lane")
    return SliceData(steps, (lo, hi), integers, floats, lane_words, words,
                     {"parameters": parameters, "weights": weights, "lane_table": lane_table, "latents": 4 * total})

