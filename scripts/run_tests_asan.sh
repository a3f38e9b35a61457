#!/usr/bin/env bash
# Run the rANS tests against an AddressSanitizer-instrumented build of ddfast._cpu.
#
# Builds the module with DDFAST_ASAN=1 into a temporary folder, lays out a copy of the package
# (ddfast/, csrc/, scripts/, the rANS tests) with that module in it, and runs pytest there with
# libasan preloaded, and libstdc++ with it so that ASan finds the real __cxa_throw (python itself
# does not link libstdc++). Leak checking is off: the interpreter does not free everything.
# Extra arguments go to pytest. Usage: scripts/run_tests_asan.sh [-k PATTERN]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$repo"
DDFAST_ASAN=1 python setup.py -q build_ext --build-lib "$work/lib" --build-temp "$work/tmp"

tree="$work/tree"
mkdir -p "$tree/tests"
cp -r ddfast csrc scripts pyproject.toml "$tree/"
rm -f "$tree"/ddfast/_cpu*.so
cp "$work"/lib/ddfast/_cpu*.so "$tree/ddfast/"
cp tests/test_rans*.py "$tree/tests/"

cd "$tree"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
python -c "import ddfast._cpu as m, sys; assert m.__file__.startswith('$tree'), m.__file__"
python -m pytest -q -p no:cacheprovider tests "$@"
