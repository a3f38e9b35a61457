// CUDA kernels of the rANS coder behind the C interface of rans_cuda.h: the same lane arithmetic
// as the CPU build (rans_coder.h, laplace_model.h), one thread per lane. The model tables live in
// device memory, initialized from the same generated header as the CPU copy.
#include "rans_coder.h"
#include "rans_cuda.h"

namespace ddfast {
namespace {

__device__ const uint32_t kDevInvScale[DDF_LAPLACE_INV_SCALE_SIZE] = DDF_LAPLACE_INV_SCALE_INIT;
__device__ const uint32_t kDevExp2[DDF_LAPLACE_EXP2_SIZE] = DDF_LAPLACE_EXP2_INIT;

constexpr int kThreads = 128;

__device__ __forceinline__ laplace::Tables device_tables() {
    return laplace::Tables{kDevInvScale, kDevExp2, nullptr, nullptr};
}

__device__ __forceinline__ int64_t thread_index() {
    return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__global__ void encode_kernel(const int32_t* sym, const int32_t* mu, const int32_t* ls,
                              const int64_t* lane_offsets, int64_t n_lanes, laplace::Support s,
                              uint32_t* scratch, int64_t* counts) {
    const int64_t l = thread_index();
    if (l >= n_lanes) return;
    const int64_t a = lane_offsets[l];
    counts[l] = rans::encode_lane(sym + a, mu + a, ls + a, lane_offsets[l + 1] - a, s, device_tables(),
                                  scratch + a + 2 * l);
}

// One block per lane (grid-stride over lanes), threads copy the lane's words.
__global__ void compact_kernel(const uint32_t* scratch, const int64_t* lane_offsets,
                               const int64_t* word_offsets, int64_t n_lanes, uint32_t* out) {
    for (int64_t l = blockIdx.x; l < n_lanes; l += gridDim.x) {
        const uint32_t* src = scratch + lane_offsets[l] + 2 * l;
        const int64_t begin = word_offsets[l];
        const int64_t n = word_offsets[l + 1] - begin;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) out[begin + i] = src[i];
    }
}

__global__ void decode_kernel(const uint32_t* words, const int64_t* word_offsets,
                              const int64_t* lane_offsets, const int32_t* mu, const int32_t* ls,
                              int64_t n_lanes, laplace::Support s, int32_t* out, uint8_t* status) {
    const int64_t l = thread_index();
    if (l >= n_lanes) return;
    const laplace::Tables t = device_tables();
    const uint32_t* w = words + word_offsets[l];
    rans::LaneDecoder d = rans::start_lane(w, word_offsets[l + 1] - word_offsets[l]);
    for (int64_t i = lane_offsets[l]; i < lane_offsets[l + 1]; ++i) {
        out[i] = rans::decode_symbol(d, w, mu[i], ls[i], s, t);
    }
    status[l] = rans::end_status(d);
}

__global__ void start_kernel(const uint32_t* words, const int64_t* word_offsets, int64_t n_lanes,
                             uint64_t* state, int64_t* pos, uint8_t* status) {
    const int64_t l = thread_index();
    if (l >= n_lanes) return;
    const rans::LaneDecoder d =
        rans::start_lane(words + word_offsets[l], word_offsets[l + 1] - word_offsets[l]);
    state[l] = d.x;
    pos[l] = d.pos;
    status[l] = d.status;
}

__global__ void step_kernel(const uint32_t* words, const int64_t* word_offsets, int64_t n_lanes,
                            uint64_t* state, int64_t* pos, uint8_t* status, const int64_t* lane_ids,
                            int64_t n, const int32_t* mu, const int32_t* ls, laplace::Support s,
                            int32_t* out) {
    const int64_t i = thread_index();
    if (i >= n) return;
    const int64_t l = lane_ids[i];
    if (l < 0 || l >= n_lanes) {
        out[i] = static_cast<int32_t>(s.lo);
        return;
    }
    rans::LaneDecoder d{state[l], pos[l], status[l]};
    out[i] = rans::decode_symbol(d, words + word_offsets[l], mu[i], ls[i], s, device_tables());
    state[l] = d.x;
    pos[l] = d.pos;
    status[l] = d.status;
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace
}  // namespace ddfast

using ddfast::blocks_for;
using ddfast::kThreads;
using ddfast::laplace::make_support;

extern "C" {

const char* ddf_rans_cuda_error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

int ddf_rans_cuda_encode(const int32_t* symbols, const int32_t* mu_q, const int32_t* ls_q,
                         const int64_t* lane_offsets, int64_t n_lanes, int64_t lo, int64_t hi,
                         uint32_t* scratch, int64_t* counts, cudaStream_t stream) {
    if (n_lanes == 0) return cudaSuccess;
    ddfast::encode_kernel<<<blocks_for(n_lanes), kThreads, 0, stream>>>(
        symbols, mu_q, ls_q, lane_offsets, n_lanes, make_support(lo, hi), scratch, counts);
    return cudaGetLastError();
}

int ddf_rans_cuda_compact(const uint32_t* scratch, const int64_t* lane_offsets,
                          const int64_t* word_offsets, int64_t n_lanes, uint32_t* out,
                          cudaStream_t stream) {
    if (n_lanes == 0) return cudaSuccess;
    const unsigned grid = static_cast<unsigned>(n_lanes < 65535 ? n_lanes : 65535);
    ddfast::compact_kernel<<<grid, kThreads, 0, stream>>>(scratch, lane_offsets, word_offsets, n_lanes, out);
    return cudaGetLastError();
}

int ddf_rans_cuda_decode(const uint32_t* words, const int64_t* word_offsets, const int64_t* lane_offsets,
                         const int32_t* mu_q, const int32_t* ls_q, int64_t n_lanes, int64_t lo,
                         int64_t hi, int32_t* out, uint8_t* status, cudaStream_t stream) {
    if (n_lanes == 0) return cudaSuccess;
    ddfast::decode_kernel<<<blocks_for(n_lanes), kThreads, 0, stream>>>(
        words, word_offsets, lane_offsets, mu_q, ls_q, n_lanes, make_support(lo, hi), out, status);
    return cudaGetLastError();
}

int ddf_rans_cuda_start(const uint32_t* words, const int64_t* word_offsets, int64_t n_lanes,
                        uint64_t* state, int64_t* pos, uint8_t* status, cudaStream_t stream) {
    if (n_lanes == 0) return cudaSuccess;
    ddfast::start_kernel<<<blocks_for(n_lanes), kThreads, 0, stream>>>(words, word_offsets, n_lanes, state,
                                                                        pos, status);
    return cudaGetLastError();
}

int ddf_rans_cuda_step(const uint32_t* words, const int64_t* word_offsets, int64_t n_lanes,
                       uint64_t* state, int64_t* pos, uint8_t* status, const int64_t* lane_ids,
                       int64_t n, const int32_t* mu_q, const int32_t* ls_q, int64_t lo, int64_t hi,
                       int32_t* out, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    ddfast::step_kernel<<<blocks_for(n), kThreads, 0, stream>>>(
        words, word_offsets, n_lanes, state, pos, status, lane_ids, n, mu_q, ls_q, make_support(lo, hi), out);
    return cudaGetLastError();
}

}  // extern "C"
