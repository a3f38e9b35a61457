"""The public API: every public name has a docstring, and a bare ``import ddfast`` reaches the subpackages.

Public means: the ``__all__`` of ``ddfast`` and of each of its modules and subpackages one level
down (a module without ``__all__``: the functions and classes it defines under a name without a
leading underscore), and the public methods and properties of those classes, including the ones
they inherit from other ddfast classes. A docstring is the object's own (a dataclass's generated
signature line does not count).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import pkgutil
import subprocess
import sys
import textwrap
import types

import pytest

import ddfast

SUBPACKAGES = ("codec", "coding", "data", "distill", "eval", "labels", "ops", "rans", "report")


def api_modules() -> list[str]:
    """``ddfast`` and its public modules and subpackages (no ``_cpu``, no ``__main__``)."""
    found = sorted(m.name for m in pkgutil.iter_modules(ddfast.__path__) if not m.name.startswith("_"))
    return ["ddfast", *(f"ddfast.{name}" for name in found)]


def public_names(module: types.ModuleType) -> list[str]:
    """``module.__all__``, or the public functions and classes defined in the module itself."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, value in vars(module).items() if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == module.__name__]


def _own_doc(obj) -> str:
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__") or ""
        if dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return ""  # the signature line that @dataclass writes when the class has no docstring
        return doc.strip()
    return (obj.__doc__ or "").strip()


def _function_of(attribute):
    """The function behind a class attribute (method, static/class method, property), or None."""
    if isinstance(attribute, property):
        return attribute.fget
    if isinstance(attribute, functools.cached_property):
        return attribute.func
    if isinstance(attribute, (staticmethod, classmethod)):
        return attribute.__func__
    return attribute if inspect.isfunction(attribute) else None


def undocumented(module: types.ModuleType, package: str = "ddfast") -> list[str]:
    """Public functions, classes, methods and properties of ``module`` without a docstring."""
    missing: set[str] = set()
    for name in public_names(module):
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue  # constants, tuples of names, submodules
        if not _own_doc(obj):
            missing.add(f"{obj.__module__}.{obj.__qualname__}")
        if not inspect.isclass(obj):
            continue
        for klass in obj.__mro__:
            if klass.__module__.split(".")[0] != package:
                continue  # torch.nn.Module's own methods, object, ...
            for attr_name, attribute in vars(klass).items():
                function = _function_of(attribute)
                if not attr_name.startswith("_") and function is not None and not _own_doc(function):
                    missing.add(f"{klass.__module__}.{klass.__qualname__}.{attr_name}")
    return sorted(missing)


@pytest.mark.parametrize("name", api_modules())
def test_every_public_name_has_a_docstring(name):
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip(), f"{name} has no module docstring"
    missing = undocumented(module)
    assert not missing, f"public names of {name} without a docstring (add a one-line docstring):\n" + "\n".join(missing)


def test_the_api_walk_covers_the_subpackages():
    modules = api_modules()
    assert {f"ddfast.{name}" for name in SUBPACKAGES} | {"ddfast.integrations", "ddfast.cli"} <= set(modules)
    assert "ddfast._cpu" not in modules and "ddfast.__main__" not in modules
    assert public_names(importlib.import_module("ddfast.cli")) == ["build_parser", "main"]


def test_undocumented_finds_each_kind_of_missing_docstring():
    module = types.ModuleType("pkg.mod", "A module.")

    def documented():
        """Yes."""

    def bare():
        pass

    @dataclasses.dataclass
    class Record:  # no docstring: @dataclass writes "Record(x: int)"
        x: int

        @property
        def double(self):
            return 2 * self.x

        def _private(self):
            pass

    class Base:
        """A base."""

        @staticmethod
        def helper():
            pass

    class Child(Base):
        """A child."""

        @classmethod
        def make(cls):
            """Documented."""

    for obj in (documented, bare, Record, Base, Child):
        obj.__module__, obj.__qualname__ = "pkg.mod", obj.__name__
        setattr(module, obj.__name__, obj)
    module.__all__ = ["documented", "bare", "Record", "Child", "CONSTANT"]
    module.CONSTANT = 3
    # Base is not listed, but Child inherits its undocumented helper.
    assert undocumented(module, package="pkg") == ["pkg.mod.Base.helper", "pkg.mod.Record", "pkg.mod.Record.double",
                                                   "pkg.mod.bare"]


def test_a_bare_import_reaches_the_subpackages_without_plotting_or_triton():
    code = textwrap.dedent("""
        import sys
        import ddfast
        print(sorted(m for m in ("matplotlib", "triton", "ddfast.cli", "ddfast.integrations") if m in sys.modules))
        train = ddfast.data.load("bundled")
        print(len(train), train.num_classes, train.image_size)
        for name in %r:
            print(name, getattr(ddfast, name).__name__)
        print(callable(ddfast.distill), ddfast.distill.DistributionMatching.__module__)
        print(ddfast.report.TABLE_A3 is ddfast.report.paper.TABLE_A3, ddfast.labels.soft_label_bits(10, 2 ** -8) > 0)
    """ % (SUBPACKAGES,))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[]",
        "500 10 (28, 28)",
        *(f"{name} ddfast.{name}" for name in SUBPACKAGES),
        "True ddfast.distill.losses.dm",
        "True True",
    ]
