// The integer ARM of latent_coder.h on the CPU, vectorized across positions: contexts are
// gathered into blocks of kBlock positions (structure of arrays, one row of kBlock values per
// context entry), and every layer runs as broadcast-weight multiply-adds over the block (the
// `omp simd` loops; GCC does not find this vectorization on its own). The arithmetic is the exact
// integer arithmetic of latent::arm_eval (float64 holding integers below 2^53), so both give
// identical (MU, LS); tests compare them.
#pragma once

#include <cstdint>

#include "latent_coder.h"
#include "multiversion.h"

namespace ddfast {
namespace latent {

constexpr int kBlock = 16;

// Outputs produced together by one pass over the inputs (their accumulators stay in registers).
constexpr int kOutGroup = 4;

// The ARM on n <= kBlock positions whose contexts are ctx[i * kBlock + p] (raw integer latents).
// C must be a multiple of kOutGroup.
template <int C>
__attribute__((always_inline)) inline void arm_block_t(const double* ctx, const ArmWeights& a, int n, int32_t* mu_q,
                                                       int32_t* ls_q) {
    static_assert(C % kOutGroup == 0, "C must be a multiple of the output group");
    double h[C][kBlock];
    double next[C][kBlock];
    for (int i = 0; i < C; ++i)
        for (int p = 0; p < kBlock; ++p) h[i][p] = ctx[i * kBlock + p] * (1 << kFracBits);
    const double* w = a.w;
    const double* b = a.b;
    for (int layer = 0; layer < a.depth; ++layer) {
        for (int j0 = 0; j0 < C; j0 += kOutGroup) {
            double acc[kOutGroup][kBlock];
            for (int jj = 0; jj < kOutGroup; ++jj)
#pragma omp simd
                for (int p = 0; p < kBlock; ++p) acc[jj][p] = b[j0 + jj];
            for (int i = 0; i < C; ++i) {
                for (int jj = 0; jj < kOutGroup; ++jj) {
                    const double wij = w[i * C + j0 + jj];
#pragma omp simd
                    for (int p = 0; p < kBlock; ++p) acc[jj][p] += h[i][p] * wij;
                }
            }
            for (int jj = 0; jj < kOutGroup; ++jj)
#pragma omp simd
                for (int p = 0; p < kBlock; ++p) next[j0 + jj][p] = relu_shift(acc[jj][p]);
        }
        for (int i = 0; i < C; ++i)
            for (int p = 0; p < kBlock; ++p) h[i][p] = next[i][p];
        w += C * C;
        b += C;
    }
    double out[2][kBlock];
    for (int k = 0; k < 2; ++k) {
        for (int p = 0; p < kBlock; ++p) out[k][p] = b[k];
        for (int i = 0; i < C; ++i) {
            const double wki = w[k * C + i];
#pragma omp simd
            for (int p = 0; p < kBlock; ++p) out[k][p] += h[i][p] * wki;
        }
    }
    for (int p = 0; p < n; ++p) {
        mu_q[p] = clamp32(round_shift(out[0][p]), -kMuLimit, kMuLimit);
        ls_q[p] = clamp32(sat32(static_cast<int64_t>(round_shift(out[1][p])) - kLogScaleOffset), kLsMin, kLsMax);
    }
}

// The ARM on a block (any supported C; others fall back to the scalar arm_eval).
DDFAST_MULTIVERSION
inline void arm_block(const double* ctx, const ArmWeights& a, int n, int32_t* mu_q, int32_t* ls_q) {
    switch (a.context) {
        case 8: arm_block_t<8>(ctx, a, n, mu_q, ls_q); return;
        case 16: arm_block_t<16>(ctx, a, n, mu_q, ls_q); return;
        case 24: arm_block_t<24>(ctx, a, n, mu_q, ls_q); return;
        case 32: arm_block_t<32>(ctx, a, n, mu_q, ls_q); return;
        case 64: arm_block_t<64>(ctx, a, n, mu_q, ls_q); return;
        default: break;
    }
    for (int p = 0; p < n; ++p) {
        int32_t c[kMaxContext];
        for (int i = 0; i < a.context; ++i) c[i] = static_cast<int32_t>(ctx[i * kBlock + p]);
        arm_eval(c, a, mu_q[p], ls_q[p]);
    }
}

// Queues positions and runs the ARM block by block; results land where add() was told.
class ArmBatch {
public:
    ArmBatch(const Geometry& geo, const ArmWeights& arm) : geo_(geo), arm_(arm) {}

    void add(const int32_t* image, int grid, int32_t y, int32_t x, int32_t* mu_out, int32_t* ls_out) {
        int32_t c[kMaxContext];
        gather_context(image, geo_, grid, y, x, c);
        for (int i = 0; i < geo_.context; ++i) ctx_[i * kBlock + n_] = c[i];
        mu_out_[n_] = mu_out;
        ls_out_[n_] = ls_out;
        if (++n_ == kBlock) flush();
    }

    void flush() {
        if (n_ == 0) return;
        for (int i = 0; i < geo_.context; ++i)
            for (int p = n_; p < kBlock; ++p) ctx_[i * kBlock + p] = 0.0;
        int32_t mu[kBlock], ls[kBlock];
        arm_block(ctx_, arm_, n_, mu, ls);
        for (int p = 0; p < n_; ++p) {
            *mu_out_[p] = mu[p];
            *ls_out_[p] = ls[p];
        }
        n_ = 0;
    }

private:
    const Geometry& geo_;
    const ArmWeights& arm_;
    double ctx_[kMaxContext * kBlock];
    int32_t* mu_out_[kBlock];
    int32_t* ls_out_[kBlock];
    int n_ = 0;
};

}  // namespace latent
}  // namespace ddfast
