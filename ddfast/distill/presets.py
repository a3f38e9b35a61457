"""Named settings of DD-RUO runs: every row of the paper's Table A2, and Fashion-MNIST runs for a CPU.

A :class:`Preset` holds everything a run needs besides the data: the codec (decoder version,
ARM width/depth, slice size, images per class), the warm-up (beta, candidates, iterations), the
joint phase (the reference's lr_it and ldb, and per stage its iterations and lambda), the loss's
settings (DSA, ZCA, TM's unroll and expert horizons, GM's loops, DM/GM's real batch), the byte
budget, and the evaluation. ``preset.with_overrides({...})`` (or a JSON/TOML file, see
:func:`load_overrides`) changes any field; unknown fields and bad values raise ConfigError naming
the field.

The joint phase weighs utility against rate by lambda = lr_it / (ldb_it * ldb) (DD-RUO's code:
TM lr_it 1000 and ldb 0.1, so lambda = 10000 / ldb_it; DM 1000 and 5, lambda = 200 / ldb_it; GM
100 and 5, lambda = 20 / ldb_it); a preset states lambda per stage and the rate multiplier ldb_it
follows. TM's horizons come from the paper's (t1, t2, t): syn_steps = t1, expert_epochs =
t2 / (iterations per expert epoch), max_start_epoch = t / (iterations per expert epoch), with 196
iterations per epoch on CIFAR (50,000 images, batch 256) and 51 on the ImageNet subsets.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ddfast.codec import CodecConfig
from ddfast.distill.joint import RateUtility, Stage
from ddfast.distill.losses import get_loops
from ddfast.errors import ConfigError

METHODS = ("tm", "gm", "dm")
# The reference's utility and rate multipliers per method (DD-RUO scripts).
JOINT_WEIGHTS = {"tm": (1000.0, 0.1), "dm": (1000.0, 5.0), "gm": (100.0, 5.0)}


@dataclass(frozen=True)
class Preset:
    """One run's settings. Fields are validated on construction (ConfigError names the field)."""

    name: str
    dataset: str
    method: str
    spc: int
    synthesis: str
    arm_context: int
    arm_depth: int
    beta: float
    stages: tuple[tuple[int, float], ...]   # per stage: (iterations, lambda)
    slice_size: int | None = None
    description: str = ""
    # warm-up (phase 1): candidates kept and iterations per phase, Adam lr
    warmup_candidates: tuple[int, ...] = (5, 2)
    warmup_iterations: tuple[int, ...] = (400, 400)
    warmup_lr: float = 1e-2
    # joint phase (phase 2)
    lr: float = 1e-3
    max_grad_norm: float = 0.1
    dsa: bool = True
    zca: bool = False
    arch: str | None = None                  # the distillation/evaluation network (None: ConvNet of the size)
    batch_real: int = 256                    # DM, GM: real images per class per step
    gm_loops: tuple[int, int] | None = None  # GM (outer, inner); None: get_loops(spc)
    lr_net: float = 0.01                     # GM inner loop
    syn_steps: int = 20                      # TM t1
    expert_epochs: int = 2                   # TM t2 in expert epochs
    max_start_epoch: int = 20                # TM t in expert epochs
    batch_syn: int | None = None             # TM synthetic minibatch (None: all images)
    lr_lr: float = 1e-5
    lr_teacher: float = 0.01
    min_syn_lr: float = 0.001
    experts: int = 10                        # TM: experts to train when none are given
    expert_train_epochs: int = 50
    # post-quantization and the file
    budget_kb: float | None = None           # per class, 1 kB = 1000 bytes
    mse_thresholds: tuple[float, ...] = (5e-5, 5e-6, 5e-7, 5e-8)
    # evaluation (phase 5)
    eval_runs: int = 5
    eval_epochs: int = 1000
    checkpoint_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"preset {self.name!r}: {name} {what}, got {getattr(self, name)!r}")

        need(self.method in METHODS, "method", f"must be one of {METHODS}")
        for name in ("spc", "batch_real", "syn_steps", "expert_epochs", "max_start_epoch", "experts",
                     "expert_train_epochs", "eval_runs", "eval_epochs", "checkpoint_every"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name,
                 "must be a positive integer")
        for name in ("beta", "warmup_lr", "lr", "max_grad_norm", "lr_net", "lr_lr", "lr_teacher", "min_syn_lr"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0,
                 name, "must be a finite number > 0")
        need(self.slice_size is None or (isinstance(self.slice_size, int) and self.slice_size >= 1), "slice_size",
             "must be a positive integer or null")
        need(self.batch_syn is None or (isinstance(self.batch_syn, int) and self.batch_syn >= 1), "batch_syn",
             "must be a positive integer or null")
        need(self.budget_kb is None or (isinstance(self.budget_kb, (int, float)) and self.budget_kb > 0), "budget_kb",
             "must be a number > 0 or null")
        need(len(self.warmup_candidates) == len(self.warmup_iterations) and len(self.warmup_candidates) >= 1,
             "warmup_candidates", "needs one entry per warm-up phase (as warmup_iterations)")
        need(bool(self.stages) and all(len(s) == 2 for s in self.stages), "stages",
             "must be a list of [iterations, lambda] pairs")
        need(bool(self.mse_thresholds) and all(t > 0 for t in self.mse_thresholds), "mse_thresholds",
             "must be positive numbers")
        need(self.gm_loops is None or (len(self.gm_loops) == 2 and min(self.gm_loops) >= 1), "gm_loops",
             "must be [outer, inner] with both >= 1, or null")
        try:
            self.codec_config()
            self.joint_weights()
            if self.method == "gm":
                self.loops()
        except ConfigError as err:
            raise ConfigError(f"preset {self.name!r}: {err}") from None

    def codec_config(self) -> CodecConfig:
        return CodecConfig(synthesis=self.synthesis, arm_context=self.arm_context, arm_depth=self.arm_depth)

    def joint_weights(self) -> RateUtility:
        """lr_it, ldb and the stages, with ldb_it = lr_it / (lambda * ldb)."""
        lr_it, ldb = JOINT_WEIGHTS[self.method]
        stages = []
        for iterations, lam in self.stages:
            if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
                raise ConfigError(f"stage lambda must be a finite number > 0, got {lam!r}")
            stages.append(Stage(int(iterations), lr_it / (lam * ldb)))
        return RateUtility(lr_it=lr_it, ldb=ldb, stages=tuple(stages), lr=self.lr, max_grad_norm=self.max_grad_norm)

    def loops(self) -> tuple[int, int]:
        """GM's (outer, inner) loops."""
        return tuple(self.gm_loops) if self.gm_loops is not None else get_loops(self.spc)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Preset":
        """A copy with the given fields changed (JSON lists become tuples); unknown fields are errors."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown preset field(s) {unknown}; known fields: {sorted(known)}")
        values = {}
        for key, value in overrides.items():
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            values[key] = value
        return dataclasses.replace(self, **values)


def load_overrides(path: str | Path) -> dict[str, Any]:
    """The field overrides in a JSON or TOML file (a table/object of preset fields)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            values = tomllib.loads(text.decode())
        else:
            values = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"config {path} is not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: "
                          f"{err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config {path} must hold a table/object of preset fields")
    return values


def _tm_cifar(name: str, dataset: str, spc: int, synthesis: str, slice_size: int, beta: float, t1: int, t: int,
              batch: int, lambdas: tuple[float, ...], zca: bool) -> Preset:
    per_epoch = 196  # CIFAR: 50,000 images / batch 256
    return Preset(name, dataset, "tm", spc, synthesis, 16, 4, beta, _split(15000, lambdas), slice_size=slice_size,
                  syn_steps=t1, expert_epochs=392 // per_epoch, max_start_epoch=t // per_epoch, batch_syn=batch,
                  zca=zca, description=f"Table A2(a): TM, {dataset} spc {spc}, t = ({t1}, 392, {t})")


def _tm_imagenet(spc: int, synthesis: str, context: int, depth: int, t1: int, t: int, batch: int,
                 lambdas: tuple[float, ...]) -> Preset:
    per_epoch = 51  # ImageNet subsets: about 13,000 images / batch 256
    return Preset(f"imagenet-tm-spc{spc}", "imagenette", "tm", spc, synthesis, context, depth, 10.0,
                  _split(15000, lambdas), slice_size=spc, syn_steps=t1, expert_epochs=102 // per_epoch,
                  max_start_epoch=t // per_epoch, batch_syn=batch,
                  description=f"Table A2(a): TM, ImageNet subset spc {spc}, t = ({t1}, 102, {t})")


def _split(iterations: int, lambdas: tuple[float, ...]) -> tuple[tuple[int, float], ...]:
    """The iterations split evenly over the lambda stages (the paper: first half, second half)."""
    base, extra = divmod(iterations, len(lambdas))
    return tuple((base + (1 if i < extra else 0), lam) for i, lam in enumerate(lambdas))


def _fashion_mnist(name: str, method: str, spc: int, beta: float, stages: tuple[tuple[int, float], ...],
                   budget_kb: float, description: str, **fields: Any) -> Preset:
    return Preset(name, "fashion_mnist", method, spc, "v4-40", 16, 2, beta, stages, budget_kb=budget_kb,
                  warmup_candidates=(1,), warmup_iterations=(300,), batch_real=64, description=description, **fields)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    _tm_cifar("cifar10-tm-spc64", "cifar10", 64, "v4-480", 64, 1e6, 60, 1960, 256, (20,), True),
    _tm_cifar("cifar10-tm-spc240", "cifar10", 240, "v4-960", 240, 1e6, 60, 7840, 410, (100, 200), True),
    _tm_cifar("cifar10-tm-spc718", "cifar10", 718, "v4-1200", 360, 1e6, 60, 7840, 720, (200,), False),
    _tm_cifar("cifar100-tm-spc48", "cifar100", 48, "v4-240", 48, 1e8, 60, 7840, 256, (300,), False),
    _tm_cifar("cifar100-tm-spc120", "cifar100", 120, "v4-960", 120, 1e6, 40, 9408, 960, (1500,), False),
    _tm_imagenet(1, "v4-40", 16, 2, 20, 510, 102, (100, 1000)),
    _tm_imagenet(8, "v4-160", 16, 2, 20, 510, 102, (1000, 85)),
    _tm_imagenet(15, "v4-240", 16, 2, 20, 510, 102, (1000, 85)),
    _tm_imagenet(51, "v5-240", 32, 4, 40, 1020, 80, (1000, 85)),
    _tm_imagenet(102, "v5-240", 32, 4, 40, 1020, 80, (1000, 66)),
    Preset("imagenet-gm-spc96", "imagenette", "gm", 96, "v5-320", 32, 4, 1e6, _split(800, (2.8e-2, 1.2e-2)),
           slice_size=96, description="Table A2(b): GM, ImageNet subset spc 96 (synthetic batch 960)"),
    Preset("imagenet-dm-spc96", "imagenette", "dm", 96, "v5-320", 32, 4, 1e6, _split(20000, (20, 0.67)),
           slice_size=96, description="Table A2(b): DM, ImageNet subset spc 96 (synthetic batch 960)"),
    # Fashion-MNIST on a 2-core CPU: DM at budgets of about 1, 2, 4 and 8 kB per class, GM at two; 64 real
    # images per class per step (the references: 256) and 1,000 DM / 200 GM joint iterations keep each run
    # under about half an hour; a coarser warm-up (lower beta) buys more images per byte.
    _fashion_mnist("fashion-mnist-dm-1kb", "dm", 3, 10.0, ((500, 20.0), (500, 2.0)), 1.0,
                   "Fashion-MNIST, DM at 1 kB per class (a 2-core CPU: about 15 minutes + evaluation)"),
    _fashion_mnist("fashion-mnist-dm-2kb", "dm", 14, 30.0, ((500, 20.0), (500, 2.0)), 2.0,
                   "Fashion-MNIST, DM at 2 kB per class (a 2-core CPU: about 15 minutes + evaluation)"),
    _fashion_mnist("fashion-mnist-dm-4kb", "dm", 32, 30.0, ((500, 20.0), (500, 2.0)), 4.0,
                   "Fashion-MNIST, DM at 4 kB per class (a 2-core CPU: about 20 minutes + evaluation)"),
    _fashion_mnist("fashion-mnist-dm-8kb", "dm", 40, 1e3, ((500, 20.0), (500, 2.0)), 8.0,
                   "Fashion-MNIST, DM at 8 kB per class (a 2-core CPU: about 25 minutes + evaluation)"),
    _fashion_mnist("fashion-mnist-gm-1kb", "gm", 3, 10.0, ((100, 1.0), (100, 0.1)), 1.0,
                   "Fashion-MNIST, GM at 1 kB per class, loops (1, 1) (a 2-core CPU: about 15 minutes + evaluation)",
                   gm_loops=(1, 1)),
    _fashion_mnist("fashion-mnist-gm-2kb", "gm", 14, 30.0, ((100, 1.0), (100, 0.1)), 2.0,
                   "Fashion-MNIST, GM at 2 kB per class, loops (1, 1) (a 2-core CPU: about 20 minutes + evaluation)",
                   gm_loops=(1, 1)),
    # The demo and the tests: the bundled subset (50 training images per class), minutes or seconds.
    Preset("bundled-dm-demo", "bundled", "dm", 10, "v4-40", 16, 2, 30.0, ((150, 20.0), (150, 2.0)), budget_kb=1.5,
           warmup_candidates=(1,), warmup_iterations=(150,), batch_real=50, eval_runs=2, eval_epochs=300,
           checkpoint_every=50, description="the demo: bundled Fashion-MNIST, DM at 1.5 kB per class"),
    Preset("bundled-dm-tiny", "bundled", "dm", 2, "v4-40", 8, 1, 1e3, ((3, 20.0), (3, 2.0)), budget_kb=2.0,
           warmup_candidates=(1,), warmup_iterations=(3,), batch_real=8, mse_thresholds=(5e-5, 5e-6), eval_runs=1,
           eval_epochs=2, checkpoint_every=2,
           description="seconds: bundled Fashion-MNIST, a few DM iterations (the tests)"),
)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ConfigError listing the names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
