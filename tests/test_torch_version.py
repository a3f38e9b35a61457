"""The torch pin of pyproject.toml is the lowest torch that has every torch.library feature ddfast
uses, and a Triton that fails to import (with any error) leaves ddfast usable on its other backends.

Only one torch is installed here, so the pin is checked against a table of first versions rather
than by installing the pinned torch.
"""
import ast
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import torch

import ddfast.ops
from ddfast.ops._registry import NAMESPACE

ROOT = Path(__file__).resolve().parents[1]

# First torch release with each torch.library feature, from PyTorch's release notes and the PRs that
# added them. API names are found in the source (calls, attributes, imports); the two type-hint
# features in the signatures of the registered ops, whose hints are their schemas.
FIRST_TORCH = {
    "custom_op": (2, 4),
    "register_fake": (2, 4),
    "register_autograd": (2, 4),
    "opcheck": (2, 4),
    "infer_schema": (2, 5),  # public from pytorch/pytorch#130079
    "triton_op": (2, 6),  # public from pytorch/pytorch#141880 (with wrap_triton, ex capture_triton)
    "wrap_triton": (2, 6),
    "string type hints": (2, 5),  # `from __future__ import annotations` in an op: pytorch/pytorch#128809
    "builtin list[...] type hints": (2, 7),  # list[Tensor] rather than typing.List[Tensor]: pytorch/pytorch#146594
}
_HINT_FEATURES = ("string type hints", "builtin list[...] type hints")
_APIS = set(FIRST_TORCH) - set(_HINT_FEATURES)


def _torch_pin() -> tuple[int, int]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib (to read pyproject.toml) is Python 3.11+")
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.groups() for d in dependencies if (m := re.fullmatch(r"torch\s*>=\s*(\d+)\.(\d+)(?:\.\d+)?", d))]
    assert len(pins) == 1, f"expected one 'torch>=X.Y' in {dependencies}"
    return int(pins[0][0]), int(pins[0][1])


def _apis_in_source() -> set[str]:
    """torch.library features named in ddfast's code and tests (attributes and ``from torch.library import``)."""
    used = set()
    for path in [*ROOT.joinpath("ddfast").rglob("*.py"), *ROOT.joinpath("kernels").glob("*.py"),
                 *ROOT.joinpath("tests").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in _APIS:
                used.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch.library"):
                used.update(alias.name for alias in node.names if alias.name in _APIS)
    return used


def _hint_features(fn: typing.Callable) -> set[str]:
    used = set()
    if any(isinstance(hint, str) for hint in fn.__annotations__.values()):
        used.add("string type hints")
    pending = list(typing.get_type_hints(fn).values())
    while pending:
        hint = pending.pop()
        if isinstance(hint, types.GenericAlias) and hint.__origin__ is list:  # not typing.List[...]
            used.add("builtin list[...] type hints")
        pending.extend(typing.get_args(hint))
    return used


def _registered_op_functions() -> dict[str, typing.Callable]:
    """The Python function behind every custom op in ddfast's namespace, all ddfast.ops modules imported."""
    for module in pkgutil.iter_modules(ddfast.ops.__path__):
        try:
            importlib.import_module(f"ddfast.ops.{module.name}")
        except ImportError as error:
            pytest.skip(f"ddfast.ops.{module.name} cannot be imported here, so its ops' hints cannot be read: {error}")
    from torch._library.custom_ops import OPDEFS
    return {name: op._init_fn for name, op in OPDEFS.items() if name.startswith(f"{NAMESPACE}::")}


def test_hint_features_are_detected():
    def plain(x: torch.Tensor, ws: typing.List[torch.Tensor]) -> typing.Tuple[torch.Tensor, torch.Tensor]: ...
    def builtin(x: torch.Tensor, ws: list[torch.Tensor]) -> torch.Tensor: ...
    def nested(x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]: ...
    stringly = types.FunctionType(plain.__code__, {"torch": torch, "typing": typing})
    stringly.__annotations__ = {"x": "torch.Tensor", "return": "torch.Tensor"}
    assert _hint_features(plain) == set()
    assert _hint_features(builtin) == _hint_features(nested) == {"builtin list[...] type hints"}
    assert _hint_features(stringly) == {"string type hints"}


def test_torch_pin_is_the_first_torch_with_every_feature_used():
    functions = _registered_op_functions()
    assert functions, "no custom op registered in the ddfast namespace"
    used = {api: set() for api in FIRST_TORCH}
    for api in _apis_in_source():
        used[api].add("source")
    for name, fn in functions.items():
        for feature in _hint_features(fn):
            used[feature].add(name)
    needed = max(FIRST_TORCH[feature] for feature, where in used.items() if where)
    report = "; ".join(f"{feature} ({'.'.join(map(str, FIRST_TORCH[feature]))}): {', '.join(sorted(where)[:3])}"
                       for feature, where in used.items() if where)
    pin = _torch_pin()
    assert pin == needed, f"pyproject.toml pins torch>={pin[0]}.{pin[1]}, the features used need {needed}: {report}"


_BROKEN_TRITON = r"""
import importlib, importlib.abc, sys
import torch
import torch._dynamo  # torch probes Triton itself here (catching ImportError only): done with the real one

class BrokenTriton(importlib.abc.MetaPathFinder):
    # a Triton whose import fails with something other than ImportError
    def find_spec(self, name, path=None, target=None):
        if name == "triton" or name.startswith("triton."):
            raise RuntimeError("0 active drivers ([]). There should only be 1.")

sys.meta_path.insert(0, BrokenTriton())
for name in [m for m in sys.modules if m == "triton" or m.startswith("triton.")]:
    del sys.modules[name]

import ddfast
from ddfast import ops
try:
    importlib.import_module("ddfast.ops.triton_ops")
except ImportError as error:
    print("ImportError:", error)
print("module:", ops._triton_module())
x = torch.tensor([0.0, 1.0, -2.0])
print("auto:", ops.resolve_backend("auto", x), ops.laplace_rate(x, torch.zeros(3), torch.zeros(3)).tolist())
try:
    ops.laplace_rate(x, x, x, backend="triton")
except ddfast.ConfigError as error:
    print("ConfigError:", error)
"""


def test_a_triton_that_fails_to_import_leaves_ddfast_usable():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-c", _BROKEN_TRITON], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    want_bits = ddfast.ops.laplace_rate(torch.tensor([0.0, 1.0, -2.0]), torch.zeros(3), torch.zeros(3),
                                        backend="torch").tolist()
    assert run.stdout.splitlines() == [
        "ImportError: ddfast's Triton kernels cannot be loaded: RuntimeError: 0 active drivers ([]). "
        "There should only be 1.",
        "module: None",
        f"auto: cpu {want_bits}",
        "ConfigError: the Triton backend needs the triton package (pip install triton)",
    ]
