"""ZCA: kornia's formula, whitening on the regularized scale, exact inverse, persistence."""
import pytest
import torch

from ddfast.distill.zca import ZCA
from ddfast.errors import ConfigError, DatasetError


def _correlated(n=600, shape=(2, 3, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    d = shape[0] * shape[1] * shape[2]
    mix = torch.randn(d, d, generator=g) * torch.logspace(0, -2, d)  # very unequal variances
    x = torch.randn(n, d, generator=g) @ mix.T + torch.rand(d, generator=g)
    return x.view(n, *shape)


def _cov(x):
    return torch.cov(x.reshape(x.shape[0], -1).double().T)


def test_matches_kornia_formula():
    x = _correlated()
    zca = ZCA(eps=0.1).fit(x)
    cov = _cov(x)
    u, s, _ = torch.linalg.svd(cov)
    t = u @ torch.diag((s + 0.1).rsqrt()) @ u.T
    assert torch.allclose(zca.transform_matrix.double(), t, atol=1e-5)
    flat = x.reshape(x.shape[0], -1).double()
    expected = (flat - flat.mean(0)) @ t
    assert torch.allclose(zca(x).reshape(x.shape[0], -1).double(), expected, atol=1e-4)


def test_whitened_covariance_is_identity_on_the_regularized_scale():
    # Cov(x_w) = T Σ T = U diag(S / (S + eps)) Uᵀ
    x = _correlated()
    zca = ZCA(eps=0.1).fit(x)
    s, u = torch.linalg.eigh(_cov(x))
    expected = u @ torch.diag(s / (s + 0.1)) @ u.T
    assert torch.allclose(_cov(zca(x)), expected, atol=1e-4)
    tiny = ZCA(eps=1e-9).fit(x * 100)
    assert torch.allclose(_cov(tiny(x * 100)), torch.eye(18, dtype=torch.float64), atol=1e-3)


def test_inverse_is_exact():
    x = _correlated()
    zca = ZCA().fit(x)
    assert torch.allclose(zca.inverse(zca(x)), x, atol=1e-4)


def test_uint8_input_is_read_as_pixels():
    x = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a, b = ZCA().fit(x), ZCA().fit(x.float() / 255)
    assert torch.allclose(a(x), b(x.float() / 255), atol=1e-5)


def test_chunked_fit_equals_single_pass():
    x = _correlated(n=300)
    assert torch.allclose(ZCA().fit(x, chunk_size=7).transform_matrix, ZCA().fit(x).transform_matrix, atol=1e-5)


def test_state_dict_and_file_roundtrip(tmp_path):
    x = _correlated(n=100)
    zca = ZCA(eps=0.2).fit(x)
    clone = ZCA().load_state_dict(zca.state_dict())
    assert clone.eps == 0.2 and torch.equal(clone(x), zca(x))
    zca.save(tmp_path / "zca.pt")
    loaded = ZCA.load(tmp_path / "zca.pt")
    assert torch.equal(loaded(x), zca(x)) and torch.equal(loaded.inverse(x), zca.inverse(x))


def test_errors():
    with pytest.raises(ConfigError, match="not fitted"):
        ZCA()(torch.zeros(2, 1, 2, 2))
    zca = ZCA().fit(_correlated(n=20))
    with pytest.raises(ConfigError, match="shaped"):
        zca(torch.zeros(2, 1, 2, 2))
    with pytest.raises(ConfigError):
        ZCA(eps=0)


def test_load_wraps_missing_and_damaged_files(tmp_path):
    with pytest.raises(DatasetError, match="ZCA file .*missing.pt does not exist"):
        ZCA.load(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="cannot read ZCA file .*garbage.pt"):
        ZCA.load(tmp_path / "garbage.pt")
    torch.save({"eps": 0.1}, tmp_path / "partial.pt")
    with pytest.raises(DatasetError, match="partial.pt is not a ZCA file"):
        ZCA.load(tmp_path / "partial.pt")
    state = ZCA().fit(_correlated(n=20)).state_dict()
    state["shape"] = [2, 3, 4]
    with pytest.raises(ConfigError, match="do not match the image shape"):
        ZCA().load_state_dict(state)

