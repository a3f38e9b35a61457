#!/usr/bin/env bash
# One prepared GPU check for ddfast (must finish in under 8 minutes on an H100/H200):
#   install the package, build the CUDA rANS module, run the GPU tests (Triton kernels natively,
#   CUDA rANS bit-exactness, the codec on the GPU) and the GPU benchmarks, and write every log and
#   figure to $OUT (when set) or ./device-results.
# Usage, from the repository root:  bash benchmarks/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-./device-results}"
mkdir -p "$RESULTS"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
started=$(date +%s)
step() { echo "== $(( $(date +%s) - started ))s: $*" | tee -a "$RESULTS/summary.txt"; }

step "environment"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; "$PY" -c \
  "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"; \
  } > "$RESULTS/environment.txt" 2>&1
cat "$RESULTS/environment.txt"

# Wheels the GPU machine may lack (it has no network): put them in .whl/ beside the repository.
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/ddfast-site .whl/*.whl
    export PYTHONPATH="/tmp/ddfast-site${PYTHONPATH:+:$PYTHONPATH}"
fi

step "install (C++ extension built by pip)"
MAX_JOBS=16 "$PY" -m pip install --no-build-isolation --no-deps -e . > "$RESULTS/install.log" 2>&1 \
    || { echo "install failed, see install.log"; tail -20 "$RESULTS/install.log"; }

step "build the CUDA rANS module"
timeout 240 "$PY" -c "import torch; from ddfast.rans import _cuda; major, minor = torch.cuda.get_device_capability(); \
print(_cuda._build(f'sm_{major}{minor}'))" > "$RESULTS/cuda_build.log" 2>&1
tail -3 "$RESULTS/cuda_build.log"

step "GPU tests"
timeout 240 "$PY" -m pytest -q -rs tests/test_triton_ops.py tests/test_rans.py tests/test_rans_cuda.py \
    tests/test_rans_incremental.py tests/test_codec_batched.py \
    -p no:cacheprovider > "$RESULTS/tests.log" 2>&1
tail -5 "$RESULTS/tests.log"

step "kernel benchmarks"
timeout 180 "$PY" benchmarks/kernels.py --json > "$RESULTS/kernels.log" 2>&1
tail -25 "$RESULTS/kernels.log"

step "rANS throughput, CPU and CUDA lanes"
timeout 60 "$PY" benchmarks/rans_throughput.py --cuda --repeats 3 --json > "$RESULTS/rans.log" 2>&1
tail -4 "$RESULTS/rans.log"

step "batched vs per-slice training step on the GPU"
timeout 60 "$PY" benchmarks/train_step.py --repeats 5 --json > "$RESULTS/train_step.log" 2>&1
tail -4 "$RESULTS/train_step.log"

step "decode latency of the Table A7 configurations on the GPU"
timeout 240 "$PY" benchmarks/decode_latency.py --device cuda --repeat 10 --json > "$RESULTS/decode_latency.log" 2>&1
tail -20 "$RESULTS/decode_latency.log"

step "done"
