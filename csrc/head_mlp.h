// The synthesis head on the CPU: y = relu(x W1 + b1) W2 + b2 over pixels, fused, for C0 <= 8
// inputs, any hidden width H and C2 <= 4 outputs (the 1x1 layers of the v4 decoders: 6 -> D -> 3).
//
// No hidden activation ever leaves the registers:
// - forward: 32 pixels at a time in two 16-lane vectors; for each hidden unit j, its
//   pre-activation over those pixels, ReLU, and its contribution to the outputs;
// - backward, input gradient (pass A): the same walk over hidden units, recomputing the
//   pre-activation, gating dL/dh_j = sum_k g_k W2[j, k] by it, and accumulating gx = sum_j dh_j W1[:, j];
// - backward, weight gradients (pass B): 16 hidden units per vector; for each pixel of a tile the
//   pre-activation and dL/dh of those units, accumulated into dW1, dW2 and db1 that stay in registers
//   across the tile.
// Every function works on one slice's rows; the caller splits slices and pixel tiles over threads.
// Binding-free: the pybind11 glue is in cpu_ops.cpp. Vectors are GCC vector extensions, so each
// multiversioned caller compiles them for AVX-512, AVX2 or SSE.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ddfast {
namespace head {

constexpr int LANES = 16;
constexpr int MAX_IN = 8;
constexpr int MAX_OUT = 4;
typedef float vec __attribute__((vector_size(64)));

#define DDF_INLINE __attribute__((always_inline)) inline

DDF_INLINE vec splat(float a) { return vec{} + a; }
DDF_INLINE vec load(const float* p) {
    vec v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
DDF_INLINE void store(float* p, vec v) { std::memcpy(p, &v, sizeof v); }
DDF_INLINE vec positive_part(vec a) { return a > 0.0f ? a : vec{}; }
DDF_INLINE vec gate(vec a, vec g) { return a > 0.0f ? g : vec{}; }

// Rows [0, n) of a [rows, C] pixel-major block as C vectors of LANES pixels (lanes >= n are 0).
template <int C>
DDF_INLINE void gather_lanes(const float* src, int64_t n, vec* out) {
    alignas(64) float t[C][LANES];
    for (int c = 0; c < C; ++c)
        for (int p = 0; p < LANES; ++p) t[c][p] = 0.0f;
    for (int64_t p = 0; p < n; ++p)
        for (int c = 0; c < C; ++c) t[c][p] = src[p * C + c];
    for (int c = 0; c < C; ++c) out[c] = load(t[c]);
}

// The first n lanes of C vectors back into a [n, C] pixel-major block.
template <int C>
DDF_INLINE void scatter_lanes(const vec* in, int64_t n, float* dst) {
    alignas(64) float t[C][LANES];
    for (int c = 0; c < C; ++c) store(t[c], in[c]);
    for (int64_t p = 0; p < n; ++p)
        for (int c = 0; c < C; ++c) dst[p * C + c] = t[c][p];
}

// One slice's weights in the layouts the passes read. H_pad = H rounded up to LANES; padded
// entries are zero, which keeps padded hidden units at pre-activation 0 (gated off).
struct Weights {
    int64_t hidden;
    const float* w1t;   // [H, C0]: row j holds hidden unit j's input weights
    const float* b1;    // [H]
    const float* w2;    // [H, C2]
    const float* b2;    // [C2]
    const float* w1p;   // [C0, H_pad]
    const float* w2tp;  // [C2, H_pad]
    const float* b1p;   // [H_pad]
};

DDF_INLINE int64_t padded(int64_t hidden) { return (hidden + LANES - 1) / LANES * LANES; }

// y[rows, C2] = relu(x[rows, C0] W1 + b1) W2 + b2.
template <int C0, int C2>
DDF_INLINE void forward_rows(const float* x, int64_t rows, const Weights& w, float* y) {
    for (int64_t p0 = 0; p0 < rows; p0 += 2 * LANES) {
        const int64_t n = std::min<int64_t>(2 * LANES, rows - p0);
        const int64_t na = std::min<int64_t>(LANES, n), nb = n - na;
        vec xa[C0], xb[C0], ya[C2], yb[C2];
        gather_lanes<C0>(x + p0 * C0, na, xa);
        gather_lanes<C0>(x + (p0 + na) * C0, nb, xb);
        for (int k = 0; k < C2; ++k) ya[k] = yb[k] = splat(w.b2[k]);
        for (int64_t j = 0; j < w.hidden; ++j) {
            const float* wj = w.w1t + j * C0;
            vec a = splat(w.b1[j]), b = a;
            for (int i = 0; i < C0; ++i) {
                a += xa[i] * wj[i];
                b += xb[i] * wj[i];
            }
            a = positive_part(a);
            b = positive_part(b);
            const float* vj = w.w2 + j * C2;
            for (int k = 0; k < C2; ++k) {
                ya[k] += a * vj[k];
                yb[k] += b * vj[k];
            }
        }
        scatter_lanes<C2>(ya, na, y + p0 * C2);
        if (nb > 0) scatter_lanes<C2>(yb, nb, y + (p0 + na) * C2);
    }
}

// Pass A: gx[rows, C0] = the input gradient for output gradient g[rows, C2].
template <int C0, int C2>
DDF_INLINE void input_grad_rows(const float* x, const float* g, int64_t rows, const Weights& w, float* gx) {
    for (int64_t p0 = 0; p0 < rows; p0 += LANES) {
        const int64_t n = std::min<int64_t>(LANES, rows - p0);
        vec xv[C0], gv[C2], acc[C0];
        gather_lanes<C0>(x + p0 * C0, n, xv);
        gather_lanes<C2>(g + p0 * C2, n, gv);
        for (int i = 0; i < C0; ++i) acc[i] = vec{};
        for (int64_t j = 0; j < w.hidden; ++j) {
            const float* wj = w.w1t + j * C0;
            const float* vj = w.w2 + j * C2;
            vec a = splat(w.b1[j]);
            for (int i = 0; i < C0; ++i) a += xv[i] * wj[i];
            vec dh = gv[0] * vj[0];
            for (int k = 1; k < C2; ++k) dh += gv[k] * vj[k];
            dh = gate(a, dh);
            for (int i = 0; i < C0; ++i) acc[i] += dh * wj[i];
        }
        scatter_lanes<C0>(acc, n, gx + p0 * C0);
    }
}

// Pass B: adds this block's dW1 ([C0, H_pad]), dW2 (transposed, [C2, H_pad]), db1 ([H_pad]) and
// db2 ([C2]) into the accumulators.
template <int C0, int C2>
DDF_INLINE void weight_grad_rows(const float* x, const float* g, int64_t rows, const Weights& w, float* gw1p,
                                 float* gw2tp, float* gb1p, float* gb2) {
    const int64_t hp = padded(w.hidden);
    float bias2[C2] = {};  // in registers: adding into gb2 pixel by pixel would chain through memory
    for (int64_t p = 0; p < rows; ++p)
        for (int k = 0; k < C2; ++k) bias2[k] += g[p * C2 + k];
    for (int k = 0; k < C2; ++k) gb2[k] += bias2[k];
    for (int64_t j0 = 0; j0 < hp; j0 += LANES) {
        vec w1c[C0], w2c[C2], d1[C0], d2[C2];
        for (int i = 0; i < C0; ++i) {
            w1c[i] = load(w.w1p + i * hp + j0);
            d1[i] = vec{};
        }
        for (int k = 0; k < C2; ++k) {
            w2c[k] = load(w.w2tp + k * hp + j0);
            d2[k] = vec{};
        }
        const vec b1c = load(w.b1p + j0);
        vec db = vec{};
        for (int64_t p = 0; p < rows; ++p) {
            const float* xp = x + p * C0;
            const float* gp = g + p * C2;
            vec a = b1c;
            for (int i = 0; i < C0; ++i) a += w1c[i] * xp[i];
            vec dh = w2c[0] * gp[0];
            for (int k = 1; k < C2; ++k) dh += w2c[k] * gp[k];
            dh = gate(a, dh);
            const vec h = positive_part(a);
            for (int k = 0; k < C2; ++k) d2[k] += h * gp[k];
            for (int i = 0; i < C0; ++i) d1[i] += dh * xp[i];
            db += dh;
        }
        for (int i = 0; i < C0; ++i) store(gw1p + i * hp + j0, load(gw1p + i * hp + j0) + d1[i]);
        for (int k = 0; k < C2; ++k) store(gw2tp + k * hp + j0, load(gw2tp + k * hp + j0) + d2[k]);
        store(gb1p + j0, load(gb1p + j0) + db);
    }
}

// Calls body.template operator()<C0, C2>() for the run-time (c0, c2); false if unsupported.
template <typename Body>
DDF_INLINE bool dispatch(int64_t c0, int64_t c2, Body&& body) {
#define DDF_HEAD_C2(C0_)                                          \
    switch (c2) {                                                 \
        case 1: body.template operator()<C0_, 1>(); return true;  \
        case 2: body.template operator()<C0_, 2>(); return true;  \
        case 3: body.template operator()<C0_, 3>(); return true;  \
        case 4: body.template operator()<C0_, 4>(); return true;  \
        default: return false;                                    \
    }
    switch (c0) {
        case 1: DDF_HEAD_C2(1)
        case 2: DDF_HEAD_C2(2)
        case 3: DDF_HEAD_C2(3)
        case 4: DDF_HEAD_C2(4)
        case 5: DDF_HEAD_C2(5)
        case 6: DDF_HEAD_C2(6)
        case 7: DDF_HEAD_C2(7)
        case 8: DDF_HEAD_C2(8)
        default: return false;
    }
#undef DDF_HEAD_C2
}

}  // namespace head
}  // namespace ddfast
