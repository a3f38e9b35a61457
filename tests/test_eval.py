"""Evaluation protocol: determinism, schedule, learning, result object, CLI."""
import argparse
import json

import pytest
import torch

import ddfast.eval.protocol as P
from ddfast.cli import eval as eval_cli
from ddfast.distill.baselines import PixelSet, images_per_class, pixel_set_bytes
from ddfast.errors import ConfigError
from ddfast.eval import evaluate

ARCH = "ConvNetW32"


def _blobs(n_per_class, seed):
    """Two easy classes: top half bright (0) or bottom half bright (1), plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(n_per_class)
    top = torch.zeros(3, 8, 8)
    top[:, :4] = 1.0
    pattern = torch.stack([top, top.flip(1)])
    images = pattern[labels] + 0.3 * torch.randn(labels.shape[0], 3, 8, 8, generator=g)
    return images, labels


def test_evaluation_is_deterministic_under_a_seed():
    syn, test = _blobs(3, 0), _blobs(10, 1)
    a = evaluate(*syn, test, arch=ARCH, runs=2, epochs=3, seed=4, progress=False)
    b = evaluate(*syn, test, arch=ARCH, runs=2, epochs=3, seed=4, progress=False)
    assert a.accuracies == b.accuracies and a.train_accuracies == b.train_accuracies
    assert len(a.accuracies) == 2 and a.optimizer == "sgd" and a.lr == 0.01


def test_trained_networks_learn_an_easy_task():
    result = evaluate(*_blobs(5, 0), _blobs(20, 1), arch=ARCH, runs=2, epochs=20, lr=0.1, seed=0, progress=False)
    assert result.mean >= 0.9


@pytest.fixture
def optimizers_made(monkeypatch):
    """``(name, lr)`` of every optimizer the protocol creates."""
    made = []
    real = P._make_optimizer

    def record(name, params, lr):
        made.append((name, lr))
        return real(name, params, lr)

    monkeypatch.setattr(P, "_make_optimizer", record)
    return made


def test_schedule_decays_once_and_recreates_the_optimizer(monkeypatch, optimizers_made):
    made = optimizers_made
    epochs_seen = []
    monkeypatch.setattr(P, "train_epoch", lambda *a, **k: (epochs_seen.append(1), (0.0, 1.0))[1])
    monkeypatch.setattr(P, "accuracy", lambda *a, **k: 0.5)
    result = evaluate(*_blobs(2, 0), _blobs(2, 1), arch=ARCH, runs=1, epochs=6, lr=0.03, progress=False)
    assert len(epochs_seen) == 7  # epochs + 1, as evaluate_synset
    assert made == [("sgd", 0.03), ("sgd", pytest.approx(0.003))]
    assert result.accuracies == [0.5]


def test_result_statistics_and_text():
    r = P.EvalResult("ConvNet", [0.8, 0.9], [1.0, 1.0], 1000, 0.01, "sgd")
    assert r.mean == pytest.approx(0.85) and r.std == pytest.approx(0.05)  # population std
    assert "85.00 ± 5.00 %" in str(r)


def test_optimizer_defaults_follow_the_spec():
    assert P.default_optimizer("ConvNet") == ("sgd", 0.01)
    assert P.default_optimizer("ConvNetD5") == ("sgd", 0.01)
    assert P.default_optimizer("ResNet18") == ("adam", 0.02)
    assert P.default_optimizer("VGG11") == ("adam", 0.02)
    assert P.default_optimizer("ViT") == ("adam", 0.015)


def test_bad_inputs_raise():
    syn = _blobs(2, 0)
    with pytest.raises(ConfigError, match="test images"):
        evaluate(*syn, (torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)), arch=ARCH, progress=False)
    with pytest.raises(ConfigError):
        evaluate(*syn, _blobs(2, 1), arch=ARCH, runs=0, progress=False)


def test_nonsense_sets_are_refused_before_training(monkeypatch):
    import ddfast.eval.protocol as protocol

    monkeypatch.setattr(protocol, "train_and_test", lambda *a, **k: pytest.fail("training started"))
    syn, test = _blobs(2, 0), _blobs(2, 1)
    with pytest.raises(ConfigError, match=r"synthetic labels 50, 51 are not classes of the test set \(its labels: 0\.\.1"):
        evaluate(syn[0], syn[1] + 50, test, arch=ARCH, progress=False)
    for which in (0, 1):
        images = [syn[0].clone(), test[0].clone()]
        images[which][0, 0, 0, 0] = float("nan")
        images[which][1, 0, 0, 0] = float("inf")
        what = ("synthetic", "test")[which]
        with pytest.raises(ConfigError, match=f"the {what} images hold 2 NaN or infinite value"):
            evaluate(images[0], syn[1], (images[1], test[1]), arch=ARCH, progress=False)


def test_eval_cli_checks_device_and_json_path_before_training(tmp_path, capsys, monkeypatch):
    from ddfast.cli import main
    from ddfast.cli import eval as eval_module

    monkeypatch.setattr(eval_module, "evaluate", lambda *a, **k: pytest.fail("training started"))
    PixelSet(*_blobs(2, 0)).save(tmp_path / "syn.pt")
    PixelSet(*_blobs(2, 1)).save(tmp_path / "test.pt")
    (tmp_path / "afile").write_text("x")
    base = ["eval", str(tmp_path / "syn.pt"), "--test-set", str(tmp_path / "test.pt"), "--quiet"]
    for extra, message in ((["--device", "cuda:7"], "device 'cuda:7'"),
                           (["--json", str(tmp_path / "afile" / "r.json")], "is not a folder"),
                           (["--json", str(tmp_path / "nodir" / "r.json")], "does not exist"),
                           (["--json", str(tmp_path)], "is a folder"),
                           (["--json", str(tmp_path / "syn.pt")], "are the same file")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ddfast eval: error:") and message in err, err
    assert not (tmp_path / "nodir").exists()


def test_byte_budget_helpers():
    assert pixel_set_bytes(10, 3, 32, 32) == 10 * 3 * 32 * 32 * 4
    assert images_per_class(12_288 * 10 + 5, 3, 32, 32) == 10
    with pytest.raises(ConfigError):
        images_per_class(100, 3, 32, 32)


def test_eval_cli_reads_a_synthetic_set(tmp_path, capsys):
    PixelSet(*_blobs(2, 0), syn_lr=0.02).save(tmp_path / "syn.pt")
    test = _blobs(5, 1)
    PixelSet(*test).save(tmp_path / "test.pt")
    parser = argparse.ArgumentParser()
    eval_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", str(tmp_path / "syn.pt"), "--test-set", str(tmp_path / "test.pt"),
                              "--arch", ARCH, "--runs", "1", "--epochs", "1", "--device", "cpu",
                              "--json", str(tmp_path / "r.json"), "--quiet"])
    assert eval_cli.run(args) == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["lr"] == 0.02 and len(record["accuracies"]) == 1  # syn_lr from the file
    assert "ConvNetW32" in capsys.readouterr().out
    with pytest.raises(ConfigError):
        PixelSet.load(tmp_path / "missing.pt")


def test_eval_cli_with_a_dataset(tmp_path, capsys):
    from ddfast.data import load

    train = load("bundled")
    small = train.take_per_class(1, torch.Generator().manual_seed(0))
    PixelSet(small.normalize(small.to_float()), small.labels).save(tmp_path / "syn.pt")
    parser = argparse.ArgumentParser()
    eval_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", str(tmp_path / "syn.pt"), "--dataset", "bundled", "--arch", ARCH,
                              "--runs", "1", "--epochs", "0", "--device", "cpu", "--quiet"])
    assert eval_cli.run(args) == 0
    assert "1 runs" in capsys.readouterr().out


def test_syn_lr_is_an_sgd_step_size_only():
    # DD-RUO: Adam at 0.02 (ViT 0.015) for the cross-architecture nets; MTT: SGD at syn_lr.
    assert P.resolve_optimizer("AlexNet", syn_lr=0.005) == ("adam", 0.02)
    assert P.resolve_optimizer("ViT", syn_lr=0.005) == ("adam", 0.015)
    assert P.resolve_optimizer("ResNet18", "sgd", syn_lr=0.005) == ("sgd", 0.005)
    assert P.resolve_optimizer("ConvNet", syn_lr=0.005) == ("sgd", 0.005)
    assert P.resolve_optimizer("VGG11", lr=0.1, syn_lr=0.005) == ("adam", 0.1)  # an explicit lr always wins
    assert P.resolve_optimizer("ConvNet") == ("sgd", 0.01)
    with pytest.raises(ConfigError, match="positive"):
        P.resolve_optimizer("ConvNet", lr=0.0)
    with pytest.raises(ConfigError, match="optimizer"):
        P.resolve_optimizer("ConvNet", "rmsprop")


def _cli_args(tmp_path, *extra):
    parser = argparse.ArgumentParser()
    eval_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["eval", str(tmp_path / "syn.pt"), "--test-set", str(tmp_path / "test.pt"),
                              "--runs", "1", "--epochs", "0", "--device", "cpu", "--json", str(tmp_path / "r.json"),
                              "--quiet", *extra])


@pytest.mark.parametrize("extra, expected", [
    ((), ("adam", 0.02)),
    (("--optimizer", "sgd"), ("sgd", 0.005)),
    (("--lr", "0.1"), ("adam", 0.1)),
])
def test_eval_cli_pairs_syn_lr_with_sgd_only(tmp_path, optimizers_made, extra, expected):
    PixelSet(*_blobs(2, 0), syn_lr=0.005).save(tmp_path / "syn.pt")
    PixelSet(*_blobs(2, 1)).save(tmp_path / "test.pt")
    assert eval_cli.run(_cli_args(tmp_path, "--arch", "AlexNet", *extra)) == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert (record["optimizer"], record["lr"]) == expected and optimizers_made[0] == expected


def test_labels_must_fit_num_classes():
    syn, test = _blobs(2, 0), _blobs(2, 1)
    with pytest.raises(ConfigError, match="num_classes=1 is too small: the labels go up to 1"):
        evaluate(*syn, test, arch=ARCH, runs=1, epochs=0, num_classes=1, progress=False)
    bad = (test[0], test[1] - 1)
    with pytest.raises(ConfigError, match="non-negative"):
        evaluate(*syn, bad, arch=ARCH, runs=1, epochs=0, progress=False)
    with pytest.raises(ConfigError, match="empty"):
        evaluate(syn[0][:0], syn[1][:0], test, arch=ARCH, runs=1, epochs=0, progress=False)


@pytest.mark.parametrize("bad, message", [
    ({"images": [[0.0]], "labels": torch.zeros(1, dtype=torch.long)}, "'images' is a list, not a tensor"),
    ({"images": torch.zeros(1, 3, 2, 2), "labels": [0]}, "'labels' is a list, not a tensor"),
    ({"images": torch.zeros(1, 3, 2, 2), "labels": torch.zeros(2, dtype=torch.long)}, "labels must be"),
    ({"images": torch.zeros(1, 3, 2, 2), "labels": torch.zeros(1, dtype=torch.long), "syn_lr": "fast"},
     "syn_lr 'fast' is not a number"),
    ({"images": torch.zeros(1, 3, 2, 2), "labels": torch.zeros(1, dtype=torch.long), "meta": [1]},
     "'meta' is a list"),
])
def test_malformed_synthetic_set_files_raise_config_errors(tmp_path, bad, message):
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=message) as err:
        PixelSet.load(tmp_path / "bad.pt")
    assert "bad.pt" in str(err.value)


def _failing_torch_save(obj, f, *args, **kwargs):
    """A ``torch.save`` that dies half-way, after writing some bytes."""
    if hasattr(f, "write"):
        f.write(b"partial")
    else:
        with open(f, "wb") as handle:
            handle.write(b"partial")
    raise OSError("disk full")


@pytest.mark.parametrize("writer", ["pixel_set", "zca", "expert_buffer"])
def test_torch_file_writers_are_atomic(tmp_path, monkeypatch, writer):
    from ddfast.distill.experts import save_buffer
    from ddfast.distill.zca import ZCA

    zca = ZCA().fit(torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(0)))
    write = {
        "pixel_set": lambda path: PixelSet(*_blobs(1, 0)).save(path),
        "zca": zca.save,
        "expert_buffer": lambda path: save_buffer(path, [[[torch.zeros(2)], [torch.ones(2)]]]),
    }[writer]
    write(tmp_path / "out.pt")
    before = (tmp_path / "out.pt").read_bytes()
    monkeypatch.setattr(torch, "save", _failing_torch_save)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path / "out.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]  # no temporary file left behind
    assert (tmp_path / "out.pt").read_bytes() == before
