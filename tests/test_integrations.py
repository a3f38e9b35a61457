"""The drop-in adapters: TensorPool (DD-RUO), SynSet (FreD/DDiF) and MTTSet against the core API."""
import copy
from dataclasses import replace
from itertools import pairwise

import pytest
import torch
from test_joint import _real, _set

from ddfast import ops
from ddfast.codec import SyntheticSet, clip_grad_norm_per_slice
from ddfast.codec.synthesis import StackedSynthesis
from ddfast.distill import (
    ClassSampler,
    DistributionMatching,
    TrajectoryMatching,
    get_network,
    network_factory,
)
from ddfast.distill.joint import JointTrainer, RateUtility, Stage, two_pass_gradients
from ddfast.distill.utility import DMUtility, TMUtility
from ddfast.errors import ConfigError
from ddfast.integrations import MTTSet, SynSet, TensorPool
from ddfast.integrations.normalization import Normalization

LR_IT, LDB, LDB_IT = 1000.0, 5.0, 10.0


def _dm(dtype=torch.float64, seed=0):
    images, labels = _real(dtype=dtype)
    factory = network_factory("ConvNet", 1, 2, (10, 8))
    return DistributionMatching(ClassSampler(images, labels, 2, seed=seed),
                                lambda s: factory(s).to(dtype), batch_real=4, seed=seed + 1)


def _assert_same_parameters(a: SyntheticSet, b: SyntheticSet, **tolerance):
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=name, **tolerance)


# -- TensorPool ----------------------------------------------------------------------------------------

def test_tensor_pool_step_equals_the_reference_two_passes():
    """get_data / fill_data_diff / backward give the gradients and the update of the reference's
    decode-without-gradients, image gradient, per-class re-forward with the same noise."""
    syn = _set()
    reference = copy.deepcopy(syn)
    pool = TensorPool(syn, LDB, seed=7)
    dm = _dm()
    states = [dm.sampler.generator.get_state(), dm.generator.get_state()]

    def loss(x, y):  # the same networks and real batches for both formulations
        dm.sampler.generator.set_state(states[0])
        dm.generator.set_state(states[1])
        return dm(x, y)

    transform = Normalization([0.3], [0.4], 1).to_input
    replay = torch.Generator()
    replay.set_state(pool.noise.get_state())
    noise = syn.quantizer.sample_noise(syn.stack.latents, replay)
    with torch.no_grad():
        images, _, bits = copy.deepcopy(syn).train().forward_with_rate(noise=noise)

    pool.train()
    data, labels, bpp = pool.get_data()
    assert data.is_leaf and data.requires_grad and torch.equal(labels, torch.tensor([0, 0, 0, 1, 1]))
    torch.testing.assert_close(data, images, rtol=0, atol=0)
    assert bpp == pytest.approx(float((bits / torch.tensor([160.0, 80.0, 160.0])).mean()), rel=1e-12)
    loss(transform(data), labels).backward()
    pool.fill_data_diff()
    pool.backward(LR_IT, LDB_IT)

    grads = two_pass_gradients(reference, loss, transform, LR_IT, LDB_IT * LDB, noise)
    assert all(g.abs().sum() > 0 for g in grads)
    clip_grad_norm_per_slice(reference.parameters(), 0.1)
    torch.optim.Adam(reference.parameters(), lr=1e-3).step()
    for (name, p), q in zip(syn.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)
    _assert_same_parameters(syn, reference, rtol=1e-9, atol=1e-12)


def test_a_dm_loop_through_tensor_pool_equals_joint_trainer():
    syn = _set()
    core = copy.deepcopy(syn)
    transform = Normalization([0.3], [0.4], 1).to_input
    pool, dm = TensorPool(syn, LDB, seed=3), _dm()
    for _ in range(3):
        pool.train()
        data, labels, _ = pool.get_data()
        dm(transform(data), labels).backward()
        pool.fill_data_diff()
        pool.backward(LR_IT, LDB_IT)
    trainer = JointTrainer(core, DMUtility(_dm()), RateUtility(LR_IT, LDB, (Stage(3, LDB_IT),)), transform, seed=3)
    for _ in range(3):
        trainer.run_iteration()
    _assert_same_parameters(syn, core, rtol=1e-8, atol=1e-11)


def test_tensor_pool_refuses_steps_out_of_order():
    pool = TensorPool(_set(dtype=torch.float32), LDB)
    with pytest.raises(ConfigError, match="get_data"):
        pool.backward(LR_IT, LDB_IT)
    pool.train()
    data, _, _ = pool.get_data()
    with pytest.raises(ConfigError, match="no gradient"):
        pool.fill_data_diff()
    with pytest.raises(ConfigError, match="shape"):
        pool.fill_data_diff(torch.ones(2, 1, 10, 8))
    with pytest.raises(ConfigError, match="fill_data_diff"):
        pool.backward(LR_IT, LDB_IT)
    pool.fill_data_diff(torch.ones_like(data))
    with pytest.raises(ConfigError, match="ldb_it"):
        pool.backward(LR_IT, 0.0)
    pool.test()
    data, _, _ = pool.get_data()
    assert torch.equal(data, torch.round(data * 65535) / 65535)  # eval decode: 16-bit levels
    with pytest.raises(ConfigError, match="train"):
        pool.fill_data_diff(torch.ones_like(data))
    with pytest.raises(ConfigError, match="phase 0"):
        pool.set_training_phase(1)
    with pytest.raises(ConfigError, match="ldb"):
        TensorPool(pool.syn, -1.0)


def test_tensor_pool_build_warms_up_with_beta_one_over_ldb():
    pool = TensorPool.build(2, None, [2, 3], 0.1, (8, 8), channels=1, layers_v="v4-40", arm=8, dim=1)
    assert pool.syn.layout.images_per_class == (2, 3) and pool.syn.config.synthesis == "v4-40"
    real = {c: torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(c)) for c in range(2)}
    report = pool.init_from_data(real, candidates=(1,), iterations=(2,), progress=False)
    torch.testing.assert_close(report.loss, report.mse + report.bits / torch.tensor([128.0, 192.0]) / 10.0)
    with pytest.raises(ConfigError, match="num_classes=3"):
        TensorPool.build(3, None, [2, 3], 0.1, (8, 8))


def test_tensor_pool_quantize_net_save_and_load(tmp_path):
    syn = _set(dtype=torch.float32)
    pool = TensorPool(syn, LDB)
    bpp, parts = pool.quantize_net(5e-5)
    assert set(parts) == {"latents", "arm", "synthesis", "upsampling"}
    assert bpp == pytest.approx(sum(parts.values()))
    report = pool.quantized.report
    assert parts["latents"] == pytest.approx(float((report.latent_bits / torch.tensor([160.0, 80.0, 160.0])).mean()))
    pool.test()
    data, _, _ = pool.get_data()
    expected, _ = pool.quantized.to_synthetic_set()()
    torch.testing.assert_close(data, expected)  # later decodes use the quantized weights

    pool.save(tmp_path / "pool.pt")
    other = TensorPool(_set(dtype=torch.float32), LDB)
    with torch.no_grad():
        other.syn.stack.latents.add_(1.0)
    other.load_slice_pool(tmp_path / "pool.pt")
    _assert_same_parameters(other.syn, syn, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="another shape"):
        TensorPool(_set(counts=(2, 2), dtype=torch.float32), LDB).load(tmp_path / "pool.pt")


# -- SynSet --------------------------------------------------------------------------------------------

def _synset(counts=(3, 2, 4), slice_size=2, dtype=torch.float64, **kwargs) -> SynSet:
    syn = _set(counts=counts, slice_size=slice_size, dtype=dtype)
    return SynSet(syn, RateUtility(LR_IT, LDB, (Stage(10, LDB_IT),)), **kwargs)


def test_synset_get_of_some_images_decodes_only_their_slices(monkeypatch):
    synset = _synset(mean=[0.3], std=[0.4])  # slices of (2, 1 | 2 | 2, 2) images, 5 slices
    full, labels = synset.get(need_copy=True)
    assert not full.requires_grad and torch.equal(labels, torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2]))
    seen = []
    forward, rate = StackedSynthesis.forward, ops.latent_rate
    monkeypatch.setattr(StackedSynthesis, "forward", lambda self, x, *a, **k: seen.append(tuple(x.shape[:2])) or
                        forward(self, x, *a, **k))
    monkeypatch.setattr(ops, "latent_rate", lambda q, *a, **k: seen.append(("rate", q.shape[0])) or rate(q, *a, **k))

    part, part_labels = synset.get([6, 0, 5], need_copy=True)  # slice 3 (positions 1, 0) and slice 0
    torch.testing.assert_close(part, full[[6, 0, 5]], rtol=0, atol=0)
    assert torch.equal(part_labels, torch.tensor([2, 0, 2])) and seen == [(2, 2), ("rate", 2)]

    seen.clear()
    state = synset.noise.get_state()
    whole, _ = synset.get()
    synset.noise.set_state(state)
    some, _ = synset.get(torch.tensor([4, 3]))  # train mode: the same noise as the whole decode
    torch.testing.assert_close(some, whole[[4, 3]], rtol=1e-12, atol=1e-12)
    assert seen[-2:] == [(1, 2), ("rate", 1)]

    some.sum().backward()  # the image gradient and the rate reach slice 2 only
    for name, p in synset.syn.named_parameters():
        assert (p.grad.reshape(5, -1).abs().sum(dim=1) > 0).tolist() == [False, False, True, False, False], name
    with pytest.raises(ConfigError, match=r"\[0, 9\)"):
        synset.get([9])
    with pytest.raises(ConfigError, match="integers"):
        synset.get(torch.tensor([0.5]))


def test_one_get_per_class_equals_one_get_of_the_whole_set():
    """A DM loop asking class by class gives the gradient of one whole-set decode (noise-free quantizer)."""
    by_class, whole = _synset(), _synset()
    for synset in (by_class, whole):
        synset.syn.quantizer = replace(synset.syn.quantizer, noise="none")
        synset.optim_zero_grad()
    target = torch.linspace(-1, 1, 80, dtype=torch.float64).reshape(1, 1, 10, 8)
    starts = (0, 3, 5, 9)
    loss = sum(((by_class.get(range(a, b))[0] - target) ** 2).mean() * (c + 1)
               for c, (a, b) in enumerate(pairwise(starts)))
    loss.backward()
    images, labels = whole.get()
    sum((((images[labels == c] - target) ** 2).mean() * (c + 1)) for c in range(3)).backward()
    for (name, p), q in zip(by_class.syn.named_parameters(), whole.syn.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_a_dm_loop_through_synset_equals_joint_trainer():
    synset = _synset(counts=(3, 2), slice_size=2, mean=[0.3], std=[0.4], seed=5)
    synset.weights = RateUtility(LR_IT, LDB, (Stage(2, LDB_IT), Stage(2, 100.0)))
    core = copy.deepcopy(synset.syn)
    dm = _dm()
    for _ in range(4):
        images, labels = synset.get()
        loss = dm(images, labels)
        synset.optim_zero_grad()
        loss.backward()
        synset.optim_step()
    assert synset.ldb_it == 100.0
    trainer = JointTrainer(core, DMUtility(_dm()), synset.weights, synset.normalization.to_input, seed=5)
    for _ in range(4):
        trainer.run_iteration()
    _assert_same_parameters(synset.syn, core, rtol=1e-8, atol=1e-11)


def test_synset_init_warms_up_on_pixels_of_each_class():
    synset = _synset(counts=(2, 3), slice_size=None, mean=[0.5], std=[0.25])
    assert synset.label_syn.tolist() == [0, 0, 1, 1, 1]
    pixels = torch.rand(8, 1, 10, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 1, 1])
    indices_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(2)]
    calls = []
    synset.syn.init_from_data = lambda by_class, beta, **options: calls.append((by_class, beta, options))
    synset.init((pixels - 0.5) / 0.25, labels, indices_class, beta=10.0, progress=False)
    (by_class, beta, options), = calls
    assert beta == 10.0 and options == {"progress": False}
    for c, images in enumerate(by_class):
        assert images.shape[0] == synset.syn.layout.images_per_class[c]
        for image in images:  # each is (up to rounding) one of the class's real images, as pixels
            assert min(float((image - pixels[i].float()).abs().max()) for i in indices_class[c]) < 1e-6
    with pytest.raises(ConfigError, match="label is not 0"):
        synset.init(pixels, labels, [indices_class[1], indices_class[0]])
    with pytest.raises(ConfigError, match="3 real images, its codecs need 3|has 2 real"):
        synset.init(pixels, labels, [indices_class[0], indices_class[1][:2]])
    with pytest.raises(ConfigError, match="different numbers"):
        _ = synset.num_per_class
    assert _synset(counts=(2, 2), slice_size=None).num_per_class == 2
    with pytest.raises(ConfigError, match="RateUtility"):
        SynSet(synset.syn, {"lr_it": 1.0})
    with pytest.raises(ConfigError, match="mean and std"):
        SynSet(synset.syn, synset.weights, mean=[0.1, 0.2], std=[1.0, 1.0])


# -- MTTSet --------------------------------------------------------------------------------------------

def _tm(seed=0):
    net = get_network("ConvNet", 1, 2, (10, 8), seed=0)
    trajectory = [[p.detach().clone() + 0.01 * k for p in net.parameters()] for k in range(4)]
    return TrajectoryMatching([trajectory], net, syn_steps=2, expert_epochs=1, max_start_epoch=2, seed=seed)


def test_an_mtt_loop_through_mtt_set_equals_the_tm_utility():
    syn = _set(counts=(4, 4), slice_size=None, dtype=torch.float32)
    core = copy.deepcopy(syn)
    weights = RateUtility(LR_IT, 0.1, (Stage(3, 100.0),))
    mtt = MTTSet(syn, weights, lr_teacher=0.01, lr_lr=1e-2, seed=2)
    tm = _tm()
    tm.syn_lr = mtt.syn_lr  # the student's step size is the adapter's
    for _ in range(3):
        image_syn = mtt.image_syn
        assert mtt.image_syn is image_syn
        loss = tm(image_syn, mtt.label_syn)
        mtt.zero_grad()
        loss.backward()
        mtt.step()
        assert mtt.image_syn is not image_syn
    utility = TMUtility(_tm(), num_images=8, lr_lr=1e-2)
    trainer = JointTrainer(core, utility, weights, lambda x: x, seed=2)
    for _ in range(3):
        trainer.run_iteration()
    assert mtt.syn_lr.item() == pytest.approx(utility.syn_lr, rel=1e-5) and mtt.syn_lr.item() != 0.01
    _assert_same_parameters(syn, core, rtol=1e-4, atol=2e-6)
    with pytest.raises(ConfigError, match="lr_lr"):
        MTTSet(syn, weights, lr_lr=0.0)
