"""Cross-architecture evaluation: the networks of DD-RUO's Table A5, and ddfast eval FILE.ddf --arch A,B,C."""
import json

import pytest
import torch

import ddfast
from ddfast.cli import eval as eval_cli
from ddfast.cli import main
from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.distill.baselines import PixelSet
from ddfast.distill.networks import get_network, vit_patch
from ddfast.errors import ConfigError
from ddfast.eval import EvalResult
from ddfast.report import CrossArchReport, check_architectures, parse_architectures

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]

# Parameter counts, checked against the layer arithmetic (10 classes):
#   AlexNet: 5x5 convs C->128->192, 3x3 convs 192->256->192->192, linear 192*4*4 -> 10
#   VGG11: 3x3 convs 64, 128, 256, 256, 512 x 4, each with a 2-parameter-per-channel GroupNorm, linear 512 -> 10
#   ResNet18: 3x3 stem (no bias) + 8 basic blocks, 3 projection shortcuts, GroupNorm affine, linear 512 -> 10
#   ViT: 4-pixel patches (7x7 tokens at 28 px, 8x8 at 32 px), dim 512, 10 layers, MLP 512, class token
PARAMETERS = {
    ("AlexNet", 1, 28): 1_865_802, ("AlexNet", 3, 32): 1_872_202,
    ("VGG11", 1, 28): 9_229_962, ("VGG11", 3, 32): 9_231_114,
    ("ResNet18", 1, 28): 11_172_810, ("ResNet18", 3, 32): 11_173_962,
    ("ViT", 1, 28): 15_805_450, ("ViT", 3, 32): 15_829_514,
}


@pytest.mark.parametrize("name, channels, size", sorted(PARAMETERS))
def test_cross_architecture_networks_count_and_shape(name, channels, size):
    with torch.device("meta"):  # shapes only: no weights allocated or initialized
        net = get_network(name, channels, 10, size).eval()
        out = net(torch.empty(2, channels, size, size))
    assert sum(p.numel() for p in net.parameters()) == PARAMETERS[name, channels, size]
    assert out.shape == (2, 10)


def test_vit_patch_keeps_dd_ruo_token_grid():
    assert [vit_patch((s, s)) for s in (128, 64, 32, 28, 12)] == [16, 8, 4, 4, 2]
    assert vit_patch((30, 20)) == 2  # 15 x 10 tokens: nearer 64 (log scale) than 6 x 4 with 5-pixel patches


def test_architecture_lists_are_checked():
    assert parse_architectures("ConvNet, AlexNet,ViT") == ["ConvNet", "AlexNet", "ViT"]
    with pytest.raises(ConfigError, match="unknown network 'VGG12'"):
        parse_architectures("ConvNet,VGG12")
    with pytest.raises(ConfigError, match="lists a network twice"):
        parse_architectures("ViT,ViT")
    with pytest.raises(ConfigError, match="comma-separated"):
        parse_architectures("ConvNet,")
    check_architectures(["ConvNet", "AlexNet", "ViT"], 3, (12, 12))
    with pytest.raises(ConfigError, match="VGG11 cannot classify 12x12x3 images: image size"):
        check_architectures(["ConvNet", "VGG11"], 3, (12, 12))


def test_markdown_table_and_json_record():
    results = [EvalResult("ConvNet", [0.5, 0.6], [1.0, 1.0], 300, 0.01, "sgd"),
               EvalResult("ViT", [0.25, 0.25], [1.0, 1.0], 300, 0.015, "adam")]
    report = CrossArchReport("set.ddf", "cifar10", results, dsa=True, seed=3)
    assert report.markdown().splitlines()[2:] == [
        "| Classifier | Accuracy (%) | Optimizer | lr | Runs × epochs |",
        "|---|---|---|---|---|",
        "| ConvNet | 55.0 ± 5.0 | SGD | 0.01 | 2 × 300 |",
        "| ViT | 25.0 ± 0.0 | Adam | 0.015 | 2 × 300 |",
    ]
    record = report.to_dict()
    assert record["synthetic"] == "set.ddf" and record["test"] == "cifar10" and record["seed"] == 3
    assert record["results"][1] == {"arch": "ViT", "mean": 0.25, "std": 0.0, "accuracies": [0.25, 0.25],
                                    "epochs": 300, "runs": 2, "optimizer": "adam", "lr": 0.015}


@pytest.fixture(scope="module")
def ddf_file(tmp_path_factory):
    """A 2-class file of 32 x 32 RGB images that carries a mean/std, and a test set in that space."""
    folder = tmp_path_factory.mktemp("crossarch")
    syn = SyntheticSet([2, 2], (32, 32), channels=3, config=CodecConfig(synthesis="v4-40", arm_context=8, arm_depth=1),
                       generator=torch.Generator().manual_seed(0))
    syn.metadata.update(normalization=[MEAN, STD])
    (folder / "set.ddf").write_bytes(ddfast.compress(syn))
    gen = torch.Generator().manual_seed(1)
    PixelSet(torch.randn(6, 3, 32, 32, generator=gen), torch.tensor([0, 1] * 3)).save(folder / "test.pt")
    return folder


def test_eval_of_a_ddf_file_trains_on_its_normalized_images(ddf_file, monkeypatch, capsys):
    seen = {}

    def fake_evaluate(images, labels, test, **options):
        seen.update(images=images, labels=labels, options=options)
        return EvalResult(options["arch"], [0.5], [1.0], options["epochs"], 0.01, "sgd")

    monkeypatch.setattr(eval_cli, "evaluate", fake_evaluate)
    assert main(["eval", str(ddf_file / "set.ddf"), "--test-set", str(ddf_file / "test.pt"), "--device", "cpu",
                 "--runs", "1", "--epochs", "0", "--quiet"]) == 0
    pixels, labels = ddfast.decompress((ddf_file / "set.ddf").read_bytes())
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(seen["images"], (pixels - mean) / std) and torch.equal(seen["labels"], labels)
    assert seen["options"]["arch"] == "ConvNet" and seen["options"]["syn_lr"] is None
    assert "ConvNet: 50.00" in capsys.readouterr().out


def test_cross_architecture_table_end_to_end(ddf_file, tmp_path, capsys):
    table = tmp_path / "table.md"
    assert main(["eval", str(ddf_file / "set.ddf"), "--test-set", str(ddf_file / "test.pt"),
                 "--arch", "ConvNet,AlexNet", "--runs", "1", "--epochs", "2", "--device", "cpu",
                 "--markdown", str(table), "--quiet"]) == 0
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "table.json").read_text())
    assert [(r["arch"], r["optimizer"], r["lr"], r["runs"], r["epochs"]) for r in record["results"]] == [
        ("ConvNet", "sgd", 0.01, 1, 2), ("AlexNet", "adam", 0.02, 1, 2)]
    assert record["synthetic"] == "set.ddf" and record["test"] == "test.pt"
    lines = table.read_text().splitlines()
    assert lines[0].startswith("Test accuracy (%) on test.pt of fresh networks trained on set.ddf")
    for line, result in zip(lines[4:], record["results"]):
        correct = 6 * result["accuracies"][0]  # of 6 test images
        assert abs(correct - round(correct)) < 1e-9
        assert line.startswith(f"| {result['arch']} | {100 * result['accuracies'][0]:.1f} ± 0.0 |")
    assert "| AlexNet |" in printed and f"wrote {table} and {tmp_path / 'table.json'}" in printed


def test_eval_checks_architectures_and_outputs_before_training(ddf_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(eval_cli, "evaluate", lambda *a, **k: pytest.fail("training started"))
    base = ["eval", str(ddf_file / "set.ddf"), "--test-set", str(ddf_file / "test.pt"), "--device", "cpu"]
    for extra, message in ((["--arch", "ConvNet,Nope"], "unknown network 'Nope'"),
                           (["--arch", "ConvNetD6"], "ConvNetD6 cannot classify 32x32x3 images"),
                           (["--markdown", str(tmp_path / "nodir" / "t.md")], "does not exist"),
                           (["--markdown", str(tmp_path / "t.json")], "give a name whose JSON can lie beside it"),
                           (["--markdown", str(tmp_path / "t.md"), "--json", str(tmp_path / "t.json")],
                            "are the same file")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ddfast eval: error:") and message in err, err
    assert not list(tmp_path.iterdir())
