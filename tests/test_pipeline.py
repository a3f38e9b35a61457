"""DD-RUO end to end (ddfast.distill / ddfast distill): the run folder, budgets, resuming, presets."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import ddfast
from ddfast.cli import main
from ddfast.codec import SyntheticSet
from ddfast.distill.presets import PRESETS, get_preset, load_overrides
from ddfast.errors import ConfigError

TINY = "bundled-dm-tiny"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    summary = ddfast.distill(TINY, out, device="cpu", progress=False)
    return out, summary


def test_a_run_writes_its_folder_and_honours_the_budget(tiny_run):
    out, summary = tiny_run
    for name in ("config.json", "log.jsonl", "checkpoint.pt", "init.pt", "distilled.pt", "distilled.ddf",
                 "summary.json"):
        assert (out / name).is_file(), name
    data = (out / "distilled.ddf").read_bytes()
    preset = get_preset(TINY)
    assert summary.budget_met and len(data) <= preset.budget_kb * 1000 * 10
    assert summary.file_bytes == len(data) and summary.bytes_per_class == len(data) / 10
    assert sum(summary.bytes.values()) == len(data)
    assert json.loads((out / "summary.json").read_text())["file_bytes"] == len(data)
    # The finest threshold among the files that fit, and every candidate is recorded.
    fitting = [c for c in summary.candidates if c["bytes_per_class"] <= preset.budget_kb * 1000]
    assert summary.mse_threshold == min(c["mse_threshold"] for c in fitting)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    joint = [r for r in log if r["phase"] == "joint"]
    assert [r["iteration"] for r in joint] == list(range(1, 7)) and [r["stage"] for r in joint] == [0] * 3 + [1] * 3
    assert [r["phase"] for r in log if r["phase"] != "joint"] == ["init", "file", "eval"]
    assert 0 <= summary.accuracy_mean <= 1 and len(summary.accuracies) == preset.eval_runs
    # The file decodes to the trained set's eval-mode images (up to post-quantization).
    images, labels = ddfast.decompress(data)
    trained = SyntheticSet.load(out / "distilled.pt").eval()
    with torch.no_grad():
        expected, _ = trained()
    assert labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert ((images - expected) ** 2).mean() < summary.mse_threshold * 4


def test_a_missed_budget_says_by_how_much_and_which_knob(tmp_path, capsys):
    code = main(["distill", "--preset", TINY, "--out", str(tmp_path / "run"), "--budget-kb", "0.2", "--no-eval",
                 "--device", "cpu", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "budget missed" in out and "over the budget of 0.2 kB" in out and "decoder version" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert not summary["budget_met"] and summary["mse_threshold"] == 5e-5  # the smallest file is kept


def _command(out, *extra):
    return [sys.executable, "-m", "ddfast", "distill", "--preset", TINY, "--out", str(out), "--device", "cpu",
            "--quiet", "--no-eval", "--set", "stages=[[12, 20], [12, 2]]", "--set", "checkpoint_every=4", *extra]


def _iterations_logged(out) -> int:
    try:
        lines = (out / "log.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    joint = [json.loads(line) for line in lines if '"joint"' in line]
    return joint[-1]["iteration"] if joint else 0


def test_resuming_a_killed_run_gives_the_same_file(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    straight = tmp_path / "straight"
    subprocess.run(_command(straight), check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _iterations_logged(killed) < 14 and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = _iterations_logged(killed)
    assert 14 <= done < 24, f"the run was not killed in its joint phase (iteration {done})"
    resumed = subprocess.run(_command(killed, "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert (killed / "distilled.ddf").read_bytes() == (straight / "distilled.ddf").read_bytes()
    a, b = torch.load(straight / "distilled.pt"), torch.load(killed / "distilled.pt")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_every_preset_is_valid_and_overrides_name_bad_fields(tmp_path):
    for name, preset in PRESETS.items():
        assert preset.name == name and preset.joint_weights().iterations == sum(s[0] for s in preset.stages)
    cifar = get_preset("cifar10-tm-spc64")
    assert (cifar.syn_steps, cifar.expert_epochs, cifar.max_start_epoch, cifar.batch_syn) == (60, 2, 10, 256)
    assert cifar.zca and cifar.joint_weights().stages[0].ldb_it == pytest.approx(500.0)  # lambda 20 = 10000 / 500
    dm = get_preset("imagenet-dm-spc96")
    assert [round(s.ldb_it, 1) for s in dm.joint_weights().stages] == [10.0, 298.5]
    (tmp_path / "a.json").write_text(json.dumps({"spc": 3, "stages": [[5, 10], [5, 1]], "dsa": False}))
    (tmp_path / "b.toml").write_text('spc = 4\nstages = [[2, 3.5]]\n')
    changed = get_preset(TINY).with_overrides(load_overrides(tmp_path / "a.json"))
    assert changed.spc == 3 and changed.stages == ((5, 10), (5, 1)) and not changed.dsa
    assert get_preset(TINY).with_overrides(load_overrides(tmp_path / "b.toml")).stages == ((2, 3.5),)
    for overrides, field in (({"lr": -1}, "lr"), ({"method": "xm"}, "method"), ({"stages": [[5, 0]]}, "lambda"),
                             ({"budget_kb": 0}, "budget_kb"), ({"synthesis": "v9"}, "synthesis")):
        with pytest.raises(ConfigError, match=field):
            get_preset(TINY).with_overrides(overrides)
    with pytest.raises(ConfigError, match=r"unknown preset field\(s\) \['iterations'\]"):
        get_preset(TINY).with_overrides({"iterations": 5})
    (tmp_path / "bad.json").write_text("{spc: 3}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_overrides(tmp_path / "bad.json")


def test_presets_command_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)
    assert main(["presets", "--show", TINY]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == TINY


def test_bad_runs_fail_before_any_work(tmp_path, capsys, monkeypatch):
    import ddfast.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_load_data", lambda *a: pytest.fail("work started"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    cases = [(["--out", str(tmp_path / "busy")], "not empty"), (["--out", str(tmp_path / "file")], "is a file"),
             (["--out", str(tmp_path / "new"), "--resume"], "nothing to resume"),
             (["--out", str(tmp_path / "new"), "--device", "cuda:7"], "device"),
             (["--out", str(tmp_path / "new"), "--set", "spc"], "FIELD=VALUE"),
             (["--out", "/proc"], "not writable")]  # os.access says yes to root; creating a file does not
    for args, message in cases:
        assert main(["distill", "--preset", TINY, *args]) == 2
        assert message in capsys.readouterr().err


def test_checkpoints_at_the_interval_at_the_stage_switch_and_at_the_end(tmp_path, monkeypatch):
    import ddfast.pipeline as pipeline

    saved = []
    original = pipeline._save_checkpoint

    def spy(out, phase, trainer, seconds):
        saved.append((phase, trainer.iteration if trainer is not None else None))
        original(out, phase, trainer, seconds)

    monkeypatch.setattr(pipeline, "_save_checkpoint", spy)
    ddfast.distill(TINY, tmp_path / "run", overrides={"stages": [[3, 20], [4, 2]], "checkpoint_every": 4},
                   device="cpu", evaluate_file=False, progress=False)
    assert saved == [("joint", None), ("joint", 3), ("joint", 4), ("joint", 7), ("done", 7)]


@pytest.mark.parametrize("overrides", [
    {"method": "gm", "gm_loops": [2, 1], "stages": [[2, 0.1], [1, 0.01]]},
    {"method": "tm", "experts": 1, "expert_train_epochs": 2, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1,
     "batch_syn": 4, "stages": [[2, 100.0], [1, 10.0]], "budget_kb": 5.0},
], ids=["gm", "tm"])
def test_gm_and_tm_runs_write_a_file(tmp_path, overrides):
    summary = ddfast.distill(TINY, tmp_path / "run", overrides=overrides, device="cpu", evaluate_file=False,
                             progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log if r["phase"] == "joint"] == [0, 0, 1]
    assert summary.method == overrides["method"] and summary.budget_met
    images, labels = ddfast.decompress((tmp_path / "run" / "distilled.ddf").read_bytes())
    assert images.shape == (20, 1, 28, 28) and torch.isfinite(images).all()
    if overrides["method"] == "tm":  # experts trained on demand, the learned lr travels in the file
        assert (tmp_path / "run" / "experts" / "replay_buffer_0.pt").is_file()
        assert ddfast.inspect((tmp_path / "run" / "distilled.ddf").read_bytes()).syn_lr > 0
