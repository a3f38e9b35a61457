"""TM / GM / DM: each loss decreases when its own synthetic set is optimized (tiny data)."""
import pytest
import torch

from ddfast.distill.dsa import DSA
from ddfast.distill.experts import ExpertConfig, train_expert
from ddfast.distill.losses import DistributionMatching, GradientMatching, TrajectoryMatching, get_loops, match_distance
from ddfast.distill.networks import get_network
from ddfast.distill.realdata import ClassSampler
from ddfast.errors import ConfigError

NET = "ConvNetW32"
CLASSES, SIZE = 3, 8


@pytest.fixture(scope="module")
def real():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(CLASSES).repeat_interleave(8)
    pattern = torch.randn(CLASSES, 3, SIZE, SIZE, generator=g)
    images = pattern[labels] + 0.5 * torch.randn(labels.shape[0], 3, SIZE, SIZE, generator=g)
    return images, labels


@pytest.fixture(scope="module")
def trajectory(real):
    config = ExpertConfig(model=NET, epochs=3, batch_size=8, dsa_strategy="none", seed=0)
    return train_expert(*real, CLASSES, config, 0)[0]


def _syn(seed=1, n_per_class=2):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(CLASSES).repeat_interleave(n_per_class)
    return torch.randn(labels.shape[0], 3, SIZE, SIZE, generator=g), labels


def _optimize(loss_fn, images, labels, steps, lr):
    images = images.clone().requires_grad_(True)
    opt = torch.optim.Adam([images], lr=lr)
    before = loss_fn(images, labels).item()
    for _ in range(steps):
        loss = loss_fn(images, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_fn(images, labels).item()
    return before, after


def _tm(trajectory, **kw):
    options = dict(syn_steps=4, expert_epochs=2, max_start_epoch=1, seed=0)
    options.update(kw)
    return TrajectoryMatching([trajectory], get_network(NET, 3, CLASSES, SIZE), **options)


# -- TM -------------------------------------------------------------------------------------------
def test_tm_decreases_when_its_images_are_optimized(trajectory):
    tm = _tm(trajectory)
    before, after = _optimize(tm, *_syn(), steps=15, lr=0.05)
    assert after < 0.9 * before


def test_tm_recompute_gradients_equal_the_full_graph(trajectory):
    images, labels = _syn()
    results = {}
    for unroll in ("graph", "recompute"):
        tm = _tm(trajectory, unroll=unroll, batch_syn=4, max_start_epoch=2, dsa=DSA(seed=2))
        x = images.clone().requires_grad_(True)
        loss = tm(x, labels)
        loss.backward()
        results[unroll] = (loss.detach(), x.grad, tm.syn_lr.grad)
    (l1, g1, s1), (l2, g2, s2) = results["graph"], results["recompute"]
    assert torch.allclose(l1, l2, rtol=1e-5)
    assert g1.abs().sum() > 0
    assert (g1 - g2).abs().max() <= 1e-4 * g1.abs().max()
    assert torch.allclose(s1, s2, rtol=1e-4)


def test_tm_loss_is_normalized_distance_and_syn_lr_clamps(trajectory):
    images, labels = _syn()
    zero_steps = _tm(trajectory, lr_teacher=0.0)  # syn_lr = 0: the student never moves
    assert torch.allclose(zero_steps(images, labels), torch.tensor(1.0))
    tm = _tm(trajectory)
    assert tm.parameters() == [tm.syn_lr]
    with torch.no_grad():
        tm.syn_lr.fill_(-1.0)
    tm.clamp_syn_lr_()
    assert tm.syn_lr.item() == pytest.approx(0.001)


def test_tm_checks_the_buffer(trajectory):
    images, labels = _syn()
    with pytest.raises(ConfigError, match="snapshots"):
        _tm(trajectory, max_start_epoch=3)(images, labels)
    wrong = TrajectoryMatching(
        [trajectory], get_network("ConvNetW64", 3, CLASSES, SIZE), syn_steps=1, expert_epochs=1, max_start_epoch=1
    )
    with pytest.raises(ConfigError, match="architecture"):
        wrong(images, labels)


def _dropout_student():
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def test_tm_recompute_replays_dropout_masks():
    g = torch.Generator().manual_seed(1)
    base = [p.detach().clone() for p in _dropout_student().parameters()]
    trajectory = [[p + 0.1 * k * torch.randn(p.shape, generator=g) for p in base] for k in range(3)]
    images, labels = torch.randn(6, 3, 4, 4, generator=g), torch.arange(3).repeat_interleave(2)
    results = {}
    for unroll in ("graph", "recompute"):
        tm = TrajectoryMatching([trajectory], _dropout_student(), syn_steps=3, expert_epochs=2, max_start_epoch=1,
                                batch_syn=4, seed=0, unroll=unroll)
        x = images.clone().requires_grad_(True)
        torch.manual_seed(123)
        loss = tm(x, labels)
        loss.backward()
        results[unroll] = (loss.detach(), x.grad, tm.syn_lr.grad, torch.rand(4))
    (l1, g1, s1, r1), (l2, g2, s2, r2) = results["graph"], results["recompute"]
    assert torch.allclose(l1, l2, rtol=1e-6)
    assert g1.abs().sum() > 0
    assert torch.allclose(g1, g2, rtol=1e-5, atol=1e-8) and torch.allclose(s1, s2, rtol=1e-5)
    assert torch.equal(r1, r2)  # the recomputing backward leaves torch's global RNG where "graph" does
    torch.manual_seed(7)  # other masks: another loss, so the dropout really is active
    tm = TrajectoryMatching([trajectory], _dropout_student(), syn_steps=3, expert_epochs=2, max_start_epoch=1,
                            batch_syn=4, seed=0)
    assert not torch.allclose(tm(images, labels), l1)


def test_tm_checks_image_shape_and_label_dtype(trajectory):
    images, labels = _syn()
    tm = _tm(trajectory)
    assert tm.image_shape == (3, SIZE, SIZE)  # from get_network's input_shape
    with pytest.raises(ConfigError, match=r"student takes images shaped \(3, 8, 8\).*\(3, 16, 16\)"):
        tm(torch.randn(6, 3, 16, 16), labels)
    with pytest.raises(ConfigError, match="integer class labels.*float32"):
        tm(images, labels.float())
    with pytest.raises(ConfigError, match="labels \\[n\\]"):
        tm(images, labels[:-1])
    custom = TrajectoryMatching([trajectory], torch.nn.Sequential(*get_network(NET, 3, CLASSES, SIZE).children()),
                                syn_steps=1, expert_epochs=1, max_start_epoch=1, image_shape=(3, SIZE, SIZE))
    with pytest.raises(ConfigError, match="shaped"):
        custom(torch.randn(6, 1, SIZE, SIZE), labels)


# -- GM -------------------------------------------------------------------------------------------
def test_match_distance_definitions():
    gen = torch.Generator().manual_seed(0)
    g = [torch.randn(4, 3, 3, 3, generator=gen), torch.randn(4, generator=gen), torch.randn(5, 6, generator=gen)]
    assert float(match_distance(g, g, "ours")) == pytest.approx(0.0, abs=1e-4)
    other = [t.clone() for t in g]
    other[1] = torch.randn(4, generator=gen)  # 1-D tensors (biases, norms) do not count in "ours"
    assert float(match_distance(other, g, "ours")) == pytest.approx(0.0, abs=1e-4)
    flipped = [-t for t in g]
    assert float(match_distance(flipped, g, "ours")) == pytest.approx(2 * (4 + 5), rel=1e-4)
    flat = torch.cat([t.flatten() for t in g])
    other_flat = torch.cat([t.flatten() for t in other])
    assert torch.allclose(match_distance(other, g, "mse"), (flat - other_flat).pow(2).sum())
    cos = torch.dot(flat, other_flat) / (flat.norm() * other_flat.norm() + 1e-6)
    assert torch.allclose(match_distance(other, g, "cos"), 1 - cos, atol=1e-6)  # 1 - cos ≈ 0: float32 cancellation
    with pytest.raises(ConfigError):
        match_distance(g, g, "l1")


def test_get_loops_table():
    assert get_loops(1) == (1, 1) and get_loops(10) == (10, 50) and get_loops(50) == (50, 10)
    assert get_loops(96) == (50, 10)
    with pytest.raises(ConfigError):
        get_loops(7)


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_gm_decreases_when_its_images_are_optimized(real, metric):
    sampler = ClassSampler(*real, seed=0)
    gm = GradientMatching(sampler, metric=metric, batch_real=100)  # all real images: deterministic
    gm.set_network(get_network(NET, 3, CLASSES, SIZE, seed=0))
    before, after = _optimize(gm, *_syn(), steps=15, lr=0.01)
    if metric == "ours":  # Σ over ~300 rows of 1 - cos; rows of dead units stay at 1
        assert after < before - 3
    else:
        assert after < 0.8 * before


def test_gm_inner_loop_trains_the_network(real):
    gm = GradientMatching(ClassSampler(*real, seed=0), dsa=DSA(seed=0))
    with pytest.raises(ConfigError):
        gm(*_syn())
    gm.set_network(get_network(NET, 3, CLASSES, SIZE, seed=0))
    start = [p.detach().clone() for p in gm.net.parameters()]
    images, labels = _syn()
    loss = gm(images.requires_grad_(True), labels)  # with Siamese DSA
    assert loss.requires_grad and loss.item() > 0
    gm.train_network(images, labels, epochs=2)
    assert any(not torch.equal(a, b) for a, b in zip(start, gm.net.parameters()))


@pytest.mark.parametrize("arch", [NET, "ConvNetBN"])
def test_gm_runs_on_the_synthetic_images_device(real, arch):
    """The sampler keeps the real set on the CPU; synthetic images on another device ("meta"
    here, which computes shapes only) take the network and every real batch with them."""
    gm = GradientMatching(ClassSampler(*real, seed=0), batch_real=4, dsa=DSA(seed=0))
    gm.set_network(get_network(arch, 3, CLASSES, SIZE, seed=0))
    images, labels = _syn()
    images = images.to("meta").requires_grad_(True)
    loss = gm(images, labels)
    assert loss.device.type == "meta"
    assert all(p.device.type == "meta" for p in gm.net.parameters())
    assert gm.optimizer.param_groups[0]["params"] == list(gm.net.parameters())
    loss.backward()
    assert images.grad.shape == images.shape


# -- DM -------------------------------------------------------------------------------------------
def test_dm_decreases_when_its_images_are_optimized(real):
    sampler = ClassSampler(*real, seed=0)
    dm = DistributionMatching(sampler, lambda seed: get_network(NET, 3, CLASSES, SIZE, seed=0), batch_real=100)
    before, after = _optimize(dm, *_syn(), steps=15, lr=0.05)
    assert after < 0.5 * before


def test_dm_uses_a_fresh_frozen_network_and_siamese_dsa(real):
    seeds = []

    def factory(seed):
        seeds.append(seed)
        return get_network(NET, 3, CLASSES, SIZE, seed=seed)

    dm = DistributionMatching(ClassSampler(*real, seed=0), factory, batch_real=4, dsa=DSA(seed=0), seed=0)
    images, labels = _syn()
    images.requires_grad_(True)
    dm(images, labels).backward()
    dm(images, labels)
    assert len(set(seeds)) == 2 and images.grad.abs().sum() > 0
    bn = DistributionMatching(ClassSampler(*real, seed=0), lambda s: get_network("ConvNetBN", 3, CLASSES, SIZE, seed=s))
    assert float(bn(*_syn())) > 0


# -- pixel baselines --------------------------------------------------------------------------------
def test_pixel_baselines_start_from_real_images_and_move(real, trajectory):
    from ddfast.distill.baselines import distill_dm, distill_gm, distill_tm

    images, labels = real
    runs = {
        "GM": lambda: distill_gm(real, 2, iterations=2, arch=NET, loops=(2, 1), batch_real=4, seed=0, progress=False),
        "DM": lambda: distill_dm(real, 2, iterations=2, arch=NET, batch_real=4, seed=0, progress=False),
        "TM": lambda: distill_tm(real, 2, [trajectory], iterations=2, arch=NET, syn_steps=2, expert_epochs=1,
                                 max_start_epoch=2, lr_img=10.0, seed=0, progress=False),
    }
    for method, run in runs.items():
        result = run()
        assert result.images.shape == (CLASSES * 2, 3, SIZE, SIZE) and result.meta["method"] == method
        assert torch.equal(result.labels, torch.tensor([0, 0, 1, 1, 2, 2]))
        moved = [min((result.images[i] - images[labels == c]).abs().amax(dim=(1, 2, 3))) for i, c in
                 enumerate(result.labels.tolist())]
        assert max(moved) > 0
        assert torch.equal(result.images, run().images)  # reproducible under its seed
    init = distill_dm(real, 2, iterations=0, arch=NET, seed=0, progress=False)
    for image, c in zip(init.images, init.labels.tolist()):  # each initial image is a real one of its class
        assert (image - images[labels == c]).abs().amax(dim=(1, 2, 3)).min() == 0
    assert distill_tm(real, 1, [trajectory], iterations=1, arch=NET, syn_steps=1, expert_epochs=1, max_start_epoch=1,
                      progress=False).syn_lr is not None


def test_as_8bit_keeps_what_an_8bit_image_file_keeps():
    from ddfast.data import load
    from ddfast.distill import as_8bit

    data = load("bundled")
    pixels = data.to_float()[:5]                      # exactly k/255 already: unchanged
    torch.testing.assert_close(as_8bit(data.normalize(pixels), data), data.normalize(pixels))
    drifted = data.normalize(pixels + 0.3 / 255) + 100.0 * (torch.arange(5) == 0).view(-1, 1, 1, 1)
    stored = data.denormalize(as_8bit(drifted, data))
    assert stored[0].eq(1.0).all()                    # clamped to the pixel range
    torch.testing.assert_close(stored[1:], torch.clamp(pixels[1:] + 0.3 / 255, 0, 1).mul(255).round().div(255))
    torch.testing.assert_close(stored[1:] * 255, (stored[1:] * 255).round())
