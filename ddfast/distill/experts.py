"""Expert trajectories for trajectory matching, in mtt-distillation's ``buffer.py`` format.

A *trajectory* is a list of ``epochs + 1`` snapshots (at initialization and after every epoch);
a snapshot is a list of CPU tensors in ``parameters()`` order. Every ``save_interval`` experts
are one ``torch.save``-d list, ``replay_buffer_{n}.pt``, in a folder laid out as MTT does
(:func:`buffer_dir`). Files written here are read by MTT/FreD/DDiF/DD-RUO and vice versa.

Unlike ``buffer.py``, the file of the group in progress is rewritten (atomically) after every
expert, so an interrupted run loses at most the expert it was training and continues from the
last complete one; expert ``i`` is seeded from ``(seed, i)``, so a resumed run writes the same
trajectories as an uninterrupted one. A remainder group (``num_experts`` not a multiple of the
interval) is kept as a shorter last file instead of being dropped.
"""
from __future__ import annotations

import json
import os
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ddfast.distill.dsa import DEFAULT_STRATEGY, DSA
from ddfast.distill.networks import get_network
from ddfast.distill.seeding import derive_seed, fresh_seed, seeded_generator
from ddfast.fileio import load_torch_file
from ddfast.distill.training import accuracy, train_epoch
from ddfast.errors import ConfigError, DatasetError
from ddfast.fileio import atomic_torch_save, atomic_write_json

Snapshot = list[torch.Tensor]
Trajectory = list[Snapshot]
MANIFEST = "ddfast_experts.json"
_BUFFER_RE = re.compile(r"^replay_buffer_(\d+)\.pt$")


@dataclass(frozen=True)
class ExpertConfig:
    """How each expert is trained (defaults: mtt-distillation ``buffer.py``)."""

    model: str = "ConvNet"
    epochs: int = 50
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    dsa_strategy: str = DEFAULT_STRATEGY
    align_corners: bool = True
    decay: bool = False  # lr × 0.1 after epoch epochs // 2 + 1 (buffer.py --decay)
    save_interval: int = 10
    seed: int = 0

    def validate(self) -> None:
        """Raise ConfigError for impossible values."""
        if self.epochs < 1 or self.batch_size < 1 or self.save_interval < 1:
            raise ConfigError("epochs, batch_size and save_interval must be positive")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")


def buffer_dir(
    root: str | os.PathLike,
    dataset: str,
    model: str,
    *,
    zca: bool = False,
    subset: str | None = None,
    resolution: int | None = None,
) -> Path:
    """MTT's buffer folder: ``root/dataset[/subset/res][_NO_ZCA]/model``.

    ``dataset`` is the reference name (``CIFAR10``, ``CIFAR100``, ``Tiny``, ``ImageNet`` ...);
    ``_NO_ZCA`` is appended for CIFAR-10/100 without ZCA, as MTT does.
    """
    path = Path(root) / dataset
    if subset is not None:
        path = path / subset / str(resolution if resolution is not None else 128)
    if dataset in ("CIFAR10", "CIFAR100") and not zca:
        path = path.with_name(path.name + "_NO_ZCA")
    return path / model


def buffer_files(directory: str | os.PathLike) -> list[Path]:
    """``replay_buffer_0.pt, replay_buffer_1.pt, ...`` in ``directory``, in index order.

    Like MTT's loader, only the run of consecutive indices starting at 0 counts.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    present = {int(m.group(1)) for p in directory.iterdir() if (m := _BUFFER_RE.match(p.name))}
    files = []
    while len(files) in present:
        files.append(directory / f"replay_buffer_{len(files)}.pt")
    return files


def save_buffer(path: str | os.PathLike, trajectories: Sequence[Trajectory]) -> None:
    """``torch.save`` a list of trajectories atomically (``ddfast.fileio.atomic_torch_save``)."""
    atomic_torch_save([[[t.detach().cpu() for t in snap] for snap in traj] for traj in trajectories], path)


def load_buffer(path: str | os.PathLike) -> list[Trajectory]:
    """Read one ``replay_buffer_{n}.pt`` (ours or the references'); tensors land on the CPU."""
    data = load_torch_file(path, "expert buffer")
    if not isinstance(data, list) or not all(isinstance(t, list) for t in data):
        raise DatasetError(f"{path} is not a list of trajectories (replay_buffer format)")
    return data


def train_expert(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    config: ExpertConfig,
    index: int,
    *,
    device: torch.device | str = "cpu",
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> tuple[Trajectory, float | None]:
    """Train expert ``index`` as ``buffer.py`` does; returns its trajectory and its final test
    accuracy (``None`` without ``test``).

    ``images`` are in the network's input space (normalized or whitened); ``on_epoch(epoch,
    train_loss, train_acc)`` is called after every epoch.
    """
    config.validate()
    channels, h, w = images.shape[1:]
    net = get_network(
        config.model, channels, num_classes, (h, w), seed=derive_seed(config.seed, index, 0), device=device
    )
    dsa = None
    if config.dsa_strategy not in ("", "none", "None"):
        dsa = DSA(config.dsa_strategy, align_corners=config.align_corners, seed=derive_seed(config.seed, index, 1))
    order = seeded_generator(derive_seed(config.seed, index, 2))
    lr = config.lr
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    trajectory = [[p.detach().cpu().clone() for p in net.parameters()]]
    for epoch in range(config.epochs):
        loss, acc = train_epoch(
            net, images, labels, optimizer, batch_size=config.batch_size, dsa=dsa, generator=order
        )
        trajectory.append([p.detach().cpu().clone() for p in net.parameters()])
        if on_epoch is not None:
            on_epoch(epoch, loss, acc)
        if config.decay and epoch == config.epochs // 2 + 1:
            lr *= 0.1
            optimizer = torch.optim.SGD(
                net.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
    test_acc = accuracy(net, *test) if test is not None else None
    return trajectory, test_acc


def _read_manifest(path: Path) -> dict:
    try:
        previous = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(
            f"expert manifest {path} is damaged ({err}); restore it, or remove it if the buffers in that "
            "folder were trained with these settings"
        ) from err
    if not isinstance(previous, dict):
        raise DatasetError(f"expert manifest {path} is damaged: expected a JSON object")
    return previous


def _check_manifest(directory: Path, record: dict) -> None:
    path = directory / MANIFEST
    if path.exists():
        previous = _read_manifest(path)
        if previous != record:
            changed = sorted(k for k in set(previous) | set(record) if previous.get(k) != record.get(k))
            raise ConfigError(
                f"{directory} holds experts trained with different settings ({', '.join(changed)}); "
                "use another folder or the same settings to resume"
            )
        return
    atomic_write_json(path, dict(sorted(record.items())))


def completed_experts(directory: str | os.PathLike, save_interval: int) -> tuple[int, list[Trajectory]]:
    """``(number of complete experts, trajectories of the unfinished last group)`` in a folder."""
    files = buffer_files(directory)
    if not files:
        return 0, []
    last = load_buffer(files[-1])
    if len(last) >= save_interval:
        return len(files) * save_interval, []
    return (len(files) - 1) * save_interval + len(last), last


def train_experts(
    images: torch.Tensor,
    labels: torch.Tensor,
    directory: str | os.PathLike,
    num_experts: int,
    *,
    num_classes: int | None = None,
    config: ExpertConfig | None = None,
    device: torch.device | str = "cpu",
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Train experts ``0 .. num_experts - 1`` into ``directory``, resuming after the last
    complete one already there; returns the buffer files.

    ``images`` [N, C, H, W] are in the network's input space. The settings are recorded in
    ``ddfast_experts.json``; resuming with different settings raises ConfigError.
    """
    config = config or ExpertConfig()
    config.validate()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    _check_manifest(
        directory,
        {**asdict(config), "num_classes": num_classes, "image_shape": list(images.shape[1:])},
    )
    done, group = completed_experts(directory, config.save_interval)
    images, labels = images.to(device), labels.to(device)
    if test is not None:
        test = (test[0].to(device), test[1].to(device))
    bar = tqdm(total=num_experts, initial=min(done, num_experts), desc="experts", unit="expert", disable=not progress)
    for index in range(done, num_experts):
        epochs = tqdm(total=config.epochs, desc=f"expert {index}", unit="epoch", leave=False, disable=not progress)

        def on_epoch(epoch: int, loss: float, acc: float) -> None:
            epochs.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")
            epochs.update()

        trajectory, test_acc = train_expert(
            images, labels, num_classes, config, index, device=device, test=test, on_epoch=on_epoch
        )
        epochs.close()
        group.append(trajectory)
        save_buffer(directory / f"replay_buffer_{index // config.save_interval}.pt", group)
        if len(group) == config.save_interval:
            group = []
        if test_acc is not None:
            bar.set_postfix(test_acc=f"{test_acc:.4f}")
        bar.update()
    bar.close()
    return buffer_files(directory)


def _as_random_state(state) -> tuple:
    """A ``random.Random`` state back from lists (as JSON or torch.load may have stored it)."""
    version, internal, gauss = state
    return int(version), tuple(int(v) for v in internal), gauss


class ExpertBuffer:
    """Serves expert trajectories the way MTT's ``distill.py`` does.

    From a folder: files in shuffled order, the experts of a file in shuffled order, the next
    file loaded when one is used up (only one file in memory), reshuffled after a full pass;
    with ``load_all`` every expert is in memory and each draw is uniform. A list of trajectories
    behaves like ``load_all``. ``max_files``/``max_experts`` truncate as MTT's flags do.
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[Trajectory],
        *,
        load_all: bool = False,
        max_files: int | None = None,
        max_experts: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._rng = random.Random(seed if seed is not None else fresh_seed())
        self.max_experts = max_experts
        if isinstance(source, (str, os.PathLike)):
            self.files = buffer_files(source)[:max_files]
            if not self.files:
                raise DatasetError(f"no replay_buffer_0.pt in {source}")
        else:
            if not source:
                raise ConfigError("ExpertBuffer needs at least one trajectory")
            self.files, load_all = [], True
            self._all = list(source)[:max_experts]
        self.load_all = load_all
        if load_all and self.files:
            self._all = [t for f in self.files for t in load_buffer(f)[:max_experts]]
        if not load_all:
            self._rng.shuffle(self.files)
            self._file_idx, self._expert_idx = 0, 0
            self._load(0)

    def _load(self, file_idx: int, order: list[int] | None = None) -> None:
        """Load a file's experts and shuffle the order they are served in (or restore ``order``)."""
        self._current = load_buffer(self.files[file_idx])[: self.max_experts]
        if not self._current:
            raise DatasetError(f"{self.files[file_idx]} holds no trajectories")
        if order is None:
            order = list(range(len(self._current)))
            self._rng.shuffle(order)
        self._order = order

    def next(self) -> Trajectory:
        """The next expert trajectory."""
        if self.load_all:
            return self._all[self._rng.randrange(len(self._all))]
        trajectory = self._current[self._order[self._expert_idx]]
        self._expert_idx += 1
        if self._expert_idx == len(self._current):
            self._expert_idx = 0
            self._file_idx += 1
            if self._file_idx == len(self.files):
                self._file_idx = 0
                self._rng.shuffle(self.files)
            if len(self.files) == 1:
                self._rng.shuffle(self._order)
            else:
                self._load(self._file_idx)
        return trajectory

    def state_dict(self) -> dict:
        """Where the buffer is in its sequence (for resuming a run exactly)."""
        state = {"rng": self._rng.getstate()}
        if not self.load_all:
            state.update(files=[str(f) for f in self.files], file_idx=self._file_idx, expert_idx=self._expert_idx,
                         order=list(self._order))
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue the sequence a :meth:`state_dict` recorded (same source and truncation)."""
        self._rng.setstate(_as_random_state(state["rng"]))
        if not self.load_all:
            by_name = {str(f): f for f in self.files}
            if sorted(by_name) != sorted(state["files"]):
                raise ConfigError("the expert buffer's files differ from those of the saved state")
            self.files = [by_name[name] for name in state["files"]]
            self._file_idx, self._expert_idx = int(state["file_idx"]), int(state["expert_idx"])
            self._load(self._file_idx, [int(i) for i in state["order"]])
