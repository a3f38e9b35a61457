"""The integer ARM: a fixed-point mirror of the ARM on post-quantized weights.

Training keeps the float ARM (``ddfast.codec.arm``); the file's probabilities come from this
integer version, so that every machine, CPU or GPU, computes the same (MU, LS) and decodes the
same symbols. It follows Cool-chic's integer ARM (integer latents, weights and biases at
power-of-two scales, integer accumulate, ReLU, shift): activations and weights in Q.8, biases
in Q.16, latents within +-8191,

    hidden:  acc = B + h W'^T  (W' = W + 2^8 I folds in the residual),  h' = 0 if acc <= 0 else
             min((acc + 2^7) >> 8, 2^21 - 1)
    output:  v = sign(acc) ((|acc| + 2^7) >> 8)   ->   MU = clamp(v_0, +-2^30) (mean, Q.8),
             LS = clamp(v_1 - 4 * 2^8, -1178, 1280)  (ln b in Q.8, the float clamp(s - 4, -4.6, 5))

These bounds keep every sum below 2^53, so the native coder (``csrc/latent_coder.h``) accumulates
in float64 registers without rounding; :func:`arm_reference` is its plain int64 torch twin.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ddfast import _cpu
from ddfast.errors import ConfigError

FRAC_BITS = 8
BIAS_FRAC_BITS = 16
LS_MIN = int(_cpu.LATENT_LS_MIN)
LS_MAX = int(_cpu.LATENT_LS_MAX)
MU_LIMIT = int(_cpu.LATENT_MU_LIMIT)
MAX_ABS_LATENT = int(_cpu.LATENT_MAX_ABS)
# The latents' Laplace model gives every symbol at least this 24-bit frequency (a 16-bit cap).
FREQUENCY_FLOOR = int(_cpu.LATENT_FREQUENCY_FLOOR)
_INT32_MAX = 2 ** 31 - 1
MAX_ACTIVATION = 2 ** 21 - 1


def _exact_integers(values: torch.Tensor, scale: int, what: str) -> torch.Tensor:
    scaled = values.detach().to("cpu", torch.float64) * scale
    rounded = torch.round(scaled)
    if not torch.equal(rounded, scaled):
        raise ConfigError(f"{what} are not on the fixed-point grid (quantize the ARM first)")
    return rounded.to(torch.int64)


def fixed_point_arm(hidden_w: torch.Tensor, hidden_b: torch.Tensor, out_w: torch.Tensor,
                    out_b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Quantized float ARM weights of S slices -> (W int32 [S, depth*C*C + 2C], B int64 [S, depth*C + 2]).

    hidden_w [S, depth, C, C] and out_w [S, 2, C] are in nn.Linear layout ([out, in]) and must be
    multiples of 2^-8; biases must be multiples of 2^-16. In W the hidden layers are stored
    transposed ([in, out], the residual identity folded in) and the output layer as [out, in].
    """
    s, depth, c = hidden_w.shape[0], hidden_w.shape[1], out_w.shape[-1]
    eye = torch.eye(c, dtype=torch.int64) * 2 ** FRAC_BITS
    hidden = _exact_integers(hidden_w, 2 ** FRAC_BITS, "ARM weights").transpose(-1, -2) + eye
    out = _exact_integers(out_w, 2 ** FRAC_BITS, "ARM weights")
    weights = torch.cat([hidden.reshape(s, depth * c * c), out.reshape(s, 2 * c)], dim=1)
    biases = torch.cat([_exact_integers(hidden_b, 2 ** BIAS_FRAC_BITS, "ARM biases").reshape(s, depth * c),
                        _exact_integers(out_b, 2 ** BIAS_FRAC_BITS, "ARM biases").reshape(s, 2)], dim=1)
    if weights.abs().max() >= 2 ** 25 or biases.abs().max() >= 2 ** 33:
        raise ConfigError("ARM weights exceed the integer ARM's range (|w| < 2^17, |b| < 2^17)")
    return weights.to(torch.int32).numpy(), biases.numpy()


def fixed_point_arm_of(tensors: dict[str, torch.Tensor], depth: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fixed_point_arm` of the ARM tensors of a set by name ("arm.hidden_w.0", ..., "arm.out_b")."""
    out_w, out_b = tensors["arm.out_w"], tensors["arm.out_b"]
    s, c = out_w.shape[0], out_w.shape[-1]
    if depth:
        hidden_w = torch.stack([tensors[f"arm.hidden_w.{layer}"] for layer in range(depth)], 1)
        hidden_b = torch.stack([tensors[f"arm.hidden_b.{layer}"] for layer in range(depth)], 1)
    else:
        hidden_w, hidden_b = out_w.new_zeros(s, 0, c, c), out_b.new_zeros(s, 0, c)
    return fixed_point_arm(hidden_w, hidden_b, out_w, out_b)


def split_layers(weights: np.ndarray, biases: np.ndarray, context: int, depth: int
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One slice's fixed-point rows -> per-layer int64 tensors [out, in] and [out] (hidden..., output)."""
    w = torch.from_numpy(np.asarray(weights, dtype=np.int64))
    b = torch.from_numpy(np.asarray(biases, dtype=np.int64))
    ws = [w[l * context * context:(l + 1) * context * context].reshape(context, context).T for l in range(depth)]
    ws.append(w[depth * context * context:].reshape(2, context))
    bs = [b[l * context:(l + 1) * context] for l in range(depth)] + [b[depth * context:]]
    return ws, bs


def _round_shift(acc: torch.Tensor) -> torch.Tensor:
    """sign(acc) * ((|acc| + 2^7) >> 8)."""
    half = 1 << (FRAC_BITS - 1)
    return torch.sign(acc) * ((acc.abs() + half) >> FRAC_BITS)


def arm_reference(contexts: torch.Tensor, layer_w: Sequence[torch.Tensor], layer_b: Sequence[torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """[P, C] integer contexts -> (MU, LS) int64 [P] with one slice's layers (from :func:`split_layers`)."""
    h = contexts.to(torch.int64) * 2 ** FRAC_BITS
    half = 1 << (FRAC_BITS - 1)
    for w, b in zip(layer_w[:-1], layer_b[:-1]):
        acc = h @ w.T + b
        h = torch.where(acc <= 0, torch.zeros_like(acc), ((acc + half) >> FRAC_BITS).clamp(max=MAX_ACTIVATION))
    acc = h @ layer_w[-1].T + layer_b[-1]
    v = _round_shift(acc).clamp(-2 ** 31, _INT32_MAX)
    mu = v[:, 0].clamp(-MU_LIMIT, MU_LIMIT)
    ls = (v[:, 1] - 4 * 2 ** FRAC_BITS).clamp(LS_MIN, LS_MAX)
    return mu, ls
