// C interface of the CUDA latent decoder (latent_cuda_kernels.cu), loaded from Python with ctypes
// (ddfast/rans/_cuda.py, ddfast/coding/cuda_decoder.py). Arguments marked "host" point to host
// memory, every other pointer to device memory; the kernel runs on `stream` and the function
// returns a cudaError_t code (0 = success; cudaErrorInvalidValue for an invalid geometry).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

extern "C" {

// Wavefront decode of every unit of a lane plan, one thread block per unit (latent_coder.h).
//   words / word_offsets [n_lanes + 1]      the lanes' rANS words
//   units [n_units][5], lanes [n_lanes][2]  the plan (latent::Unit, latent::Lane)
//   arm_w [S][depth*C*C + 2C], arm_b [S][depth*C + 2]   fixed-point ARM weights as float64
//   grid_shapes [n_grids][2], offsets [context][2] (host)   the geometry
//   support [S][2]                          each slice's latent support (lo, hi)
//   latents [S][images][M] (zeroed by the caller), the output
//   scratch_mu / scratch_ls, scratch_offsets [n_units + 1]: image_count * rows entries per unit
//   lane_state / lane_pos / status [n_lanes]: lane decoder states; status ends as rans::Status
int ddf_latent_cuda_decode(const uint32_t* words, const int64_t* word_offsets, const int32_t* units,
                           int64_t n_units, const int32_t* lanes, int64_t n_lanes, const double* arm_w,
                           const double* arm_b, int32_t depth, const int32_t* grid_shapes, int32_t n_grids,
                           const int32_t* offsets, int32_t context, int32_t shift, const int32_t* support,
                           int64_t images, int32_t* latents, int32_t* scratch_mu, int32_t* scratch_ls,
                           const int64_t* scratch_offsets, uint64_t* lane_state, int64_t* lane_pos,
                           uint8_t* status, cudaStream_t stream);

}  // extern "C"
