"""Post-quantization (phase 3 of DD-RUO): power-of-two steps for the network weights.

Following the reference (DD-RUO ``quantize_model_no_ref_v2``), the modules of every slice are
quantized greedily in the order ARM -> synthesis -> upsampling, each with the earlier ones
already quantized, on the reference's step grids (steps 2^-k):

    module       weight steps        bias steps
    arm          k = 0 .. 8          k = 0 .. 16
    synthesis    k = 0 .. 15         k = 0 .. 15
    upsampling   k = 0 .. 15         (no bias)

Integers above 65535 in magnitude are not allowed. For the synthesis and the upsampler, the
cheapest (weight, bias) step pair wins among those whose decoded images stay within
``mse_threshold`` (MSE on [0, 1] images, per slice) of the float decode; a module with no such
pair stays float32. The ARM does not change the images: its pair minimizes its own bits plus the
exact bits of the latents under the integer ARM (what the file will spend), not the float
estimate the reference uses. Bits of weights are exact (``ddfast.coding.weights``).

All slices are searched together: each slice runs its own search, and every round evaluates one
candidate of every slice still searching in one batched decode. ``search="fast"`` walks the
frontier of the feasible region (a binary search for the coarsest weight step at the finest bias
step, then for that weight step and coarser ones the coarsest feasible bias step, pruned by bit
counts; the ARM by coordinate descent), assuming that coarser weight steps never decode closer to
the float images; ``"exhaustive"`` evaluates every pair, as the reference does, and is the twin
the fast search is tested against.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Generator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ddfast import _cpu, ops
from ddfast.codec import SyntheticSet
from ddfast.codec.stack import CodecStack
from ddfast.codec.synthesis import StackedSynthesis
from ddfast.coding.intarm import MAX_ABS_LATENT, fixed_point_arm
from ddfast.coding.lanes import Geometry
from ddfast.coding.quantized import (
    MODULES,
    float_latent_bits,
    RAW,
    QuantizedSet,
    TensorSpec,
    integers_at_step,
    quantize_to_step,
    tensor_specs,
)
from ddfast.coding.weights import MAX_ABS_INTEGER, coded_bits
from ddfast.errors import ArgumentTypeError, ConfigError

WEIGHT_EXPONENTS = {"arm": tuple(range(0, 9)), "synthesis": tuple(range(0, 16)), "upsampling": tuple(range(0, 16))}
BIAS_EXPONENTS = {"arm": tuple(range(0, 17)), "synthesis": tuple(range(0, 16)), "upsampling": (0,)}
MSE_THRESHOLDS = (5e-5, 5e-6, 5e-7, 5e-8)
DEFAULT_MSE_THRESHOLD = 5e-7
SEARCHES = ("fast", "exhaustive")
# Decode at most this many output values per batched evaluation (bounds the memory of a round).
EVAL_CHUNK_VALUES = 2 ** 27

Query = tuple[int, int]  # (weight step index, bias step index), indices into the exponent grids
SliceSearch = Generator[Query, float, Query | None]


@dataclass
class QuantizationReport:
    """What post-quantization chose and measured, per slice ([S] tensors)."""

    mse_threshold: float
    steps: dict[str, torch.Tensor]
    mse: torch.Tensor
    weight_bits: dict[str, torch.Tensor]
    latent_bits: torch.Tensor
    estimated_latent_bits: torch.Tensor
    evaluations: int


def check_synthetic_set(syn: object) -> SyntheticSet:
    """``syn`` itself; ArgumentTypeError unless it is a SyntheticSet (checked before any work)."""
    if not isinstance(syn, SyntheticSet):
        raise ArgumentTypeError(f"expected a ddfast.SyntheticSet, got {type(syn).__name__}")
    return syn


def _check_threshold(mse_threshold: float) -> float:
    try:
        value = float(mse_threshold)
    except (TypeError, ValueError):
        raise ConfigError(f"mse_threshold must be a number, got {mse_threshold!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"mse_threshold must be finite and > 0, got {mse_threshold!r}")
    return value


# -- per-slice searches (generators: yield a query, receive its value, return the choice) ----------

def _finest_usable(bits: np.ndarray) -> int:
    """Index of the finest step whose integers fit (bits are inf where they do not), or -1."""
    usable = np.flatnonzero(np.isfinite(bits))
    return int(usable[-1]) if len(usable) else -1


def frontier_search(w_bits: np.ndarray, b_bits: np.ndarray) -> SliceSearch:
    """Cheapest feasible (weight, bias) pair, steps ordered coarse -> fine; receives feasibility."""
    fw, fb = _finest_usable(w_bits), _finest_usable(b_bits)
    if fw < 0 or fb < 0 or not (yield (fw, fb)):
        return None
    lo, hi = -1, fw  # hi is feasible; lo is infeasible (or before the coarsest step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (yield (mid, fb)):
            hi = mid
        else:
            lo = mid
    best = [(hi, fb), w_bits[hi] + b_bits[fb]]

    def coarsest_bias(iw: int):
        """The coarsest feasible bias step of weight step iw that beats the best; True if found.
        (Feasibility is not monotone in the bias step: rounding errors of weights and biases can
        cancel, so the bias steps are scanned from coarse to fine.)"""
        for ib in range(fb + 1):
            cost = w_bits[iw] + b_bits[ib]
            if cost >= best[1]:
                return False
            if (yield (iw, ib)):
                best[:] = [(iw, ib), cost]
                return True
        return False

    for iw in range(hi, -1, -1):  # that weight step and coarser ones, while they stay feasible
        if not (yield from coarsest_bias(iw)) and iw < hi:
            break
    for iw in range(hi + 1, fw + 1):  # finer weight steps that may allow coarser bias steps
        if w_bits[iw] + b_bits[0] >= best[1]:
            break
        yield from coarsest_bias(iw)
    return best[0]


def exhaustive_search(w_bits: np.ndarray, b_bits: np.ndarray) -> SliceSearch:
    """Every usable pair (the reference's search); receives feasibility."""
    best, best_cost = None, math.inf
    for iw in np.flatnonzero(np.isfinite(w_bits)):
        for ib in np.flatnonzero(np.isfinite(b_bits)):
            if (yield (int(iw), int(ib))) and w_bits[iw] + b_bits[ib] < best_cost:
                best, best_cost = (int(iw), int(ib)), w_bits[iw] + b_bits[ib]
    return best


def coordinate_search(w_bits: np.ndarray, b_bits: np.ndarray) -> SliceSearch:
    """Pair minimizing weight bits + received latent bits: scan weights, then biases, then weights."""
    fw, fb = _finest_usable(w_bits), _finest_usable(b_bits)
    if fw < 0 or fb < 0:
        return None
    seen: dict[Query, float] = {}

    def cost(query: Query):
        if query not in seen:
            seen[query] = w_bits[query[0]] + b_bits[query[1]] + (yield query)
        return seen[query]

    def scan(queries: list[Query]):
        costs = []
        for query in queries:
            costs.append((yield from cost(query)))
        return queries[int(np.argmin(costs))]

    iw, ib = yield from scan([(iw, fb) for iw in range(fw + 1)])
    iw, ib = yield from scan([(iw, ib) for ib in range(fb + 1)])
    if ib != fb:
        iw, ib = yield from scan([(iw, ib) for iw in range(fw + 1)])
    return iw, ib


def exhaustive_cost_search(w_bits: np.ndarray, b_bits: np.ndarray) -> SliceSearch:
    """Every usable pair, minimizing weight bits + received latent bits."""
    best, best_cost = None, math.inf
    for iw in np.flatnonzero(np.isfinite(w_bits)):
        for ib in np.flatnonzero(np.isfinite(b_bits)):
            value = w_bits[iw] + b_bits[ib] + (yield (int(iw), int(ib)))
            if value < best_cost:
                best, best_cost = (int(iw), int(ib)), value
    return best


def run_lockstep(searches: Sequence[SliceSearch], evaluate: Callable[[dict[int, Query]], dict[int, float]],
                 bar: tqdm | None = None) -> tuple[list[Query | None], int]:
    """Drive one search per slice; each round evaluates every pending query in one batch.

    Returns each slice's choice and the number of rounds.
    """
    results: list[Query | None] = [None] * len(searches)
    pending: dict[int, Query] = {}
    for s, search in enumerate(searches):
        try:
            pending[s] = next(search)
        except StopIteration as stop:
            results[s] = stop.value
    rounds = 0
    while pending:
        values = evaluate(pending)
        rounds += 1
        if bar is not None:
            bar.update(1)
        for s in list(pending):
            try:
                pending[s] = searches[s].send(values[s])
            except StopIteration as stop:
                results[s] = stop.value
                del pending[s]
    return results, rounds


# -- the batched evaluations ---------------------------------------------------------------------------

class _Evaluator:
    """The float decode of a set and the candidates' MSE / latent bits against it, batched over slices."""

    def __init__(self, syn: SyntheticSet) -> None:
        self.stack: CodecStack = copy.deepcopy(syn.stack).eval()
        self.specs = tensor_specs(syn.config, syn.channels)
        self.layout = syn.layout
        self.valid = syn.valid
        self.backend = syn.backend
        h, w = syn.image_size
        self.values_per_slice = self.layout.max_slice_size * syn.channels * h * w
        with torch.no_grad():
            self.latents = torch.round(self.stack.config.gain * self.stack.latents) * syn.valid.unsqueeze(-1)
            self.upsampled = ops.upsample_pyramid(self.latents, self.stack.grid_shapes, self.stack.upsampling_kernel,
                                                  backend=self.backend)
            everyone = list(range(self.layout.num_slices))
            self.reference = torch.cat([self._synthesize(chunk, self.upsampled[chunk]) for chunk in self._chunks(everyone)])
        self.int_latents = self.latents.to(torch.int32).cpu().numpy()
        self.counts = np.array(self.layout.slice_sizes, dtype=np.int32)
        self.supports = np.array([[self.int_latents[s, :n].min(), self.int_latents[s, :n].max()]
                                  for s, n in enumerate(self.layout.slice_sizes)], dtype=np.int32)
        self.geometry = Geometry.of(syn.image_size, syn.config.n_grids, syn.config.arm_context)

    def module_specs(self, module: str) -> list[TensorSpec]:
        return [s for s in self.specs if s.module == module]

    def _chunks(self, index: list[int]) -> list[list[int]]:
        size = max(1, EVAL_CHUNK_VALUES // self.values_per_slice)
        return [index[i:i + size] for i in range(0, len(index), size)]

    def _synthesize(self, index: list[int], upsampled: torch.Tensor) -> torch.Tensor:
        """Synthesis of slices ``index`` (their current weights) on their upsampled latents."""
        synthesis = self.stack.synthesis
        part = StackedSynthesis(len(index), synthesis.layers).to(upsampled.device)
        pick = torch.tensor(index, device=upsampled.device)
        for dst, src in zip(part.parameters(), synthesis.parameters()):
            dst.data.copy_(src.index_select(0, pick))
        return part(upsampled, backend=self.backend)

    def mse(self, index: list[int], images: torch.Tensor) -> torch.Tensor:
        pick = torch.tensor(index, device=images.device)
        mask = self.valid[pick].to(images.dtype)
        squared = (images - self.reference[pick]).pow(2).sum(dim=(2, 3, 4))
        per_image = images[0, 0].numel()
        return (squared * mask).sum(dim=1) / (mask.sum(dim=1) * per_image)

    def set_module(self, module: str, exponents: torch.Tensor, index: list[int] | None,
                   originals: dict[str, torch.Tensor]) -> None:
        """Set ``module`` of slices ``index`` (None: all) to its ``originals`` quantized at exponents [len, 2]."""
        pick = torch.arange(self.layout.num_slices) if index is None else torch.tensor(index)
        with torch.no_grad():
            for spec in self.module_specs(module):
                view = spec.view(self.stack)
                view[pick.to(view.device)] = quantize_to_step(originals[spec.name][pick.to(view.device)],
                                                              exponents[:, int(spec.bias)])

    def images_with(self, index: list[int], upsampling: bool) -> torch.Tensor:
        """Decoded images of slices ``index`` with the stack's current (partly quantized) weights;
        upsampling=False reuses the float upsampler's output."""
        out = []
        for chunk in self._chunks(index):
            if upsampling:
                pick = torch.tensor(chunk, device=self.latents.device)
                upsampled = ops.upsample_pyramid(self.latents[pick], self.stack.grid_shapes,
                                                 self.stack.upsampling_kernel[pick], backend=self.backend)
            else:
                upsampled = self.upsampled[chunk]
            out.append(self._synthesize(chunk, upsampled))
        return torch.cat(out)

    def latent_bits(self, index: list[int]) -> np.ndarray:
        """Exact bits of the latents of slices ``index`` under their current (quantized) integer ARM."""
        arm = self.stack.arm
        weights, biases = fixed_point_arm(arm.hidden_w[index], arm.hidden_b[index], arm.out_w[index], arm.out_b[index])
        grids, offsets = self.geometry.arrays()
        return _cpu.latent_bits(np.ascontiguousarray(self.int_latents[index]), self.counts[index], weights, biases,
                                arm.depth, grids, offsets, self.geometry.shift, self.supports[index])


def _step_bits(values: torch.Tensor, exponents: Sequence[int]) -> np.ndarray:
    """[S, K] exact bits of one tensor of every slice at every step (inf where integers exceed 65535)."""
    values = values.detach().double().cpu()
    out = np.zeros((values.shape[0], len(exponents)))
    for j, k in enumerate(exponents):
        q = torch.round(values * 2.0 ** k).to(torch.int64).reshape(values.shape[0], -1).numpy()
        for s in range(values.shape[0]):
            out[s, j] = math.inf if np.abs(q[s]).max(initial=0) > MAX_ABS_INTEGER else coded_bits(q[s])
    return out


def _module_bits(evaluator: _Evaluator, module: str) -> tuple[np.ndarray, np.ndarray]:
    """[S, Kw] and [S, Kb]: bits of the module's weights at each weight step and biases at each bias step."""
    s = evaluator.layout.num_slices
    w_bits = np.zeros((s, len(WEIGHT_EXPONENTS[module])))
    b_bits = np.zeros((s, len(BIAS_EXPONENTS[module])))
    for spec in evaluator.module_specs(module):
        grid = BIAS_EXPONENTS[module] if spec.bias else WEIGHT_EXPONENTS[module]
        bits = _step_bits(spec.view(evaluator.stack), grid)
        if spec.bias:
            b_bits += bits
        else:
            w_bits += bits
    return w_bits, b_bits


def _exponents(module: str, queries: dict[int, Query]) -> torch.Tensor:
    return torch.tensor([[WEIGHT_EXPONENTS[module][iw], BIAS_EXPONENTS[module][ib]] for iw, ib in queries.values()],
                        dtype=torch.int64)


def _search_module(evaluator: _Evaluator, module: str, threshold: float, search: str,
                   bar: tqdm | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Choose and apply the steps of one module for every slice; returns the exponents [S, 2], the
    module's bits per slice [S] and the number of rounds."""
    w_bits, b_bits = _module_bits(evaluator, module)
    originals = {spec.name: spec.view(evaluator.stack).detach().clone() for spec in evaluator.module_specs(module)}
    if module == "arm":
        make = coordinate_search if search == "fast" else exhaustive_cost_search

        def evaluate(queries: dict[int, Query]) -> dict[int, float]:
            index = list(queries)
            evaluator.set_module(module, _exponents(module, queries), index, originals)
            return dict(zip(index, evaluator.latent_bits(index)))
    else:
        make = frontier_search if search == "fast" else exhaustive_search

        def evaluate(queries: dict[int, Query]) -> dict[int, float]:
            index = list(queries)
            evaluator.set_module(module, _exponents(module, queries), index, originals)
            with torch.no_grad():
                images = evaluator.images_with(index, upsampling=module == "upsampling")
                mse = evaluator.mse(index, images)
            return dict(zip(index, (mse <= threshold).tolist()))

    searches = [make(w_bits[s], b_bits[s]) for s in range(evaluator.layout.num_slices)]
    choices, rounds = run_lockstep(searches, evaluate, bar)
    if module == "arm" and any(c is None for c in choices):
        raise ConfigError("ARM weights or biases beyond 65535 in magnitude cannot be quantized")
    exponents = torch.tensor([[RAW, 0] if c is None else [WEIGHT_EXPONENTS[module][c[0]], BIAS_EXPONENTS[module][c[1]]]
                              for c in choices], dtype=torch.int64)
    raw_bits = 32 * sum(spec.view(evaluator.stack)[0].numel() for spec in evaluator.module_specs(module))
    bits = torch.tensor([raw_bits if c is None else w_bits[s, c[0]] + b_bits[s, c[1]] for s, c in enumerate(choices)],
                        dtype=torch.float64)
    evaluator.set_module(module, exponents, None, originals)
    return exponents, bits, rounds


def _quantized_set(syn: SyntheticSet, stack: CodecStack, latents: torch.Tensor, steps: dict[str, torch.Tensor],
                   report: QuantizationReport | None) -> QuantizedSet:
    tensors = {spec.name: spec.view(stack).detach().float().cpu().clone() for spec in tensor_specs(syn.config, syn.channels)}
    return QuantizedSet(
        config=syn.config, image_size=tuple(syn.image_size), channels=syn.channels,
        images_per_class=tuple(syn.layout.images_per_class), slice_size=syn.slice_size,
        latents=latents.to(torch.int32).cpu(), steps=steps, tensors=tensors, report=report)


def _rounded_latents(syn: SyntheticSet) -> torch.Tensor:
    """round(gain * y) at the real images (zeros at padding); ConfigError if beyond the file's range."""
    with torch.no_grad():
        latents = torch.round(syn.stack.config.gain * syn.stack.latents) * syn.valid.unsqueeze(-1)
    largest = latents.abs().max().item()
    if not largest <= MAX_ABS_LATENT:
        raise ConfigError(f"latent values reach {largest:.0f} after the gain; a .ddf file holds at most "
                          f"+-{MAX_ABS_LATENT}")
    return latents


def quantize_at(syn: SyntheticSet, steps: dict[str, tuple[int, int]]) -> QuantizedSet:
    """Quantize every slice with the given step exponents per module, {module: (k_weights, k_biases)},
    without a search (for tests, benchmarks and known-good settings); ``syn`` is left unchanged."""
    if set(steps) != set(MODULES):
        raise ConfigError(f"steps needs exactly the modules {MODULES}, got {sorted(steps)}")
    _rounded_latents(syn)
    stack = copy.deepcopy(syn.stack).eval()
    exponents = {}
    for module in MODULES:
        kw, kb = (int(v) for v in steps[module])
        if kw not in WEIGHT_EXPONENTS[module] or kb not in BIAS_EXPONENTS[module]:
            raise ConfigError(f"{module} steps 2^-{kw}, 2^-{kb} are not on the grids: weights 2^-k for k in "
                              f"{WEIGHT_EXPONENTS[module]}, biases k in {BIAS_EXPONENTS[module]}")
        exponents[module] = torch.tensor([[kw, kb]] * syn.num_slices, dtype=torch.int64)
        with torch.no_grad():
            for spec in tensor_specs(syn.config, syn.channels):
                if spec.module == module:
                    view = spec.view(stack)
                    k = exponents[module][:, int(spec.bias)]
                    if integers_at_step(view, k).abs().max() > MAX_ABS_INTEGER:
                        raise ConfigError(f"{spec.name} needs integers beyond {MAX_ABS_INTEGER} at step 2^-{int(k[0])}")
                    view.copy_(quantize_to_step(view, k))
    return _quantized_set(syn, stack, _rounded_latents(syn), exponents, None)


def post_quantize(syn: SyntheticSet, mse_threshold: float = DEFAULT_MSE_THRESHOLD, *, search: str = "fast",
                  progress: bool = False) -> QuantizedSet:
    """Quantize every slice's network weights and round its latents; ``syn`` is left unchanged.

    Returns a :class:`QuantizedSet` whose ``report`` is a :class:`QuantizationReport`.
    """
    check_synthetic_set(syn)
    threshold = _check_threshold(mse_threshold)
    if search not in SEARCHES:
        raise ConfigError(f"unknown search {search!r}; choose one of {SEARCHES}")
    _rounded_latents(syn)
    evaluator = _Evaluator(syn)
    steps, weight_bits, rounds = {}, {}, 0
    with tqdm(desc="post-quantization", unit="round", disable=not progress) as bar:
        for module in MODULES:
            bar.set_postfix(module=module)
            steps[module], weight_bits[module], module_rounds = _search_module(evaluator, module, threshold, search,
                                                                                bar)
            rounds += module_rounds
    stack = evaluator.stack
    everyone = list(range(syn.num_slices))
    with torch.no_grad():
        mse = evaluator.mse(everyone, evaluator.images_with(everyone, upsampling=True)).cpu()
    qset = _quantized_set(syn, stack, evaluator.latents, steps, None)
    qset.report = QuantizationReport(
        mse_threshold=threshold, steps=steps, mse=mse, weight_bits=weight_bits,
        latent_bits=torch.from_numpy(evaluator.latent_bits(everyone)),
        estimated_latent_bits=float_latent_bits(stack, evaluator.latents, syn.layout.slice_sizes), evaluations=rounds)
    return qset
