#!/usr/bin/env bash
# One prepared GPU check for ddfast (under 10 minutes on an H100/H200 when the steps pass; every
# step has a timeout, and the steps run in order of importance, so a slow step cannot eat the rest):
#   install the package, build the CUDA module, run the GPU tests (Triton kernels natively, CUDA
#   rANS bit-exactness, the codec on the GPU, .ddf files decoded on the GPU bit-identically to the
#   CPU and back) and the GPU benchmarks (kernels, rANS, training step, .ddf decode latency), and
#   write every log and figure to $OUT (when set) or ./device-results.
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

step "build the CUDA module (rANS lanes, .ddf latent decoder)"
timeout 240 "$PY" -c "import torch; from ddfast.rans import _cuda; major, minor = torch.cuda.get_device_capability(); \
print(_cuda._build(f'sm_{major}{minor}'))" > "$RESULTS/cuda_build.log" 2>&1
tail -3 "$RESULTS/cuda_build.log"

step ".ddf on the GPU: CPU <-> GPU bit-identical decoding"
timeout 120 "$PY" -m pytest -q -rs tests/test_ddf_gpu.py -p no:cacheprovider > "$RESULTS/ddf_tests.log" 2>&1
tail -5 "$RESULTS/ddf_tests.log"

step "decode latency of the Table A7 configurations on the GPU"
timeout 200 "$PY" benchmarks/decode_latency.py --device cuda --repeat 10 --json > "$RESULTS/decode_latency.log" 2>&1
tail -20 "$RESULTS/decode_latency.log"

step "GPU tests: Triton kernels, CUDA rANS, the codec"
timeout 240 "$PY" -m pytest -q -rs tests/test_triton_ops.py tests/test_rans.py tests/test_rans_cuda.py \
    tests/test_rans_incremental.py tests/test_codec_batched.py -p no:cacheprovider > "$RESULTS/tests.log" 2>&1
tail -5 "$RESULTS/tests.log"

step "kernel benchmarks"
timeout 150 "$PY" benchmarks/kernels.py --json > "$RESULTS/kernels.log" 2>&1
tail -25 "$RESULTS/kernels.log"

step "rANS throughput, CPU and CUDA lanes"
timeout 60 "$PY" benchmarks/rans_throughput.py --cuda --repeats 3 --json > "$RESULTS/rans.log" 2>&1
tail -4 "$RESULTS/rans.log"

step "batched vs per-slice training step on the GPU"
timeout 60 "$PY" benchmarks/train_step.py --repeats 5 --json > "$RESULTS/train_step.log" 2>&1
tail -4 "$RESULTS/train_step.log"

step "done"
