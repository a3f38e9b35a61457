"""Triton kernels against their torch twins (interpreter on the CPU, natively on a GPU)."""
import pytest
import torch

import ddfast
from ddfast import ops
from ddfast.codec import CodecConfig, SyntheticSet, context_offsets
from ddfast.codec.upsampler import initial_upsampling_kernel
from ddfast.ops import torch_ops

triton = pytest.importorskip("triton", reason="Triton is not installed")
triton_ops = pytest.importorskip("ddfast.ops.triton_ops")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHAPES = [[(1, 1)], [(1, 7)], [(5, 3), (3, 2), (2, 1)], [(33, 17), (17, 9), (9, 5), (5, 3), (3, 2), (2, 1)]]


def _close(a, b, rel=1e-4):
    scale = max(b.abs().max().item(), 1e-6)
    return torch.allclose(a, b, rtol=rel, atol=rel * scale)


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("context", [8, 16, 32, 64])
def test_gather_context_matches_torch(shapes, context):
    gen = torch.Generator().manual_seed(context)
    m = sum(h * w for h, w in shapes)
    latents = torch.randn(3, m, generator=gen).to(DEVICE)
    offsets = context_offsets(context)
    upstream = torch.randn(3, m, context, generator=gen).to(DEVICE)
    a = latents.clone().requires_grad_(True)
    b = latents.clone().requires_grad_(True)
    out_t = ops.gather_context(a, shapes, offsets, backend="triton")
    out_r = ops.gather_context(b, shapes, offsets, backend="torch")
    assert torch.equal(out_t, out_r)
    (out_t * upstream).sum().backward()
    (out_r * upstream).sum().backward()
    assert _close(a.grad, b.grad, 1e-5)


def test_laplace_rate_matches_torch_including_far_tails():
    gen = torch.Generator().manual_seed(0)
    n = 3001
    x = torch.randint(-300, 301, (n,), generator=gen).float()
    x[:5] = torch.tensor([0.0, 0.5, -0.5, 1e4, -1e4])
    mu = torch.randn(n, generator=gen) * 5
    s = torch.rand(n, generator=gen) * 14 - 5
    inputs = [t.to(DEVICE).requires_grad_(True) for t in (x, mu, s)]
    twins = [t.to(DEVICE).requires_grad_(True) for t in (x, mu, s)]
    upstream = torch.randn(n, generator=gen).to(DEVICE)
    got = ops.laplace_rate(*inputs, backend="triton")
    want = ops.laplace_rate(*twins, backend="torch")
    assert torch.isfinite(got).all() and _close(got, want, 1e-5)
    (got * upstream).sum().backward()
    (want * upstream).sum().backward()
    for p, q in zip(inputs, twins):
        assert torch.isfinite(p.grad).all()
        assert _close(p.grad, q.grad, 1e-4)


@pytest.mark.parametrize("shapes", SHAPES[1:] + [[(13, 7), (7, 4), (4, 2), (2, 1), (1, 1)]])
@pytest.mark.parametrize("kernel_size", [4, 8])
def test_upsample_pyramid_matches_torch(shapes, kernel_size):
    gen = torch.Generator().manual_seed(kernel_size)
    s, n = 3, 2
    m = sum(h * w for h, w in shapes)
    latents = torch.randn(s, n, m, generator=gen)
    kernel = initial_upsampling_kernel(kernel_size) + 0.05 * torch.randn(s, kernel_size, kernel_size, generator=gen)
    a = [latents.clone().to(DEVICE).requires_grad_(True), kernel.clone().to(DEVICE).requires_grad_(True)]
    b = [latents.clone().to(DEVICE).requires_grad_(True), kernel.clone().to(DEVICE).requires_grad_(True)]
    out_t = ops.upsample_pyramid(a[0], shapes, a[1], backend="triton")
    out_r = ops.upsample_pyramid(b[0], shapes, b[1], backend="torch")
    assert out_t.shape == out_r.shape == (s, n, len(shapes), *shapes[0])
    assert _close(out_t, out_r, 1e-5)
    upstream = torch.randn(out_r.shape, generator=gen).to(DEVICE)
    (out_t * upstream).sum().backward()
    (out_r * upstream).sum().backward()
    assert _close(a[0].grad, b[0].grad, 1e-4)
    if len(shapes) > 1:  # a single grid is never upsampled, so the kernel gets no gradient
        assert _close(a[1].grad, b[1].grad, 1e-4)


@pytest.mark.parametrize("s,p,c0,d,c2", [(1, 1, 6, 40, 3), (3, 70, 6, 97, 3), (2, 33, 5, 130, 1)])
def test_fused_mlp_matches_torch(s, p, c0, d, c2):
    gen = torch.Generator().manual_seed(p)
    tensors = [torch.randn(s, p, c0, generator=gen), torch.randn(s, c0, d, generator=gen) * 0.3,
               torch.randn(s, d, generator=gen) * 0.3, torch.randn(s, d, c2, generator=gen) * 0.3,
               torch.randn(s, c2, generator=gen)]
    a = [t.clone().to(DEVICE).requires_grad_(True) for t in tensors]
    b = [t.clone().to(DEVICE).requires_grad_(True) for t in tensors]
    got = ops.pointwise_mlp(a[0], a[1::2], a[2::2], [True, False], backend="triton")
    want = ops.pointwise_mlp(b[0], b[1::2], b[2::2], [True, False], backend="torch")
    rel = 1e-4
    assert _close(got, want, rel)
    upstream = torch.randn(s, p, c2, generator=gen).to(DEVICE)
    (got * upstream).sum().backward()
    (want * upstream).sum().backward()
    for x, y in zip(a, b):
        assert _close(x.grad, y.grad, rel)


def test_codec_training_step_triton_equals_torch():
    cfg = CodecConfig(synthesis="v4-40", arm_context=16, arm_depth=2)
    syn_a = SyntheticSet([3, 2], (12, 9), channels=3, config=cfg, slice_size=2, backend="triton").to(DEVICE)
    syn_b = SyntheticSet([3, 2], (12, 9), channels=3, config=cfg, slice_size=2, backend="torch").to(DEVICE)
    syn_b.load_state_dict(syn_a.state_dict())
    noise = syn_a.quantizer.sample_noise(syn_a.stack.latents, torch.Generator(DEVICE).manual_seed(0))
    results = []
    for syn in (syn_a, syn_b):
        images, _, bits = syn.forward_with_rate(noise=noise)
        (images.square().sum() + bits.sum() * 1e-3).backward()
        results.append((images, bits, [p.grad for p in syn.parameters()]))
    rel = 1e-4
    assert _close(results[0][0], results[1][0], rel)
    assert _close(results[0][1], results[1][1], rel)
    for x, y in zip(results[0][2], results[1][2]):
        assert _close(x, y, rel)


def test_custom_ops_have_fake_implementations():
    latents = torch.randn(2, 15, device="meta")
    index = torch.zeros(15, 8, dtype=torch.int32, device="meta")
    out = torch.ops.ddfast.gather_context(latents, index, index)
    assert out.shape == (2, 15, 8) and out.device.type == "meta"
    rate = torch.ops.ddfast.laplace_rate(latents, latents, latents)
    assert rate.shape == latents.shape
    maps = torch.randn(3, 4, 5, 6, device="meta")
    assert torch.ops.ddfast.upsample_level(maps, torch.randn(3, 4, 25, device="meta"), 9, 12).shape == (3, 4, 9, 12)


def test_forced_triton_backend_errors_without_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ddfast.ConfigError, match="CUDA tensors"):
        ops.laplace_rate(torch.zeros(2), torch.zeros(2), torch.zeros(2), backend="triton")


def test_torch_twins_gradcheck_float64():
    gen = torch.Generator().manual_seed(1)
    shapes = [(3, 4), (2, 2), (1, 1)]
    m = sum(h * w for h, w in shapes)
    latents = torch.randn(2, m, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: torch_ops.gather_context(t, shapes, context_offsets(8)), (latents,))
    grid = torch.randn(2, 1, m, generator=gen, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(2, 8, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g, k: torch_ops.upsample_pyramid(g, shapes, k), (grid, kernel))
