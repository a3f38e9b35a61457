// The ARM's MLP on the CPU: `depth` layers h <- relu(h W_l + b_l) of width C = 16 * NV (the
// residual identity already folded into W_l), then a linear layer C -> 2 (mu, log-scale), over
// many latents; forward, and backward with the activations of a tile recomputed in L1.
//
// Rows are latents; a row of C floats is NV 16-lane vectors. A layer runs on blocks of P = 16 / NV
// rows: P * NV accumulators stay in registers while each weight row is loaded once per block and
// every input value is broadcast straight into a multiply-add. The weight gradient of a layer
// keeps 16 / NV of its rows in registers across the whole tile. The output layer is computed as a
// C -> 16 layer whose columns 2..15 are zero (cheaper than reducing two dot products per row).
// Binding-free: the pybind11 glue is in cpu_ops.cpp.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <utility>

#include "head_mlp.h"  // vec, load, store, splat, positive_part, DDF_INLINE

namespace ddfast {
namespace arm {

using head::load;
using head::splat;
using head::store;
using head::vec;
constexpr int LANES = head::LANES;
constexpr int OUT = 2;

// One slice's weights. w and wt hold `depth` C x C matrices each; wo is [C, 16] (columns >= 2
// zero), wot is [2, C].
struct Weights {
    int64_t depth;
    const float* w;    // [depth, C, C]: row i = the weights from input i
    const float* wt;   // [depth, C, C]: the same transposed
    const float* b;    // [depth, C]
    const float* wo;   // [C, 16]
    const float* bo;   // [16] (entries >= 2 zero)
    const float* wot;  // [2, C]
};

// out[p] = act(b + sum_i in[p][i] W[i]) for the T rows of a tile (T a multiple of P); b may be null.
template <int NV, int CO_V>
DDF_INLINE void rows_times(const float* in, int64_t rows, const float* w, const float* b, bool relu, float* out) {
    constexpr int C = NV * LANES, P = LANES / (CO_V > NV ? CO_V : NV);
    constexpr int CO = CO_V * LANES;
    for (int64_t p0 = 0; p0 < rows; p0 += P) {
        vec acc[P][CO_V];
        for (int p = 0; p < P; ++p)
            for (int v = 0; v < CO_V; ++v) acc[p][v] = b != nullptr ? load(b + v * LANES) : vec{};
        const float* x = in + p0 * C;
        for (int i = 0; i < C; ++i) {
            vec wr[CO_V];
            for (int v = 0; v < CO_V; ++v) wr[v] = load(w + i * CO + v * LANES);
            for (int p = 0; p < P; ++p) {
                const float a = x[p * C + i];
                for (int v = 0; v < CO_V; ++v) acc[p][v] += wr[v] * a;
            }
        }
        for (int p = 0; p < P; ++p)
            for (int v = 0; v < CO_V; ++v)
                store(out + (p0 + p) * CO + v * LANES, relu ? head::positive_part(acc[p][v]) : acc[p][v]);
    }
}

// gw[i] += sum_p in[p][i] * g[p] for a [C, C] weight gradient, 16 / NV of its rows at a time; gb += sum_p g[p].
template <int NV>
DDF_INLINE void accumulate_weight_grad(const float* in, const float* g, int64_t rows, float* gw, float* gb) {
    constexpr int C = NV * LANES, IC = LANES / NV;
    for (int i0 = 0; i0 < C; i0 += IC) {
        vec acc[IC][NV];
        for (int i = 0; i < IC; ++i)
            for (int v = 0; v < NV; ++v) acc[i][v] = vec{};
        for (int64_t p = 0; p < rows; ++p) {
            vec gr[NV];
            for (int v = 0; v < NV; ++v) gr[v] = load(g + p * C + v * LANES);
            for (int i = 0; i < IC; ++i) {
                const float a = in[p * C + i0 + i];
                for (int v = 0; v < NV; ++v) acc[i][v] += gr[v] * a;
            }
        }
        for (int i = 0; i < IC; ++i)
            for (int v = 0; v < NV; ++v) {
                float* dst = gw + (i0 + i) * C + v * LANES;
                store(dst, load(dst) + acc[i][v]);
            }
    }
    for (int v = 0; v < NV; ++v) {
        vec sum = vec{};
        for (int64_t p = 0; p < rows; ++p) sum += load(g + p * C + v * LANES);
        store(gb + v * LANES, load(gb + v * LANES) + sum);
    }
}

// Forward of a tile: acts[l] (l = 1..depth) = hidden activations, out16 = [T, 16] (mu, s in 0, 1).
template <int NV>
DDF_INLINE void forward_tile(const float* x, int64_t tile, const Weights& w, float* acts, float* out16) {
    constexpr int C = NV * LANES;
    const float* in = x;
    for (int64_t l = 0; l < w.depth; ++l) {
        float* out = acts + l * tile * C;
        rows_times<NV, NV>(in, tile, w.w + l * C * C, w.b + l * C, true, out);
        in = out;
    }
    rows_times<NV, 1>(in, tile, w.wo, w.bo, false, out16);
}

// Backward of a tile: gx = dL/dx ([T, C] scratch, may be null), gradients added into gw [depth, C, C], gb
// [depth, C], gwot [2, C], gbo [2]. go is [T, 2]; acts from forward_tile; g and g2 are [T, C] scratch.
template <int NV>
DDF_INLINE void backward_tile(const float* x, const float* go, int64_t tile, const Weights& w, const float* acts,
                              float* g, float* g2, float* gx, float* gw, float* gb, float* gwot, float* gbo) {
    constexpr int C = NV * LANES;
    const float* last = w.depth > 0 ? acts + (w.depth - 1) * tile * C : x;
    vec gwo[OUT][NV];
    for (int k = 0; k < OUT; ++k)
        for (int v = 0; v < NV; ++v) gwo[k][v] = vec{};
    float gb0 = 0.0f, gb1 = 0.0f;  // in registers: adding into gbo row by row would chain through memory
    for (int64_t p = 0; p < tile; ++p) {
        const float g0 = go[p * OUT], g1 = go[p * OUT + 1];
        gb0 += g0;
        gb1 += g1;
        for (int v = 0; v < NV; ++v) {
            const vec h = load(last + p * C + v * LANES);
            gwo[0][v] += h * g0;
            gwo[1][v] += h * g1;
            store(g + p * C + v * LANES, load(w.wot + v * LANES) * g0 + load(w.wot + C + v * LANES) * g1);
        }
    }
    gbo[0] += gb0;
    gbo[1] += gb1;
    for (int k = 0; k < OUT; ++k)
        for (int v = 0; v < NV; ++v) store(gwot + k * C + v * LANES, load(gwot + k * C + v * LANES) + gwo[k][v]);
    for (int64_t l = w.depth - 1; l >= 0; --l) {
        const float* out = acts + l * tile * C;
        const float* in = l > 0 ? acts + (l - 1) * tile * C : x;
        for (int64_t e = 0; e < tile * C; e += LANES) store(g + e, head::gate(load(out + e), load(g + e)));
        accumulate_weight_grad<NV>(in, g, tile, gw + l * C * C, gb + l * C);
        if (l > 0 || gx != nullptr) {
            rows_times<NV, NV>(g, tile, w.wt + l * C * C, nullptr, false, l > 0 ? g2 : gx);  // gx: [T, C]
            if (l > 0) std::swap(g, g2);
        }
    }
    if (w.depth == 0 && gx != nullptr) std::copy(g, g + tile * C, gx);
}

}  // namespace arm
}  // namespace ddfast
