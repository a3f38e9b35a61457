// C interface of the CUDA rANS kernels (rans_cuda_kernels.cu), loaded from Python with ctypes
// (ddfast/rans/_cuda.py). Every pointer is a device pointer; every function launches on `stream`
// and returns a cudaError_t code (0 = success; ddf_rans_cuda_error_string names the others).
// Lane l's symbols are [lane_offsets[l], lane_offsets[l + 1]) and its words
// [word_offsets[l], word_offsets[l + 1]); one thread codes one lane.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

extern "C" {

// Text of a cudaError_t code.
const char* ddf_rans_cuda_error_string(int code);

// Encode every lane into scratch (lane l at lane_offsets[l] + 2 l, room for n_l + 2 words);
// counts[l] receives the number of words of lane l.
int ddf_rans_cuda_encode(const int32_t* symbols, const int32_t* mu_q, const int32_t* ls_q,
                         const int64_t* lane_offsets, int64_t n_lanes, int64_t lo, int64_t hi,
                         uint32_t* scratch, int64_t* counts, cudaStream_t stream);

// Copy the lanes' words from scratch (layout of encode) to out at word_offsets (n_lanes + 1).
int ddf_rans_cuda_compact(const uint32_t* scratch, const int64_t* lane_offsets,
                          const int64_t* word_offsets, int64_t n_lanes, uint32_t* out,
                          cudaStream_t stream);

// Decode every lane; status[l] receives rans::end_status of lane l.
int ddf_rans_cuda_decode(const uint32_t* words, const int64_t* word_offsets, const int64_t* lane_offsets,
                         const int32_t* mu_q, const int32_t* ls_q, int64_t n_lanes, int64_t lo,
                         int64_t hi, int32_t* out, uint8_t* status, cudaStream_t stream);

// Incremental decoding: read every lane's initial state into (state, pos, status).
int ddf_rans_cuda_start(const uint32_t* words, const int64_t* word_offsets, int64_t n_lanes,
                        uint64_t* state, int64_t* pos, uint8_t* status, cudaStream_t stream);

// Incremental decoding: one symbol for each of the n lanes in lane_ids (an id outside
// [0, n_lanes) is skipped and yields lo; the Python side validates ids first).
int ddf_rans_cuda_step(const uint32_t* words, const int64_t* word_offsets, int64_t n_lanes,
                       uint64_t* state, int64_t* pos, uint8_t* status, const int64_t* lane_ids,
                       int64_t n, const int32_t* mu_q, const int32_t* ls_q, int64_t lo, int64_t hi,
                       int32_t* out, cudaStream_t stream);

}  // extern "C"
