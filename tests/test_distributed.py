"""Distillation over several processes: a 2-process gloo run (torchrun) equals the 1-process run."""
import json
import os
import subprocess
import sys

import pytest
import torch
from test_joint import _real

import ddfast
from ddfast.codec import SyntheticSet
from ddfast.codec.layout import SliceLayout
from ddfast.distill import DSA, ClassSampler, DistributionMatching, GradientMatching, get_network, network_factory
from ddfast.distill.distributed import Partition, ShardedJointTrainer
from ddfast.distill.joint import RateUtility, Stage
from ddfast.distill.utility import DMUtility
from ddfast.errors import ConfigError

TINY = "bundled-dm-tiny"
# A few iterations, one post-quantization threshold, no evaluation: the run, not the result, is tested.
SHORT = {"stages": [[2, 20.0], [1, 2.0]], "mse_thresholds": [5e-5], "budget_kb": 5.0}
TM = {**SHORT, "method": "tm", "experts": 1, "expert_train_epochs": 1, "syn_steps": 2, "expert_epochs": 1,
      "max_start_epoch": 1, "batch_syn": 4, "stages": [[2, 100.0], [1, 10.0]]}


def test_partition_gives_each_rank_a_block_of_classes_with_their_slices_and_images():
    layout = SliceLayout.build([5] * 5, slice_size=2)  # 3 slices (2, 2, 1 images) per class
    part = Partition.build(layout, 2)
    assert [part.classes(r) for r in (0, 1)] == [range(0, 2), range(2, 5)]
    assert [part.slices(r) for r in (0, 1)] == [range(0, 6), range(6, 15)]
    assert [part.images(r) for r in (0, 1)] == [range(0, 10), range(10, 25)]
    assert part.slice_counts() == [6, 9] and part.image_counts() == [10, 15]
    assert [layout.slice_class[s] for s in part.slices(1)] == [2] * 3 + [3] * 3 + [4] * 3
    with pytest.raises(ConfigError, match="6 processes for 5 classes"):
        Partition.build(layout, 6)


def test_sharded_trainer_needs_a_process_group():
    syn = SyntheticSet(1, 8, num_classes=2, channels=1)
    with pytest.raises(ConfigError, match="process group"):
        ShardedJointTrainer(syn, None, RateUtility(1.0, 1.0, (Stage(1, 1.0),)), lambda x: x)


@pytest.mark.parametrize("method", ["dm", "gm"])
def test_per_class_losses_add_up_over_blocks_of_classes(method):
    """What each rank computes: its classes' terms, drawing every class's real batch and DSA seed,
    so the blocks' losses add up to the loss of the whole set."""
    images, labels = _real(n=60, classes=3, dtype=torch.float32)
    syn_images = torch.randn(9, 1, 10, 8, generator=torch.Generator().manual_seed(3))
    syn_labels = torch.arange(3).repeat_interleave(3)
    sampler = ClassSampler(images, labels, 3, seed=0)
    dsa = DSA(seed=1)
    if method == "dm":
        loss = DistributionMatching(sampler, network_factory("ConvNet", 1, 3, (10, 8)), batch_real=4, dsa=dsa, seed=2)
        assert DMUtility(loss).per_class_loss
    else:
        loss = GradientMatching(sampler, batch_real=4, dsa=dsa)
        loss.set_network(get_network("ConvNet", 1, 3, (10, 8), seed=4))
    streams = [g.get_state() for g in (sampler.generator, dsa.generator, loss.generator)]

    def replay(x, y, **kwargs):
        for g, state in zip((sampler.generator, dsa.generator, loss.generator), streams):
            g.set_state(state)
        return loss(x, y, **kwargs)

    whole = replay(syn_images, syn_labels)
    blocks = [replay(syn_images[a:b], syn_labels[a:b], classes=range(3)) for a, b in ((0, 3), (3, 9))]
    torch.testing.assert_close(blocks[0] + blocks[1], whole, rtol=1e-5, atol=1e-6)
    assert blocks[0] > 0 and blocks[1] > 0
    with pytest.raises(ConfigError, match=r"labels \[2\] are not among the classes \[0, 1\]"):
        replay(syn_images, syn_labels, classes=[0, 1])


def _torchrun(out, overrides, *extra):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "ddfast", "distill", "--preset", TINY, "--out", str(out), "--device", "cpu", "--quiet",
               "--no-eval", *extra]
    for field, value in overrides.items():
        command += ["--set", f"{field}={json.dumps(value)}"]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("overrides", [SHORT, TM], ids=["dm", "tm"])
def test_two_processes_equal_one(tmp_path, overrides):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process: the same float arithmetic
    try:
        one = ddfast.distill(TINY, tmp_path / "one", overrides=overrides, device="cpu", evaluate_file=False,
                             progress=False)
    finally:
        torch.set_num_threads(threads)
    printed = _torchrun(tmp_path / "two", overrides)
    assert printed.count("ddfast distill: preset") == 1  # rank 0 speaks for both

    a, b = (SyntheticSet.load(tmp_path / run / "distilled.pt") for run in ("one", "two"))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)
    # The checkpoint gathers every rank's codecs and Adam state into the one-process format.
    ca, cb = (torch.load(tmp_path / run / "checkpoint.pt")["trainer"] for run in ("one", "two"))
    assert cb["iteration"] == ca["iteration"] == 3
    for i, state in ca["optimizer"]["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(cb["optimizer"]["state"][i][key], value, rtol=1e-5, atol=1e-9)
    # The file is written once, from both ranks' slices, and decodes to the same images.
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["file_bytes"] == one.file_bytes
    images_a, labels_a = ddfast.decompress((tmp_path / "one" / "distilled.ddf").read_bytes())
    images_b, labels_b = ddfast.decompress((tmp_path / "two" / "distilled.ddf").read_bytes())
    assert torch.equal(labels_a, labels_b)
    torch.testing.assert_close(images_b, images_a, rtol=0, atol=1e-4)
    logs = [[json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
            for run in ("one", "two")]
    assert [r["phase"] for r in logs[1]] == [r["phase"] for r in logs[0]] == ["init"] + ["joint"] * 3 + ["file"]
    for r, s in zip(logs[0][1:4], logs[1][1:4]):  # the reported loss and bits cover every class
        assert s["loss"] == pytest.approx(r["loss"], rel=1e-5) and s["bits"] == pytest.approx(r["bits"], rel=1e-5)
