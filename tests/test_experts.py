"""Expert buffers: reference file layout, reading foreign buffers, resume after interruption."""
import json

import pytest
import torch

import ddfast.distill.experts as E
from ddfast.distill.networks import get_network
from ddfast.distill.realdata import derive_seed
from ddfast.errors import ConfigError, DatasetError

CONFIG = E.ExpertConfig(model="ConvNetW32", epochs=2, batch_size=8, save_interval=2, seed=3)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(6)
    images = torch.randn(18, 3, 8, 8, generator=g) + labels.view(-1, 1, 1, 1).float()
    return images, labels


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("uninterrupted")
    E.train_experts(*data, out, 3, config=CONFIG, progress=False)
    return out


def _same(a, b):
    return len(a) == len(b) and all(
        len(ta) == len(tb) and all(all(torch.equal(x, y) for x, y in zip(sa, sb)) for sa, sb in zip(ta, tb))
        for ta, tb in zip(a, b)
    )


def test_files_are_in_the_reference_layout(reference_run):
    files = sorted(p.name for p in reference_run.glob("replay_buffer_*.pt"))
    assert files == ["replay_buffer_0.pt", "replay_buffer_1.pt"]
    group = torch.load(reference_run / "replay_buffer_0.pt", weights_only=True)  # plain torch.load, as MTT
    assert isinstance(group, list) and len(group) == 2
    trajectory = group[0]
    assert len(trajectory) == CONFIG.epochs + 1
    net = get_network("ConvNetW32", 3, 3, 8, seed=derive_seed(CONFIG.seed, 0, 0))
    shapes = [p.shape for p in net.parameters()]
    assert all([t.shape for t in snap] == shapes for snap in trajectory)
    assert all(t.device.type == "cpu" and not t.requires_grad for t in trajectory[-1])
    assert all(torch.equal(t, p) for t, p in zip(trajectory[0], net.parameters()))  # snapshot at init
    assert not torch.equal(trajectory[0][0], trajectory[1][0])  # and after each epoch
    assert len(torch.load(reference_run / "replay_buffer_1.pt", weights_only=True)) == 1
    assert (reference_run / E.MANIFEST).exists()


def test_resume_continues_from_the_last_complete_expert(tmp_path, data, reference_run):
    E.train_experts(*data, tmp_path, 1, config=CONFIG, progress=False)
    assert E.completed_experts(tmp_path, CONFIG.save_interval)[0] == 1
    E.train_experts(*data, tmp_path, 3, config=CONFIG, progress=False)
    for name in ("replay_buffer_0.pt", "replay_buffer_1.pt"):
        assert _same(E.load_buffer(tmp_path / name), E.load_buffer(reference_run / name))


def test_interrupted_expert_is_dropped_then_redone(tmp_path, data, reference_run, monkeypatch):
    calls = {"n": 0}
    real_epoch = E.train_epoch

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2 * CONFIG.epochs + 1:  # first epoch of the third expert
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(E, "train_epoch", flaky)
    with pytest.raises(KeyboardInterrupt):
        E.train_experts(*data, tmp_path, 3, config=CONFIG, progress=False)
    assert E.completed_experts(tmp_path, CONFIG.save_interval)[0] == 2
    assert not list(tmp_path.glob(".*tmp"))
    monkeypatch.setattr(E, "train_epoch", real_epoch)
    E.train_experts(*data, tmp_path, 3, config=CONFIG, progress=False)
    for name in ("replay_buffer_0.pt", "replay_buffer_1.pt"):
        assert _same(E.load_buffer(tmp_path / name), E.load_buffer(reference_run / name))


def test_resume_with_other_settings_is_refused(tmp_path, data):
    E.train_experts(*data, tmp_path, 1, config=CONFIG, progress=False)
    with pytest.raises(ConfigError, match="lr"):
        E.train_experts(*data, tmp_path, 2, config=E.ExpertConfig(**{**CONFIG.__dict__, "lr": 0.1}), progress=False)


def _foreign_buffer(directory, files=2, per_file=3, params=((4, 2), (4,))):
    """Buffers written the way mtt-distillation's buffer.py writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    ident = 0
    for f in range(files):
        trajectories = []
        for _ in range(per_file):
            trajectories.append([[torch.full(s, float(ident)) for s in params] for _ in range(4)])
            ident += 1
        torch.save(trajectories, directory / f"replay_buffer_{f}.pt")
    return ident


def test_expert_buffer_serves_every_reference_expert_once_per_pass(tmp_path):
    total = _foreign_buffer(tmp_path)
    buf = E.ExpertBuffer(tmp_path, seed=0)
    first = [int(buf.next()[0][0][0, 0]) for _ in range(total)]
    second = [int(buf.next()[0][0][0, 0]) for _ in range(total)]
    assert sorted(first) == sorted(second) == list(range(total))
    everything = E.ExpertBuffer(tmp_path, load_all=True, max_experts=2, seed=0)
    assert {int(everything.next()[0][0][0, 0]) for _ in range(60)} == {0, 1, 3, 4}
    assert len(E.ExpertBuffer(tmp_path, max_files=1, seed=1).files) == 1


def test_buffer_files_and_layout(tmp_path):
    _foreign_buffer(tmp_path, files=3)
    (tmp_path / "replay_buffer_1.pt").unlink()
    assert [p.name for p in E.buffer_files(tmp_path)] == ["replay_buffer_0.pt"]  # MTT stops at a gap
    assert E.buffer_dir("b", "CIFAR10", "ConvNet").as_posix() == "b/CIFAR10_NO_ZCA/ConvNet"
    assert E.buffer_dir("b", "CIFAR10", "ConvNet", zca=True).as_posix() == "b/CIFAR10/ConvNet"
    assert E.buffer_dir("b", "ImageNet", "ConvNetD5", subset="imagenette").as_posix() == "b/ImageNet/imagenette/128/ConvNetD5"


def test_bad_buffers_raise(tmp_path):
    with pytest.raises(DatasetError):
        E.ExpertBuffer(tmp_path)
    (tmp_path / "replay_buffer_0.pt").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="cannot read"):
        E.load_buffer(tmp_path / "replay_buffer_0.pt")


def test_experts_cli_on_the_bundled_dataset(tmp_path, capsys):
    import argparse

    from ddfast.cli import experts as experts_cli

    parser = argparse.ArgumentParser()
    experts_cli.add_parser(parser.add_subparsers())
    argv = ["experts", "--dataset", "bundled", "--model", "ConvNetW32", "--num-experts", "1", "--epochs", "1",
            "--buffer-path", str(tmp_path), "--device", "cpu", "--no-test", "--quiet"]
    assert experts_cli.run(parser.parse_args(argv)) == 0
    folder = tmp_path / "bundled" / "ConvNetW32"
    trajectories = E.load_buffer(folder / "replay_buffer_0.pt")
    assert len(trajectories) == 1 and len(trajectories[0]) == 2
    assert str(folder) in capsys.readouterr().out


def test_damaged_manifest_raises_a_dataset_error(tmp_path, data):
    (tmp_path / E.MANIFEST).write_text('{"model": "ConvNet"')  # truncated JSON
    with pytest.raises(DatasetError, match="expert manifest .*ddfast_experts.json is damaged"):
        E.train_experts(*data, tmp_path, 1, config=CONFIG, progress=False)
    (tmp_path / E.MANIFEST).write_text("[1, 2]")
    with pytest.raises(DatasetError, match="expected a JSON object"):
        E.train_experts(*data, tmp_path, 1, config=CONFIG, progress=False)


def test_manifest_is_written_with_sorted_keys(tmp_path):
    E._check_manifest(tmp_path, {"b": 1, "a": 2})
    assert (tmp_path / E.MANIFEST).read_text() == json.dumps({"a": 2, "b": 1}, indent=2) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == [E.MANIFEST]  # no temporary file left behind


def test_experts_cli_rejects_a_bad_device_or_buffer_path_before_any_work(tmp_path, capsys, monkeypatch):
    from ddfast.cli import main

    monkeypatch.setattr(E, "train_experts", lambda *a, **k: pytest.fail("training started"))
    (tmp_path / "afile").write_text("x")
    base = ["experts", "--dataset", "bundled", "--num-experts", "1", "--epochs", "1", "--zca", "--quiet"]
    assert main([*base, "--buffer-path", str(tmp_path / "buf"), "--device", "cuda:7"]) == 2
    assert "device 'cuda:7'" in capsys.readouterr().err and not (tmp_path / "buf").exists()  # no ZCA written
    assert main([*base, "--buffer-path", str(tmp_path / "afile"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "ddfast experts: error: --buffer-path" in err and "cannot create the folder" in err
