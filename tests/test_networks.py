"""Networks: reference parameter counts, parameter order (flat expert vectors), builders."""
import pytest
import torch
import torch.nn as nn

from ddfast.distill.networks import NETWORK_NAMES, batchnorm_layers, default_convnet, get_network, has_batchnorm
from ddfast.distill.vit import ViT
from ddfast.distill.params import FlatModel, flatten_params
from ddfast.errors import ConfigError


def _count(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "name,channels,classes,size,expected",
    [("ConvNet", 3, 10, 32, 320_010), ("ConvNet", 3, 100, 32, 504_420), ("ConvNetD5", 3, 10, 128, 615_690)],
)
def test_reference_parameter_counts(name, channels, classes, size, expected):
    assert _count(get_network(name, channels, classes, size)) == expected


def test_convnet_parameter_order_is_the_references():
    net = get_network("ConvNet", 3, 10, 32, seed=0)
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
        "features.4.weight", "features.4.bias", "features.5.weight", "features.5.bias",
        "features.8.weight", "features.8.bias", "features.9.weight", "features.9.bias",
        "classifier.weight", "classifier.bias",
    ]
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes[:4] == [(128, 3, 3, 3), (128,), (128,), (128,)] and shapes[-2:] == [(10, 2048), (10,)]
    norm = net.features[1]
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == 128 and norm.affine


def test_flat_vector_and_functional_call():
    net = get_network("ConvNetW32", 3, 4, 16, seed=0)
    model = FlatModel(net)
    flat = flatten_params(net.parameters())
    state = net.state_dict()
    assert torch.equal(flat, torch.cat([state[n].reshape(-1) for n in model.names]))
    views = model.unflatten(flat)
    assert all(torch.equal(views[n], p) for n, p in net.named_parameters())
    x = torch.randn(3, 3, 16, 16)
    assert torch.allclose(model(flat, x), net(x), atol=1e-6)
    shifted = model(flat + 0.1, x)
    assert not torch.allclose(shifted, net(x))
    with pytest.raises(ConfigError):
        model.unflatten(flat[:-1])


def test_resnet_parameter_order():
    names = [n for n, _ in get_network("ResNet18", 3, 10, 32).named_parameters()]
    assert names[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight",
                         "layer1.0.bn1.weight", "layer1.0.bn1.bias"]
    assert "layer2.0.shortcut.0.weight" in names and names[-2:] == ["classifier.weight", "classifier.bias"]
    ap = [n for n, _ in get_network("ResNet18_AP", 3, 10, 32).named_parameters()]
    assert "layer2.0.shortcut.2.weight" in ap  # conv, avgpool, norm


def test_one_channel_28px_behaves_as_32px():
    net = get_network("ConvNet", 1, 10, 28)
    assert net.features[0].padding == (3, 3)
    assert net.embed(torch.randn(2, 1, 28, 28)).shape == (2, 2048)
    assert get_network("AlexNet", 1, 10, 28).fc.in_features == 192 * 16
    assert get_network("ResNet18_AP", 1, 10, 28).classifier.in_features == 512 * 9


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_every_network_builds_and_classifies(name):
    size = {"ConvNetNP": 16, "ResNet18ImageNet": 64}.get(name, 32)
    try:
        net = get_network(name, 3, 7, size, seed=1)
    except ConfigError as err:  # only too-deep ConvNets may refuse 32 px
        assert name in ("ConvNetD6", "ConvNetD7", "ConvNetD8") and "too small" in str(err)
        size = 2 ** int(name[-1])
        net = get_network(name, 3, 7, size, seed=1)
    net.eval()
    x = torch.randn(1, 3, size, size)
    out = net(x)
    assert out.shape == (1, 7)
    assert torch.allclose(net.head(net.embed(x)), out, atol=1e-5)


def test_cross_architecture_nets_accept_other_sizes():
    for name in ("AlexNet", "VGG11", "ResNet18", "ResNet18_AP", "ResNet18ImageNet"):
        assert get_network(name, 3, 10, 64)(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert get_network("ResNet18", 3, 10, 128).classifier.in_features == 512 * 16


def test_vit_has_dd_ruo_dimensions():
    vit = get_network("ViT", 3, 10, 128)
    assert vit.patch == 16 and vit.pos_embedding.shape == (1, 65, 512) and len(vit.layers) == 10
    attn = vit.layers[0][0]
    assert attn.heads == 8 and attn.to_out[1].p == 0.01 and vit.emb_dropout.p == 0.01
    assert vit.layers[0][1].net[1].out_features == 512
    # Smaller images keep about DD-RUO's 8 x 8 token grid: 4-pixel patches at 32 and 28 px.
    assert get_network("ViT", 3, 10, 32).pos_embedding.shape == (1, 65, 512)
    assert get_network("ViT", 1, 10, 28).pos_embedding.shape == (1, 50, 512)
    with pytest.raises(ConfigError, match="divisible"):
        ViT(1, 10, (28, 28), patch=16)


def test_seed_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = get_network("ConvNet", 3, 10, 32, seed=5)
    after = torch.rand(1)
    b = get_network("ConvNet", 3, 10, 32, seed=5)
    c = get_network("ConvNet", 3, 10, 32, seed=6)
    assert torch.equal(before, after)
    assert torch.equal(flatten_params(a.parameters()), flatten_params(b.parameters()))
    assert not torch.equal(flatten_params(a.parameters()), flatten_params(c.parameters()))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="ConvNetD5.*ViT"):
        get_network("ConvNet9", 3, 10, 32)
    with pytest.raises(ConfigError):
        get_network("ConvNet", 3, 10, (32, 32, 3))


def test_default_convnet_by_resolution():
    assert [default_convnet(s) for s in (28, 32, 64, 128)] == ["ConvNet", "ConvNet", "ConvNetD4", "ConvNetD5"]


def test_vit_accepts_non_contiguous_images():
    """Regression guard for the patch split (``reshape``, so any layout is accepted)."""
    torch.manual_seed(0)
    vit = ViT(3, 4, (16, 16), patch=8, dim=16, depth=1, heads=2, mlp_dim=16, dim_head=8, dropout=0.0, emb_dropout=0.0)
    channels_last = torch.randn(2, 16, 16, 3).permute(0, 3, 1, 2)  # [B, C, H, W] view, not contiguous
    assert not channels_last.is_contiguous()
    assert torch.allclose(vit(channels_last), vit(channels_last.contiguous()))


def test_batchnorm_detection_and_input_shape():
    assert has_batchnorm(get_network("ConvNetBN", 3, 10, 32))
    assert len(batchnorm_layers(get_network("ResNet18BN", 3, 10, 32))) == 20
    assert not has_batchnorm(get_network("ConvNet", 3, 10, 32)) and batchnorm_layers(get_network("MLP", 1, 2, 8)) == []
    assert get_network("ConvNet", 1, 10, (28, 30)).input_shape == (1, 28, 30)
