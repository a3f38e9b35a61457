// CUDA wavefront decoder of .ddf latents behind latent_cuda.h: one thread block per unit runs the
// same steps as the CPU decoder (latent_codec.cpp, decode_unit) with the same shared arithmetic
// (latent_coder.h, rans_coder.h): at every step the block's threads compute the integer ARM of
// all active latents of the unit, then each lane's thread decodes the lane's symbols of that
// step. One launch decodes every unit of every slice.
#include "latent_coder.h"
#include "latent_cuda.h"

namespace ddfast {
namespace {

__device__ const uint32_t kDevInvScale[DDF_LAPLACE_INV_SCALE_SIZE] = DDF_LAPLACE_INV_SCALE_INIT;
__device__ const uint32_t kDevExp2[DDF_LAPLACE_EXP2_SIZE] = DDF_LAPLACE_EXP2_INIT;

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    decode_kernel(const uint32_t* words, const int64_t* word_offsets, const latent::Unit* units, int64_t n_units,
                  const latent::Lane* lanes, const double* arm_w, const double* arm_b, int64_t w_stride,
                  int64_t b_stride, int32_t depth, latent::Geometry geo, const int32_t* support, int64_t images,
                  int32_t* latents, int32_t* scratch_mu, int32_t* scratch_ls, const int64_t* scratch_offsets,
                  uint64_t* lane_state, int64_t* lane_pos, uint8_t* status) {
    const laplace::Tables tables{kDevInvScale, kDevExp2, nullptr, nullptr};
    const int32_t rows = geo.grid_row[geo.n_grids];
    for (int64_t u = blockIdx.x; u < n_units; u += gridDim.x) {
        const latent::Unit unit = units[u];
        const latent::ArmWeights arm{geo.context, depth, arm_w + unit.slice * w_stride, arm_b + unit.slice * b_stride};
        const laplace::Support sup =
            laplace::make_support(support[2 * unit.slice], support[2 * unit.slice + 1], latent::kFrequencyFloor);
        int32_t* mu = scratch_mu + scratch_offsets[u];
        int32_t* ls = scratch_ls + scratch_offsets[u];
        int32_t* slice_latents = latents + static_cast<int64_t>(unit.slice) * images * geo.image_latents;
        for (int32_t l = threadIdx.x; l < unit.lane_count; l += blockDim.x) {
            const int64_t lane = unit.lane_begin + l;
            const rans::LaneDecoder d =
                rans::start_lane(words + word_offsets[lane], word_offsets[lane + 1] - word_offsets[lane]);
            lane_state[lane] = d.x;
            lane_pos[lane] = d.pos;
            status[lane] = d.status;
        }
        for (int32_t step = 0; step < geo.steps; ++step) {
            const int32_t active = latent::active_per_image(geo, step);
            const int64_t total = static_cast<int64_t>(active) * unit.image_count;
            for (int64_t p = threadIdx.x; p < total; p += blockDim.x) {
                const int32_t i = static_cast<int32_t>(p / active);
                int grid;
                int32_t r;
                latent::active_position(geo, step, static_cast<int32_t>(p % active), grid, r);
                const int32_t* image = slice_latents + static_cast<int64_t>(unit.image_begin + i) * geo.image_latents;
                const int64_t k = static_cast<int64_t>(i) * rows + geo.grid_row[grid] + r;
                latent::arm_at(image, geo, arm, grid, r, step - geo.shift * r, mu[k], ls[k]);
            }
            __syncthreads();
            for (int32_t l = threadIdx.x; l < unit.lane_count; l += blockDim.x) {
                const int64_t lane = unit.lane_begin + l;
                rans::LaneDecoder d{lane_state[lane], lane_pos[lane], status[lane]};
                latent::decode_lane_step(d, words + word_offsets[lane], geo, unit, lanes[lane], step, mu, ls,
                                         slice_latents, sup, tables);
                lane_state[lane] = d.x;
                lane_pos[lane] = d.pos;
                status[lane] = d.status;
            }
            __syncthreads();
        }
        for (int32_t l = threadIdx.x; l < unit.lane_count; l += blockDim.x) {
            const int64_t lane = unit.lane_begin + l;
            const rans::LaneDecoder d{lane_state[lane], lane_pos[lane], status[lane]};
            status[lane] = rans::end_status(d);
        }
        __syncthreads();
    }
}

}  // namespace
}  // namespace ddfast

extern "C" {

int ddf_latent_cuda_decode(const uint32_t* words, const int64_t* word_offsets, const int32_t* units,
                           int64_t n_units, const int32_t* lanes, int64_t n_lanes, const double* arm_w,
                           const double* arm_b, int32_t depth, const int32_t* grid_shapes, int32_t n_grids,
                           const int32_t* offsets, int32_t context, int32_t shift, const int32_t* support,
                           int64_t images, int32_t* latents, int32_t* scratch_mu, int32_t* scratch_ls,
                           const int64_t* scratch_offsets, uint64_t* lane_state, int64_t* lane_pos,
                           uint8_t* status, cudaStream_t stream) {
    using namespace ddfast;
    latent::Geometry geo;
    if (!latent::make_geometry(grid_shapes, n_grids, offsets, context, shift, geo) || depth < 0) {
        return cudaErrorInvalidValue;
    }
    if (n_units == 0 || n_lanes == 0) return cudaSuccess;
    const int64_t w_stride = static_cast<int64_t>(depth) * context * context + 2 * context;
    const int64_t b_stride = static_cast<int64_t>(depth) * context + 2;
    const unsigned grid = static_cast<unsigned>(n_units < (1 << 30) ? n_units : (1 << 30));
    decode_kernel<<<grid, kThreads, 0, stream>>>(
        words, word_offsets, reinterpret_cast<const latent::Unit*>(units), n_units,
        reinterpret_cast<const latent::Lane*>(lanes), arm_w, arm_b, w_stride, b_stride, depth, geo, support, images,
        latents, scratch_mu, scratch_ls, scratch_offsets, lane_state, lane_pos, status);
    return cudaGetLastError();
}

}  // extern "C"
