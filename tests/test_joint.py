"""The joint rate-utility phase: fused gradients against the reference's two passes, stages, TM subsets."""
import pytest
import torch

from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.distill import DSA, ClassSampler, DistributionMatching, TrajectoryMatching, get_network, network_factory
from ddfast.distill.joint import JointTrainer, RateUtility, Stage, fused_gradients, two_pass_gradients
from ddfast.distill.utility import DMUtility, TMUtility
from ddfast.errors import ConfigError

TINY = CodecConfig(synthesis="v4-40", arm_context=8, arm_depth=1)


def _set(counts=(3, 2), slice_size=2, dtype=torch.float64) -> SyntheticSet:
    syn = SyntheticSet(list(counts), (10, 8), channels=1, config=TINY, slice_size=slice_size,
                       generator=torch.Generator().manual_seed(0)).to(dtype)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in syn.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.1)
    return syn


def _real(n=40, classes=2, dtype=torch.float64):
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(n, 1, 10, 8, generator=gen, dtype=dtype)
    return images, torch.arange(n) % classes


def test_fused_gradients_equal_the_two_pass_formulation():
    syn = _set()
    images, labels = _real()
    sampler = ClassSampler(images, labels, 2, seed=3)
    dm = DistributionMatching(sampler, lambda seed: get_network("ConvNet", 1, 2, (10, 8), seed=seed).double(),
                              batch_real=8, dsa=DSA(seed=4), seed=5)
    states = [sampler.generator.get_state(), dm.generator.get_state(), dm.dsa.generator.get_state()]

    def loss(x, y):  # the same networks, real batches and augmentations for both formulations
        for gen, state in zip((sampler.generator, dm.generator, dm.dsa.generator), states):
            gen.set_state(state)
        return dm(x, y)

    noise = syn.quantizer.sample_noise(syn.stack.latents, torch.Generator().manual_seed(6))
    transform = lambda x: (x - 0.3) / 0.4  # noqa: E731
    fused = fused_gradients(syn, loss, transform, 1000.0, 25.0, noise)
    reference = two_pass_gradients(syn, loss, transform, 1000.0, 25.0, noise)
    assert all(g.abs().sum() > 0 for g in fused)
    for a, b in zip(fused, reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_stages_switch_lambda_at_their_iteration():
    weights = RateUtility(lr_it=1000.0, ldb=5.0, stages=(Stage(3, 10.0), Stage(2, 100.0)))
    assert weights.iterations == 5 and weights.stage_starts() == [0, 3]
    assert [weights.stage_index(i) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert weights.lam(0) == pytest.approx(20.0) and weights.lam(1) == pytest.approx(2.0)
    syn = _set(dtype=torch.float32)
    images, labels = _real(dtype=torch.float32)
    dm = DistributionMatching(ClassSampler(images, labels, 2, seed=0), network_factory("ConvNet", 1, 2, (10, 8)),
                              batch_real=4, seed=1)
    trainer = JointTrainer(syn, DMUtility(dm), weights, lambda x: x, seed=0)
    records = [trainer.run_iteration() for _ in range(5)]
    assert [r["stage"] for r in records] == [0, 0, 0, 1, 1]
    assert [r["lambda"] for r in records] == pytest.approx([20.0, 20.0, 20.0, 2.0, 2.0])
    for bad in (dict(lr_it=0.0), dict(ldb=float("nan")), dict(stages=())):
        with pytest.raises(ConfigError):
            RateUtility(**{**dict(lr_it=1.0, ldb=1.0, stages=(Stage(1, 1.0),)), **bad})
    with pytest.raises(ConfigError, match="ldb_it"):
        Stage(3, -1.0)


def test_the_joint_phase_trades_rate_for_utility():
    """A strongly rate-weighted stage lowers the set's bits; the set's parameters all move."""
    syn = _set(counts=(4, 4), slice_size=None, dtype=torch.float32)
    before = {k: v.clone() for k, v in syn.state_dict().items()}
    images, labels = _real(dtype=torch.float32)
    dm = DistributionMatching(ClassSampler(images, labels, 2, seed=0), network_factory("ConvNet", 1, 2, (10, 8)),
                              batch_real=4, seed=1)
    trainer = JointTrainer(syn, DMUtility(dm), RateUtility(lr_it=1.0, ldb=5.0, stages=(Stage(30, 1e4),), lr=1e-2),
                           lambda x: x, seed=0)
    bits = [trainer.run_iteration()["bits"] for _ in range(30)]
    assert bits[-1] < 0.8 * bits[0]
    assert all(not torch.equal(before[k], v) for k, v in syn.state_dict().items() if k.endswith(("latents", "out_w")))


def test_tm_decodes_only_the_images_its_unroll_uses(monkeypatch):
    syn = _set(counts=(6, 6), slice_size=None, dtype=torch.float32)
    images, labels = _real(dtype=torch.float32)
    net = get_network("ConvNet", 1, 2, (10, 8), seed=0)
    trajectory = [[p.detach().clone() + 0.01 * k for p in net.parameters()] for k in range(4)]
    tm = TrajectoryMatching([trajectory], net, syn_steps=2, expert_epochs=1, max_start_epoch=2, batch_syn=2, seed=0)
    decoded = []
    original = SyntheticSet.forward_subset

    def spy(self, indices, *args, **kwargs):
        decoded.append(torch.as_tensor(indices).clone())
        return original(self, indices, *args, **kwargs)

    monkeypatch.setattr(SyntheticSet, "forward_subset", spy)
    utility = TMUtility(tm, num_images=12, lr_lr=1e-2)
    trainer = JointTrainer(syn, utility, RateUtility(lr_it=1000.0, ldb=0.1, stages=(Stage(3, 100.0),)),
                           lambda x: x, seed=0)
    start_lr = utility.syn_lr
    for _ in range(3):
        trainer.run_iteration()
    assert len(decoded) == 3 and all(len(d) <= 4 for d in decoded)  # 2 steps x 2 images of the 12
    assert utility.syn_lr != start_lr and utility.syn_lr >= 0.001


def test_loss_parameters_get_the_plain_utility_gradient():
    """TM's syn_lr learns from dU/d(syn_lr), not lr_it times it -- also when handed a generator."""
    syn = _set(counts=(2, 2), slice_size=None, dtype=torch.float64)
    scale = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
    trainer = JointTrainer(syn, None, RateUtility(lr_it=1000.0, ldb=1.0, stages=(Stage(1, 1.0),)), lambda x: x)
    result = trainer.update(lambda images, labels: scale * images.sum(), loss_parameters=(p for p in [scale]))
    torch.testing.assert_close(scale.grad, result.images.sum())
