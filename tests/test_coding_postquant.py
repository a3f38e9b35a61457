"""Post-quantization: feasibility, the fast search against the exhaustive twin, per-slice independence, errors."""
import numpy as np
import pytest
import torch

from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.coding import post_quantize, quantize_at
from ddfast.coding.postquant import (
    BIAS_EXPONENTS,
    WEIGHT_EXPONENTS,
    coordinate_search,
    exhaustive_cost_search,
    exhaustive_search,
    frontier_search,
    run_lockstep,
)
from ddfast.coding.quantized import MODULES, RAW, integers_at_step
from ddfast.data import load
from ddfast.errors import ConfigError

from coding_helpers import FINE_STEPS, random_set


@pytest.fixture(scope="module")
def fitted() -> SyntheticSet:
    """Three Fashion-MNIST classes, four images each, briefly fitted (phase 1)."""
    data = load("bundled", split="train").take_per_class(4, generator=torch.Generator().manual_seed(0))
    by_class = data.by_class()[:3]
    syn = SyntheticSet(4, data.image_size, num_classes=3, channels=1,
                       config=CodecConfig(synthesis="v4-40", arm_context=8, arm_depth=1),
                       generator=torch.Generator().manual_seed(0))
    syn.init_from_data(by_class, beta=1e3, candidates=(1,), iterations=(80,), progress=False,
                       generator=torch.Generator().manual_seed(0))
    return syn.eval()


def _total_bits(q) -> float:
    r = q.report
    return float(sum(r.weight_bits[m].sum() for m in MODULES) + r.latent_bits.sum())


def test_result_is_feasible_on_the_grids_and_leaves_the_set_unchanged(fitted):
    before = {k: v.clone() for k, v in fitted.state_dict().items()}
    q = post_quantize(fitted, 5e-6)
    assert all(torch.equal(v, fitted.state_dict()[k]) for k, v in before.items())
    assert (q.report.mse <= 5e-6).all()
    for module in MODULES:
        kw, kb = q.report.steps[module].T.tolist()
        assert all(k in WEIGHT_EXPONENTS[module] or (k == RAW and module != "arm") for k in kw)
        assert all(k in BIAS_EXPONENTS[module] for k in kb)
    for spec in q.specs:
        ints = integers_at_step(q.tensors[spec.name], q.steps[spec.module][:, int(spec.bias)])
        assert ints.abs().max() <= 65535
        step = 2.0 ** -q.steps[spec.module][:, int(spec.bias)].double()
        assert torch.equal(ints.double() * step.reshape(-1, *[1] * (ints.dim() - 1)), q.tensors[spec.name].double())
    assert torch.equal(q.latents, torch.round(16 * fitted.stack.latents.detach()).to(torch.int32))
    # The integer ARM's exact bits stay within 1 % of the float estimate of training.
    ratio = q.report.latent_bits.sum() / q.report.estimated_latent_bits.sum()
    assert abs(float(ratio) - 1) < 0.01


def test_fast_search_is_within_one_percent_of_the_exhaustive_twin(fitted):
    fast = post_quantize(fitted, 5e-7, search="fast")
    exhaustive = post_quantize(fitted, 5e-7, search="exhaustive")
    assert (fast.report.mse <= 5e-7).all() and (exhaustive.report.mse <= 5e-7).all()
    assert _total_bits(fast) <= 1.01 * _total_bits(exhaustive)
    assert fast.report.evaluations < exhaustive.report.evaluations / 3


def test_tighter_thresholds_cost_more_weight_bits(fitted):
    bits = []
    for threshold in (5e-5, 5e-6, 5e-7, 5e-8):
        q = post_quantize(fitted, threshold)
        assert (q.report.mse <= threshold).all()
        bits.append(sum(float(q.report.weight_bits[m].sum()) for m in ("synthesis", "upsampling")))
    assert bits == sorted(bits)


def test_slices_are_searched_independently(fitted):
    together = post_quantize(fitted, 5e-6)
    for label in range(3):
        alone = SyntheticSet(4, fitted.image_size, num_classes=1, channels=1, config=fitted.config)
        with torch.no_grad():
            for dst, src in zip(alone.parameters(), fitted.parameters()):
                dst.copy_(src[label:label + 1])
        q = post_quantize(alone.eval(), 5e-6)
        for module in MODULES:
            assert torch.equal(q.report.steps[module][0], together.report.steps[module][label]), module


def test_a_module_no_step_can_quantize_stays_float32():
    syn = random_set([2], (8, 8), channels=1, context=8, depth=1, seed=2)
    q = post_quantize(syn, 1e-30)
    assert q.report.steps["synthesis"][0, 0] == RAW and q.report.steps["upsampling"][0, 0] == RAW
    assert q.report.steps["arm"][0, 0] != RAW  # the ARM never changes the images
    assert torch.equal(q.tensors["synthesis.weights.0"], syn.stack.synthesis.weights[0].detach())


def test_lockstep_driver_and_searches_on_a_synthetic_feasibility_map():
    """Fast searches against exhaustive twins on known monotone maps (no decoding involved)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        kw, kb = 16, 12
        w_bits = np.sort(rng.uniform(0, 100, kw))  # finer steps cost more
        b_bits = np.sort(rng.uniform(0, 20, kb))
        w_bits[rng.integers(12, kw):] = np.inf      # the finest steps overflow 65535
        threshold_w, slope = rng.integers(0, 12), rng.uniform(0, 1)
        feasible = lambda iw, ib: iw >= threshold_w + slope * (kb - 1 - ib)  # monotone in both steps
        latent = lambda iw, ib: 50.0 / (1 + iw) + 5.0 / (1 + ib)
        results = []
        for make in (frontier_search, exhaustive_search):
            choices, _ = run_lockstep([make(w_bits, b_bits)], lambda q: {s: feasible(*p) for s, p in q.items()})
            results.append(choices[0])
        cost = lambda c: w_bits[c[0]] + b_bits[c[1]]
        assert results[0] is not None and feasible(*results[0]) and cost(results[0]) == cost(results[1])
        for make in (coordinate_search, exhaustive_cost_search):
            choices, _ = run_lockstep([make(w_bits, b_bits)], lambda q: {s: latent(*p) for s, p in q.items()})
            results.append(choices[0])
        total = lambda c: cost(c) + latent(*c)
        assert total(results[2]) <= 1.05 * total(results[3])


def test_bad_arguments_are_refused_before_any_work():
    syn = random_set([2], (8, 8), channels=1, context=8, depth=1, seed=1)
    for threshold in (0, -1e-6, float("nan"), "x"):
        with pytest.raises(ConfigError, match="mse_threshold"):
            post_quantize(syn, threshold)
    with pytest.raises(ConfigError, match="search"):
        post_quantize(syn, search="random")
    with pytest.raises(ConfigError, match="grids"):
        quantize_at(syn, {**FINE_STEPS, "arm": (9, 16)})
    with pytest.raises(ConfigError, match="modules"):
        quantize_at(syn, {"arm": (8, 16)})
    with torch.no_grad():
        syn.stack.latents[0, 0, 0] = 1000.0
    with pytest.raises(ConfigError, match="latent values reach 16000"):
        post_quantize(syn)
