"""Build script: the pure-Python package plus the C++ extension ``ddfast._cpu``.

The extension is compiled with pybind11 headers and driven by ninja (no torch at build time).
Every ``csrc/*.cpp`` file is part of the module; headers in ``csrc/`` are shared with the CUDA build.
The CUDA sources (rANS lanes, .ddf latent decoder) are shipped as package data (``ddfast/rans/_csrc``)
and compiled with nvcc on first use on a machine with a GPU (``ddfast/rans/_cuda.py``).
``DDFAST_ASAN=1`` builds an AddressSanitizer-instrumented module (see ``scripts/run_tests_asan.sh``).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"


def _ninja_escape(path: str) -> str:
    return path.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


# Per-source flags on top of the common ones. The training kernels may fuse multiply-adds (the
# decoder's exact arithmetic elsewhere may not); -Wno-psabi: 64-byte vector types in the SSE/AVX2
# clones of always-inlined helpers.
FILE_FLAGS = {name: ["-ffp-contract=fast", "-Wno-psabi"] for name in ("cpu_ops.cpp", "cpu_image_ops.cpp")}


class NinjaBuildExt(build_ext):
    """Compile each extension by writing a build.ninja file and running ninja on it."""

    def build_extension(self, ext: Extension) -> None:
        import pybind11

        out_path = Path(self.get_ext_fullpath(ext.name)).resolve()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        build_dir = Path(self.build_temp).resolve() / ext.name.replace(".", "_")
        build_dir.mkdir(parents=True, exist_ok=True)

        cxx = os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++"
        includes = [pybind11.get_include(), sysconfig.get_paths()["include"], str(CSRC)]
        cflags = ["-O3", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-ffp-contract=off", "-fno-trapping-math",
                  "-Wall", "-Wextra", "-Wno-unused-parameter"]
        cflags += list(ext.extra_compile_args or [])
        cflags += [f"-I{inc}" for inc in includes]
        ldflags = ["-shared"] + list(ext.extra_link_args or [])
        if sys.platform == "darwin":
            ldflags += ["-undefined", "dynamic_lookup"]

        lines = [
            "ninja_required_version = 1.3",
            f"cxx = {cxx}",
            f"cflags = {' '.join(shlex.quote(f) for f in cflags)}",
            f"ldflags = {' '.join(shlex.quote(f) for f in ldflags)}",
            "rule compile",
            "  command = $cxx -MMD -MF $out.d $cflags -c $in -o $out",
            "  depfile = $out.d",
            "  deps = gcc",
            "  description = compile $in",
            "rule link",
            "  command = $cxx $in $ldflags -o $out",
            "  description = link $out",
        ]
        objects = []
        for src in ext.sources:
            src_path = (ROOT / src).resolve()
            obj = build_dir / (Path(src).stem + ".o")
            objects.append(_ninja_escape(str(obj)))
            lines.append(f"build {_ninja_escape(str(obj))}: compile {_ninja_escape(str(src_path))}")
            extra = FILE_FLAGS.get(Path(src).name)
            if extra:
                lines.append(f"  cflags = $cflags {' '.join(shlex.quote(f) for f in extra)}")
        lines.append(f"build {_ninja_escape(str(out_path))}: link {' '.join(objects)}")
        (build_dir / "build.ninja").write_text("\n".join(lines) + "\n")

        ninja = self._find_ninja()
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.run([ninja, "-C", str(build_dir), "-j", jobs], check=True)

    @staticmethod
    def _find_ninja() -> str:
        try:
            import ninja

            return str(Path(ninja.BIN_DIR) / "ninja")
        except ImportError:
            return "ninja"


CUDA_SOURCE_GLOBS = ("*.cu", "rans_*.h", "laplace_*.h", "latent_*.h")


class BuildPyWithCudaSources(build_py):
    """Also copy the CUDA sources into the package (ddfast/rans/_csrc) for nvcc at first use."""

    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "ddfast" / "rans" / "_csrc"
        dest.mkdir(parents=True, exist_ok=True)
        for pattern in CUDA_SOURCE_GLOBS:
            for src in CSRC.glob(pattern):
                shutil.copy2(src, dest / src.name)


def _asan_flags() -> tuple[list[str], list[str]]:
    """Compile and link flags of an AddressSanitizer build (DDFAST_ASAN=1), else none."""
    if os.environ.get("DDFAST_ASAN") == "1":
        return ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"], ["-fsanitize=address"]
    return [], []


def _cpu_extension() -> Extension:
    sources = sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.cpp"))
    asan_compile, asan_link = _asan_flags()
    return Extension(
        "ddfast._cpu",
        sources=sources,
        extra_compile_args=["-fopenmp", *asan_compile],
        extra_link_args=["-fopenmp", *asan_link],
    )


packages = find_packages(include=["ddfast", "ddfast.*"]) + ["ddfast.kernels"]

setup(
    packages=packages,
    package_dir={"ddfast.kernels": "kernels"},
    ext_modules=[_cpu_extension()],
    cmdclass={"build_ext": NinjaBuildExt, "build_py": BuildPyWithCudaSources},
)
