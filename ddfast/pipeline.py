"""DD-RUO end to end: ``ddfast.distill(...)`` and ``ddfast distill``.

Phases, in one run folder:

1. **init** -- every slice's codec overfits real images of its class (the warm-up, beta);
2. **joint** -- the rate-utility phase (``ddfast.distill.joint``) in its stages, with a checkpoint
   every ``checkpoint_every`` iterations and at each stage switch;
3. **file** -- post-quantization at each MSE threshold of the preset; the written ``.ddf`` is the
   one that fits the byte budget with the best utility proxy: the *smallest* threshold (the
   decode closest to the trained codecs) among the files that fit;
4. **eval** -- the file is decoded and fresh networks are trained on it (``ddfast.evaluate``).

The folder holds ``config.json`` (the resolved preset), ``log.jsonl`` (one line per joint
iteration and per phase), ``checkpoint.pt`` (atomic), ``init.pt`` and ``distilled.pt`` (the float
SyntheticSet after phases 1 and 2), ``distilled.ddf`` and ``summary.json``. ``resume=True``
continues an interrupted run from its last checkpoint to the same result as an uninterrupted
run (same machine, same seed).

Started by ``torchrun`` (or with a ``torch.distributed`` group), every process trains the codecs
of a block of classes and rank 0 does the rest (``ddfast.distill.distributed``); the result is
that of one process.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from tqdm.auto import tqdm

from ddfast import coding
from ddfast.codec import SyntheticSet
from ddfast.data import load
from ddfast.device import resolve_device
from ddfast.distill import (
    DSA,
    ZCA,
    ClassSampler,
    DistributionMatching,
    ExpertBuffer,
    ExpertConfig,
    GradientMatching,
    TrajectoryMatching,
    buffer_files,
    default_convnet,
    get_network,
    network_factory,
    real_tensors,
    train_experts,
)
from ddfast.distill import distributed
from ddfast.distill.distributed import ShardedJointTrainer
from ddfast.distill.joint import JointTrainer
from ddfast.distill.presets import Preset, get_preset, load_overrides
from ddfast.distill.seeding import derive_seed
from ddfast.distill.utility import DMUtility, GMUtility, TMUtility
from ddfast.errors import ArgumentTypeError, ConfigError, DatasetError
from ddfast.eval import evaluate
from ddfast.fileio import atomic_torch_save, atomic_write_bytes, atomic_write_json, folder_write_error, load_torch_file

CHECKPOINT = "checkpoint.pt"


@dataclass
class RunSummary:
    """What a run produced: the file's size (itemized), the evaluation, the time of each phase."""

    preset: str
    dataset: str
    method: str
    classes: int
    images_per_class: int
    budget_kb: float | None
    budget_met: bool
    mse_threshold: float
    file: str
    file_bytes: int
    bytes_per_class: float
    bytes: dict[str, int]
    latent_bits: float
    estimated_latent_bits: float
    candidates: list[dict[str, float]]
    accuracy_mean: float | None = None
    accuracy_std: float | None = None
    accuracies: list[float] = field(default_factory=list)
    eval_runs: int = 0
    eval_epochs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    budget_message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what ``summary.json`` holds)."""
        return asdict(self)

    def describe(self) -> str:
        """A few lines for the terminal."""
        parts = ", ".join(f"{k} {v}" for k, v in self.bytes.items())
        budget = f", budget {self.budget_kb:g} kB" if self.budget_kb else ""
        lines = [f"file: {self.file} -- {self.file_bytes} bytes, {self.bytes_per_class / 1000:.3f} kB per class "
                 f"(MSE threshold {self.mse_threshold:g}{budget})", f"  bytes: {parts}"]
        if self.accuracy_mean is not None:
            lines.append(f"accuracy: {100 * self.accuracy_mean:.2f} +- {100 * self.accuracy_std:.2f} % "
                         f"({self.eval_runs} runs x {self.eval_epochs} epochs: "
                         f"{', '.join(f'{100 * a:.2f}' for a in self.accuracies)})")
        lines.append("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()))
        if self.budget_message:
            lines.append(self.budget_message)
        return "\n".join(lines)


@dataclass
class _Data:
    """The training and test data in the network's input space, and the pixel-to-input transform."""

    train: Any
    test: Any
    images: torch.Tensor
    labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    transform: Callable[[torch.Tensor], torch.Tensor]


def resolve_preset(preset: str | Preset, overrides: Mapping[str, Any] | None = None,
                   config: str | Path | None = None) -> Preset:
    """A preset by name (or as given), with a config file's and then explicit overrides applied."""
    resolved = get_preset(preset) if isinstance(preset, str) else preset
    if config is not None:
        resolved = resolved.with_overrides(load_overrides(config))
    if overrides:
        resolved = resolved.with_overrides(dict(overrides))
    return resolved


def _prepare_folder(out: Path, preset: Preset, resume: bool) -> None:
    """Check (and create) the run folder before any work: writable, empty unless resuming."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run folder {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the run folder {out}: {err.strerror or err}") from None
    problem = folder_write_error(out)
    if problem:
        raise ConfigError(f"run folder {out} is not writable ({problem})")
    config = out / "config.json"
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise ConfigError(f"nothing to resume in {out}: no {CHECKPOINT}")
        saved = json.loads(config.read_text()) if config.is_file() else None
        if saved != json.loads(json.dumps(preset.to_dict())):
            raise ConfigError(f"the run in {out} used other settings than these (see its config.json)")
        return
    if any(out.iterdir()):
        raise ConfigError(f"run folder {out} is not empty; use --resume to continue the run in it, or another folder")
    atomic_write_json(config, preset.to_dict())


def _load_data(preset: Preset, root: str | None, device: torch.device) -> _Data:
    train = load(preset.dataset, root, "train")
    test = load(preset.dataset, root, "test")
    images, labels = real_tensors(train)
    test_images, test_labels = real_tensors(test)
    mean = torch.tensor(train.mean).view(1, -1, 1, 1)
    std = torch.tensor(train.std).view(1, -1, 1, 1)
    zca = ZCA().fit(images) if preset.zca else None
    if zca is not None:
        images, test_images = zca.transform(images), zca.transform(test_images)

    def transform(pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - mean.to(pixels.device)) / std.to(pixels.device)
        return zca.transform(x) if zca is not None else x

    return _Data(train, test, images, labels, test_images, test_labels, transform)


def _utility(preset: Preset, data: _Data, syn: SyntheticSet, experts: Path | None, out: Path,
             device: torch.device, progress: bool):
    seed = preset.seed
    c, h, w = data.images.shape[1:]
    classes = syn.num_classes
    arch = preset.arch or default_convnet((h, w))
    sampler = ClassSampler(data.images, data.labels, classes, seed=derive_seed(seed, 0), device=device)
    dsa = DSA(seed=derive_seed(seed, 1)) if preset.dsa else None
    if preset.method == "dm":
        dm = DistributionMatching(sampler, network_factory(arch, c, classes, (h, w)), batch_real=preset.batch_real,
                                  dsa=dsa, seed=derive_seed(seed, 2))
        return DMUtility(dm)
    if preset.method == "gm":
        gm = GradientMatching(sampler, batch_real=preset.batch_real, dsa=dsa, lr_net=preset.lr_net,
                              seed=derive_seed(seed, 2))
        return GMUtility(gm, arch, c, classes, (h, w), preset.loops(), seed)
    folder = experts if experts is not None else out / "experts"
    if experts is None:  # trained on demand (by rank 0); resumes after the last complete expert
        if distributed.is_main():
            train_experts(data.images, data.labels, folder, preset.experts, num_classes=classes,
                          config=ExpertConfig(model=arch, epochs=preset.expert_train_epochs, seed=seed), device=device,
                          progress=progress)
        distributed.barrier()
    buffer = ExpertBuffer(folder, seed=derive_seed(seed, 5))
    tm = TrajectoryMatching(buffer, get_network(arch, c, classes, (h, w), seed=0), syn_steps=preset.syn_steps,
                            expert_epochs=preset.expert_epochs, max_start_epoch=preset.max_start_epoch,
                            batch_syn=preset.batch_syn, lr_teacher=preset.lr_teacher, dsa=dsa,
                            seed=derive_seed(seed, 2), device=device)
    return TMUtility(tm, syn.layout.num_images, lr_lr=preset.lr_lr, min_syn_lr=preset.min_syn_lr)


def _log(out: Path, record: dict[str, Any]) -> None:
    if not distributed.is_main():
        return
    with (out / "log.jsonl").open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _save_checkpoint(out: Path, phase: str, trainer: JointTrainer | None, seconds: dict[str, float]) -> None:
    state = {"phase": phase, "seconds": dict(seconds)}
    if trainer is not None:
        state["trainer"] = trainer.state_dict()  # gathered from every rank in a distributed run
    if distributed.is_main():
        atomic_torch_save(state, out / CHECKPOINT)


def _init(preset: Preset, data: _Data, device: torch.device, progress: bool) -> SyntheticSet:
    syn = SyntheticSet(preset.spc, data.train.image_size, num_classes=data.train.num_classes,
                       channels=data.train.channels, config=preset.codec_config(), slice_size=preset.slice_size,
                       generator=torch.Generator().manual_seed(preset.seed), device=device)
    picked = data.train.take_per_class(preset.spc, generator=torch.Generator().manual_seed(derive_seed(preset.seed, 6)))
    syn.init_from_data([x.to(device) for x in picked.by_class()], beta=preset.beta,
                       candidates=preset.warmup_candidates, iterations=preset.warmup_iterations, lr=preset.warmup_lr,
                       generator=torch.Generator(device).manual_seed(derive_seed(preset.seed, 7)), progress=progress)
    syn.metadata.update(dataset=preset.dataset, normalization=[list(data.train.mean), list(data.train.std)])
    return syn


def _joint(trainer: JointTrainer, preset: Preset, out: Path, seconds: dict[str, float], classes: int,
           progress: bool) -> None:
    weights = trainer.weights
    switches = set(weights.stage_starts()[1:])
    start = time.perf_counter() - seconds.get("joint", 0.0)
    with tqdm(total=weights.iterations, initial=trainer.iteration, desc="joint", unit="it",
              disable=not progress) as bar:
        while trainer.iteration < weights.iterations:
            record = trainer.run_iteration()
            seconds["joint"] = time.perf_counter() - start
            latent_kb = record["bits"] / 8 / classes / 1000
            _log(out, {"phase": "joint", **record, "latent_kb_per_class": latent_kb, "seconds": seconds["joint"]})
            bar.update(1)
            bar.set_postfix(stage=record["stage"] + 1, loss=f"{record['loss']:.4g}", bpp=f"{record['bpp']:.3f}",
                            latent_kb=f"{latent_kb:.2f}")
            done = trainer.iteration
            if done % preset.checkpoint_every == 0 or done in switches or done == weights.iterations:
                _save_checkpoint(out, "joint", trainer, seconds)


def _budget_advice(candidate: dict[str, float], budget_bytes: float) -> str:
    over = candidate["bytes_per_class"] - budget_bytes
    weights = candidate["weight_bytes_per_class"]
    if weights >= budget_bytes:
        knob = (f"the network weights alone take {weights / 1000:.2f} kB per class: choose a smaller decoder version "
                "(e.g. v4-40 or v4-160) or a narrower/shallower ARM")
    else:
        knob = ("lower the last stage's lambda (more weight on the rate), lower beta (a coarser warm-up), or use fewer "
                "images per class (spc)")
    return (f"budget missed: the smallest file (MSE threshold {candidate['mse_threshold']:g}) takes "
            f"{candidate['bytes_per_class'] / 1000:.3f} kB per class, {over / 1000:.3f} kB over the budget of "
            f"{budget_bytes / 1000:g} kB; {knob}")


def _write_file(syn: SyntheticSet, preset: Preset, out: Path, syn_lr: float | None, progress: bool
                ) -> tuple[bytes, dict[str, float], list[dict[str, float]], str]:
    """Post-quantize at every threshold, pick the file for the budget, write it; returns
    (data, the chosen candidate, all candidates, budget message)."""
    classes = syn.num_classes
    candidates, files = [], {}
    for threshold in sorted(preset.mse_thresholds, reverse=True):
        data = coding.compress(syn, threshold, progress=progress, syn_lr=syn_lr)
        info = coding.inspect(data, estimate=False)
        files[threshold] = data
        candidates.append({"mse_threshold": threshold, "bytes": len(data), "bytes_per_class": len(data) / classes,
                           "weight_bytes_per_class": info.bytes["weights"] / classes})
    budget = None if preset.budget_kb is None else preset.budget_kb * 1000
    fitting = [c for c in candidates if budget is None or c["bytes_per_class"] <= budget]
    message = ""
    if budget is None:
        preferred = [c for c in candidates if c["mse_threshold"] == coding.DEFAULT_MSE_THRESHOLD]
        chosen = preferred[0] if preferred else min(candidates, key=lambda c: c["mse_threshold"])
    elif fitting:
        chosen = min(fitting, key=lambda c: c["mse_threshold"])
    else:
        chosen = min(candidates, key=lambda c: c["bytes"])
        message = _budget_advice(chosen, budget)
    data = files[chosen["mse_threshold"]]
    atomic_write_bytes(out / "distilled.ddf", data)
    return data, chosen, candidates, message


def distill(preset: str | Preset, out: str | Path, *, data_root: str | None = None,
            overrides: Mapping[str, Any] | None = None, config: str | Path | None = None,
            experts: str | Path | None = None, device: str | torch.device | None = "auto", resume: bool = False,
            evaluate_file: bool = True, progress: bool = True) -> RunSummary:
    """Run DD-RUO with a preset (a name from ``ddfast presets`` or a :class:`Preset`) into ``out``.

    In processes started by ``torchrun`` (or in a ``torch.distributed`` group) every process calls
    it with the same arguments; each trains a block of classes and all return rank 0's summary.

    Args:
        data_root: where the dataset lies (default: ``ddfast.data``'s default places).
        overrides / config: preset fields to change (a dict / a JSON or TOML file).
        experts: a folder of TM expert trajectories in mtt-distillation's layout (default: train
            ``preset.experts`` of them into ``out/experts``).
        resume: continue the run in ``out`` from its checkpoint.
        evaluate_file: train and test fresh networks on the decoded file (phase 4).
    """
    with distributed.joined(resolve_device(device)) as dev:
        return _distill(preset, out, data_root=data_root, overrides=overrides, config=config, experts=experts,
                        device=dev, resume=resume, evaluate_file=evaluate_file, progress=progress)


def _distill(preset: str | Preset, out: str | Path, *, data_root: str | None, overrides: Mapping[str, Any] | None,
             config: str | Path | None, experts: str | Path | None, device: torch.device, resume: bool,
             evaluate_file: bool, progress: bool) -> RunSummary:
    chosen = resolve_preset(preset, overrides, config)
    dev = resolve_device(device)
    try:
        out = Path(out)
        experts_dir = Path(experts) if experts is not None else None
    except TypeError:
        raise ArgumentTypeError(f"out and experts must be folder paths, got {out!r} and {experts!r}") from None
    if experts_dir is not None and not buffer_files(experts_dir):
        raise DatasetError(f"no expert trajectories (replay_buffer_0.pt, ...) in {experts_dir}")
    distributed.on_main(_prepare_folder, out, chosen, resume)
    progress = progress and distributed.is_main()
    data = _load_data(chosen, data_root, dev)
    state = load_torch_file(out / CHECKPOINT, "checkpoint", ConfigError) if resume else {"phase": "init", "seconds": {}}
    seconds: dict[str, float] = dict(state["seconds"])
    syn = None
    if state["phase"] == "init":
        if distributed.is_main():  # the warm-up's random draws span every slice: rank 0 runs it
            start = time.perf_counter()
            syn = _init(chosen, data, dev, progress)
            syn.save(out / "init.pt")
            seconds["init"] = time.perf_counter() - start
            _log(out, {"phase": "init", "seconds": seconds["init"]})
            _save_checkpoint(out, "joint", None, seconds)
        state = {"phase": "joint", "seconds": seconds}
        distributed.barrier()
    if syn is None:
        syn = SyntheticSet.load(out / "init.pt", device=dev)
    utility = _utility(chosen, data, syn, experts_dir, out, dev, progress)
    trainer_type = ShardedJointTrainer if distributed.active() else JointTrainer
    trainer = trainer_type(syn, utility, chosen.joint_weights(), data.transform, seed=chosen.seed)
    if "trainer" in state:
        trainer.load_state_dict(state["trainer"])
    _joint(trainer, chosen, out, seconds, syn.num_classes, progress)
    if isinstance(trainer, ShardedJointTrainer):
        trainer.gather_set()  # syn now holds every rank's codecs
    if not distributed.is_main():  # rank 0 writes the file and evaluates; the others wait for its summary
        _save_checkpoint(out, "done", trainer, seconds)
        return distributed.share(None)
    syn.eval()
    syn.save(out / "distilled.pt")
    syn_lr = utility.syn_lr if isinstance(utility, TMUtility) else None
    start = time.perf_counter()
    payload, picked, candidates, message = _write_file(syn, chosen, out, syn_lr, progress)
    seconds["file"] = time.perf_counter() - start
    info = coding.inspect(payload)
    summary = RunSummary(
        preset=chosen.name, dataset=chosen.dataset, method=chosen.method, classes=syn.num_classes,
        images_per_class=chosen.spc, budget_kb=chosen.budget_kb, budget_met=not message,
        mse_threshold=picked["mse_threshold"], file=str(out / "distilled.ddf"), file_bytes=len(payload),
        bytes_per_class=len(payload) / syn.num_classes, bytes=dict(info.bytes), latent_bits=info.coded_latent_bits,
        estimated_latent_bits=info.estimated_latent_bits, candidates=candidates, seconds=seconds,
        budget_message=message)
    _log(out, {"phase": "file", "mse_threshold": summary.mse_threshold, "bytes": len(payload),
               "seconds": seconds["file"]})
    if evaluate_file:
        start = time.perf_counter()
        images, labels = coding.decompress(payload, device=dev)
        result = evaluate(data.transform(images), labels, (data.test_images, data.test_labels),
                          arch=chosen.arch or default_convnet(data.train.image_size), runs=chosen.eval_runs,
                          epochs=chosen.eval_epochs, syn_lr=syn_lr, seed=chosen.seed, device=dev, progress=progress)
        seconds["eval"] = time.perf_counter() - start
        summary.accuracy_mean, summary.accuracy_std = result.mean, result.std
        summary.accuracies, summary.eval_runs, summary.eval_epochs = list(result.accuracies), chosen.eval_runs, \
            chosen.eval_epochs
        _log(out, {"phase": "eval", "accuracy_mean": result.mean, "accuracy_std": result.std,
                   "seconds": seconds["eval"]})
    atomic_write_json(out / "summary.json", summary.to_dict())
    _save_checkpoint(out, "done", trainer, seconds)
    return distributed.share(summary)
