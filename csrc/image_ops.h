// Small-channel image kernels of the training step on the CPU: the synthesis's 3x3 residual convs
// (replicate padding) and one level of the polyphase upsampling, forward and backward, one image
// plane at a time. Inner loops run along image rows (`omp simd`); the caller threads over planes.
// Every function is force-inlined: the glue's DDFAST_MULTIVERSION wrappers must compile these
// loops for AVX-512 / AVX2 (an out-of-line copy would be built for baseline x86-64 only).
// Binding-free: the pybind11 glue is in cpu_image_ops.cpp.
#pragma once

#include <algorithm>
#include <cstdint>

#include "head_mlp.h"  // vec, load, store, DDF_INLINE

namespace ddfast {
namespace img {

// [h, w] plane -> [h + 2r, w + 2r] with replicate padding.
DDF_INLINE void pad_plane(const float* src, int64_t h, int64_t w, int64_t r, float* dst) {
    const int64_t pw = w + 2 * r;
    for (int64_t y = -r; y < h + r; ++y) {
        const float* row = src + std::clamp<int64_t>(y, 0, h - 1) * w;
        float* out = dst + (y + r) * pw;
        for (int64_t x = 0; x < r; ++x) {
            out[x] = row[0];
            out[r + w + x] = row[w - 1];
        }
        std::copy(row, row + w, out + r);
    }
}

// Adjoint of pad_plane: adds a [h + 2r, w + 2r] gradient into the [h, w] plane.
DDF_INLINE void fold_plane(const float* src, int64_t h, int64_t w, int64_t r, float* dst) {
    const int64_t pw = w + 2 * r;
    for (int64_t y = -r; y < h + r; ++y) {
        float* row = dst + std::clamp<int64_t>(y, 0, h - 1) * w;
        const float* in = src + (y + r) * pw;
        for (int64_t x = 0; x < r; ++x) {
            row[0] += in[x];
            row[w - 1] += in[r + w + x];
        }
        for (int64_t x = 0; x < w; ++x) row[x] += in[r + x];
    }
}

// dst = res + the adjoint of pad_plane (r = 1) applied to gp [h + 2, w + 2]; res is read at pitch
// rp. Each row of dst is written once from its sources (adding into rows just copied stalls on
// store forwarding), then the padding rows and columns are folded onto the edges.
DDF_INLINE void fold_plane_onto(const float* gp, const float* res, int64_t rp, int64_t h, int64_t w, float* dst) {
    const int64_t pw = w + 2;
    for (int64_t y = 0; y < h; ++y) {
        const float *in = gp + (y + 1) * pw, *from = res + y * rp;
        float* out = dst + y * w;
#pragma omp simd
        for (int64_t u = 0; u < w; ++u) out[u] = from[u] + in[u + 1];
        out[0] += in[0];
        out[w - 1] += in[w + 1];
    }
    for (const int64_t y : {int64_t{0}, h + 1}) {
        const float* in = gp + y * pw;
        float* out = dst + (y == 0 ? 0 : h - 1) * w;
        out[0] += in[0];
        out[w - 1] += in[w + 1];
        for (int64_t u = 0; u < w; ++u) out[u] += in[u + 1];
    }
}

// One image between layouts: [hw, c] channels-last <-> [c, hw] planar. C > 0 fixes the channel
// count at compile time (the loops then vectorize with permutes); C = 0 reads it from c.
template <int C = 0>
DDF_INLINE void to_planar(const float* __restrict src, int64_t hw, int64_t c, float* __restrict dst) {
    const int64_t channels = C > 0 ? C : c;
    for (int64_t p = 0; p < hw; ++p)
        for (int64_t i = 0; i < channels; ++i) dst[i * hw + p] = src[p * channels + i];
}

template <int C = 0>
DDF_INLINE void to_channels_last(const float* __restrict src, int64_t hw, int64_t c, float* __restrict dst) {
    const int64_t channels = C > 0 ? C : c;
    for (int64_t p = 0; p < hw; ++p)
        for (int64_t i = 0; i < channels; ++i) dst[p * channels + i] = src[i * hw + p];
}

// sum_x a[x] * b[x], with four independent vector sums (one chain of multiply-adds would wait on
// each add's latency).
DDF_INLINE float dot(const float* a, const float* b, int64_t n) {
    using head::load;
    constexpr int64_t L = head::LANES;
    head::vec s0{}, s1{}, s2{}, s3{};
    int64_t x = 0;
    for (; x + 4 * L <= n; x += 4 * L) {
        s0 += load(a + x) * load(b + x);
        s1 += load(a + x + L) * load(b + x + L);
        s2 += load(a + x + 2 * L) * load(b + x + 2 * L);
        s3 += load(a + x + 3 * L) * load(b + x + 3 * L);
    }
    for (; x + L <= n; x += L) s0 += load(a + x) * load(b + x);
    const head::vec s = (s0 + s1) + (s2 + s3);
    float acc = 0.0f;
    for (int l = 0; l < L; ++l) acc += s[l];
    for (; x < n; ++x) acc += a[x] * b[x];
    return acc;
}

// dst[x] += k * src[x]
DDF_INLINE void axpy(float k, const float* src, int64_t n, float* dst) {
#pragma omp simd
    for (int64_t x = 0; x < n; ++x) dst[x] += k * src[x];
}

// The residual conv runs over whole planes at the padded pitch pw = w + 2: output pixel (r, u)
// sits at r * pw + u, so each of the 9 c c taps reads the plane shifted by a fixed offset (columns
// w and w + 1 of a pitched plane are junk on the way out and zero on the way back, so they add
// nothing). Each output plane is one pass of `correlate` (its taps' weights held in registers, four
// vectors of pixels per step, one store per vector); the input gradient is the same correlation run
// backwards over a zero-led copy of the output gradient. Padded scratch planes need 2 floats of
// slack after the last one.

// out[e] = init + sum_j wk[j] * src[off[j] + e] for e < n, added in order of j. K taps known at
// compile time (weights kept in registers) or K = 0: `taps` of them, weights read from memory.
template <int K>
DDF_INLINE void correlate(const float* src, const int64_t* off, const float* wk, int64_t taps, float init, int64_t n,
                          float* out) {
    using head::load;
    using head::splat;
    constexpr int64_t L = head::LANES, B = 4;
    const int64_t k_count = K > 0 ? K : taps;
    head::vec wv[K > 0 ? K : 1];
    if constexpr (K > 0)
        for (int j = 0; j < K; ++j) wv[j] = splat(wk[j]);
    int64_t e = 0;
    for (; e + B * L <= n; e += B * L) {
        head::vec a[B];
        for (int b = 0; b < B; ++b) a[b] = splat(init);
#pragma GCC unroll 32
        for (int64_t j = 0; j < k_count; ++j) {
            const float* at = src + off[j] + e;
            head::vec weight;
            if constexpr (K > 0) weight = wv[j];
            else weight = splat(wk[j]);
            for (int b = 0; b < B; ++b) a[b] += weight * load(at + b * L);
        }
        for (int b = 0; b < B; ++b) head::store(out + e + b * L, a[b]);
    }
    for (; e < n; ++e) {
        float a = init;
        for (int64_t j = 0; j < k_count; ++j) a += wk[j] * src[off[j] + e];
        out[e] = a;
    }
}

DDF_INLINE void correlate_any(const float* src, const int64_t* off, const float* wk, int64_t taps, float init,
                              int64_t n, float* out) {
    switch (taps) {
        case 9: return correlate<9>(src, off, wk, taps, init, n, out);
        case 18: return correlate<18>(src, off, wk, taps, init, n, out);
        case 27: return correlate<27>(src, off, wk, taps, init, n, out);
        default: return correlate<0>(src, off, wk, taps, init, n, out);
    }
}

// sums[j] += sum_e g[e] * src[off[j] + e] for j < K (all K sums in registers, g read once), e < n.
template <int K>
DDF_INLINE void tap_dots(const float* g, const float* src, const int64_t* off, int64_t n, float* sums) {
    using head::load;
    constexpr int64_t L = head::LANES;
    head::vec s[K] = {};
    int64_t e = 0;
    for (; e + L <= n; e += L) {
        const head::vec gv = load(g + e);
#pragma GCC unroll 32  // keeps the K sums in registers
        for (int j = 0; j < K; ++j) s[j] += gv * load(src + off[j] + e);
    }
    for (int j = 0; j < K; ++j) {
        float acc = 0.0f;
        for (int l = 0; l < L; ++l) acc += s[j][l];
        for (int64_t t = e; t < n; ++t) acc += g[t] * src[off[j] + t];
        sums[j] += acc;
    }
}

DDF_INLINE void tap_dots_any(const float* g, const float* src, const int64_t* off, int64_t taps, int64_t n,
                             float* sums) {
    switch (taps) {
        case 9: return tap_dots<9>(g, src, off, n, sums);
        case 18: return tap_dots<18>(g, src, off, n, sums);
        case 27: return tap_dots<27>(g, src, off, n, sums);
        default:
            for (int64_t j = 0; j < taps; ++j) sums[j] += dot(g, src + off[j], n);
    }
}

constexpr int64_t MAX_CONV_TAPS = 9 * 64;

// One image: y = act(conv3x3(pad(x), wt) + b + x), x and y [c, h, w] (c <= 64), wt [c, c, 3, 3]
// (out, in, dy, dx). Scratch: xp [c, h + 2, w + 2] (+ 2), acc [h, w + 2].
DDF_INLINE void conv3_forward(const float* x, int64_t c, int64_t h, int64_t w, const float* wt, const float* b,
                          bool relu, float* xp, float* acc, float* y) {
    const int64_t pw = w + 2, plane = (h + 2) * pw, n = h * pw, taps = 9 * c;
    int64_t off[MAX_CONV_TAPS];
    for (int64_t i = 0; i < c; ++i)
        for (int64_t dy = 0; dy < 3; ++dy)
            for (int64_t dx = 0; dx < 3; ++dx) off[(i * 3 + dy) * 3 + dx] = i * plane + dy * pw + dx;
    for (int64_t i = 0; i < c; ++i) pad_plane(x + i * h * w, h, w, 1, xp + i * plane);
    for (int64_t o = 0; o < c; ++o) {
        correlate_any(xp, off, wt + o * taps, taps, b[o], n, acc);
        for (int64_t r = 0; r < h; ++r) {
            const float *in = acc + r * pw, *res = x + (o * h + r) * w;
            float* out = y + (o * h + r) * w;
#pragma omp simd
            for (int64_t u = 0; u < w; ++u) {
                const float v = in[u] + res[u];
                out[u] = relu ? std::max(v, 0.0f) : v;
            }
        }
    }
}

// The stride of one channel of conv3_backward's gy scratch: a zero lead of 2 pw + 2 floats, the
// [h, pw] gradient plane, then zeros up to the padded plane's end and LANES floats of slack.
DDF_INLINE int64_t conv3_grad_stride(int64_t h, int64_t w) {
    const int64_t pw = w + 2;
    return (2 * pw + 2) + (h + 2) * pw + head::LANES;
}

// Backward of conv3_forward for one image, given its output y (for the ReLU's mask) and the output
// gradient g: gx (may be null) = the input gradient; gw [c, c, 3, 3] and gb [c] are added to.
// Scratch: xp and gp [c, h + 2, w + 2] (+ 2), gy [c, conv3_grad_stride(h, w)], zero on first use
// (only the gradient planes inside it are ever written).
DDF_INLINE void conv3_backward(const float* x, const float* y, const float* g, int64_t c, int64_t h, int64_t w,
                           const float* wt, bool relu, float* xp, float* gp, float* gy, float* gx, float* gw,
                           float* gb) {
    const int64_t pw = w + 2, plane = (h + 2) * pw, hw = h * w, n = h * pw, taps = 9 * c;
    const int64_t stride = conv3_grad_stride(h, w), lead = 2 * pw + 2;
    int64_t off[MAX_CONV_TAPS], back[MAX_CONV_TAPS];
    float wback[MAX_CONV_TAPS];
    for (int64_t i = 0; i < c; ++i)
        for (int64_t dy = 0; dy < 3; ++dy)
            for (int64_t dx = 0; dx < 3; ++dx) {
                off[(i * 3 + dy) * 3 + dx] = i * plane + dy * pw + dx;
                back[(i * 3 + dy) * 3 + dx] = i * stride + lead - dy * pw - dx;  // i plays the output channel o
            }
    for (int64_t i = 0; i < c; ++i) pad_plane(x + i * hw, h, w, 1, xp + i * plane);
    for (int64_t o = 0; o < c; ++o)
        for (int64_t r = 0; r < h; ++r) {
            const int64_t e = (o * h + r) * w;
            float* row = gy + o * stride + lead + r * pw;
            if (relu) {
#pragma omp simd
                for (int64_t u = 0; u < w; ++u) row[u] = y[e + u] > 0.0f ? g[e + u] : 0.0f;
            } else {
                std::copy(g + e, g + e + w, row);
            }
            row[w] = row[w + 1] = 0.0f;
        }
    for (int64_t o = 0; o < c; ++o) {
        const float* go = gy + o * stride + lead;
        float bias = 0.0f;
#pragma omp simd reduction(+ : bias)
        for (int64_t e = 0; e < n; ++e) bias += go[e];
        gb[o] += bias;
        tap_dots_any(go, xp, off, taps, n, gw + o * taps);
    }
    if (gx == nullptr) return;
    for (int64_t i = 0; i < c; ++i) {
        for (int64_t j = 0; j < taps; ++j) wback[j] = wt[(j / 9 * c + i) * 9 + j % 9];  // wt[o, i, dy, dx]
        correlate_any(gy, back, wback, taps, 0.0f, plane, gp + i * plane);
        fold_plane_onto(gp + i * plane, gy + i * stride + lead, pw, h, w, gx + i * hw);  // + the residual path
    }
}

// Upsampling planes at most LANES wide (the coarse grids of every image size here): a row is one
// vector, the two column phases of an output row are accumulated in registers and interleaved
// with shuffles. Rows are read LANES floats at a time, so the padded plane xp (and gp) needs
// LANES readable floats past its end; lanes past the row meet zero gradients and add nothing.
namespace narrow {

using head::load;
using head::store;
using head::vec;
constexpr int LANES = head::LANES;
typedef int32_t lane_index __attribute__((vector_size(64)));
constexpr lane_index INTERLEAVE_LO = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
constexpr lane_index INTERLEAVE_HI = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
constexpr lane_index EVEN = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
constexpr lane_index ODD = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};

DDF_INLINE void forward(const float* xp, int64_t pw, int64_t h, const float* taps, int64_t t, int64_t oh,
                        int64_t ow, float* out) {
    alignas(64) float line[2 * LANES];
    for (int64_t v = 0; v < h; ++v)
        for (int64_t qy = 0; qy < 2 && 2 * v + qy < oh; ++qy) {
            const float *k0 = taps + 2 * qy * t * t, *k1 = k0 + t * t;
            vec even{}, odd{};
            for (int64_t a = 0; a < t; ++a)
                for (int64_t c = 0; c < t; ++c) {
                    const vec x = load(xp + (v + a) * pw + c);
                    even += k0[a * t + c] * x;
                    odd += k1[a * t + c] * x;
                }
            store(line, __builtin_shuffle(even, odd, INTERLEAVE_LO));
            store(line + LANES, __builtin_shuffle(even, odd, INTERLEAVE_HI));
            std::copy(line, line + ow, out + (2 * v + qy) * ow);
        }
}

// The tap gradients are added lane-wise into acc ([4 t t, LANES]; see add_tap_sums). The output
// gradient is first split into its four phase planes (phases: [4, h, LANES] scratch), so that each
// tap's sum over the rows stays in registers and each gp row is updated once for all four phases.
DDF_INLINE void backward(const float* xp, int64_t pw, int64_t h, const float* g, const float* taps, int64_t t,
                         int64_t oh, int64_t ow, float* gp, float* acc, float* phases) {
    const int64_t tt = t * t, plane = h * LANES;
    alignas(64) float line[2 * LANES];
    for (int64_t v = 0; v < h; ++v)
        for (int64_t qy = 0; qy < 2; ++qy) {
            vec g0{}, g1{};
            if (2 * v + qy < oh) {
                std::copy(g + (2 * v + qy) * ow, g + (2 * v + qy + 1) * ow, line);
                std::fill(line + ow, line + 2 * LANES, 0.0f);
                const vec lo = load(line), hi = load(line + LANES);
                g0 = __builtin_shuffle(lo, hi, EVEN);
                g1 = __builtin_shuffle(lo, hi, ODD);
            }
            store(phases + 2 * qy * plane + v * LANES, g0);
            store(phases + (2 * qy + 1) * plane + v * LANES, g1);
        }
    for (int64_t a = 0; a < t; ++a)
        for (int64_t c = 0; c < t; ++c) {
            vec s[4] = {};
            for (int64_t v = 0; v < h; ++v) {
                const vec x = load(xp + (v + a) * pw + c);
                for (int q = 0; q < 4; ++q) s[q] += load(phases + q * plane + v * LANES) * x;
            }
            for (int q = 0; q < 4; ++q) {
                float* dst = acc + (q * tt + a * t + c) * LANES;
                store(dst, load(dst) + s[q]);
            }
        }
    // Column shift c outermost: a row of gp is read at shift c only a whole sweep over v after its
    // last store at shift c - 1 (an unaligned load that partly overlaps a store still in flight
    // cannot be forwarded and stalls); within a sweep, repeated rows are hit at the same address.
    for (int64_t c = 0; c < t; ++c)
        for (int64_t v = 0; v < h; ++v) {
            vec gq[4];
            for (int q = 0; q < 4; ++q) gq[q] = load(phases + q * plane + v * LANES);
            for (int64_t a = 0; a < t; ++a) {
                const int64_t j = a * t + c, at = (v + a) * pw + c;
                vec sum = taps[j] * gq[0];  // summed apart from gp: the chain through memory is one add
                for (int q = 1; q < 4; ++q) sum += taps[q * tt + j] * gq[q];
                store(gp + at, load(gp + at) + sum);
            }
        }
}

}  // namespace narrow

// gtaps[j] += the LANES values of acc row j summed, for j < n; acc is zeroed.
DDF_INLINE void add_tap_sums(float* acc, int64_t n, float* gtaps) {
    for (int64_t j = 0; j < n; ++j) {
        float sum = 0.0f;
        for (int l = 0; l < head::LANES; ++l) sum += acc[j * head::LANES + l];
        gtaps[j] += sum;
    }
    std::fill(acc, acc + n * head::LANES, 0.0f);
}

// One plane of one upsampling level: out [oh, ow] (oh <= 2h, ow <= 2w) with
// out[2v + qy][2u + qx] = sum_{a, c} taps[q][a * t + c] * pad(x)[v + a][u + c], q = 2 qy + qx,
// t = 2r + 1 taps per axis. xp: a [h + 2r, w + 2r] scratch (+ LANES floats), row: a [w] scratch.
DDF_INLINE void upsample_forward(const float* x, int64_t h, int64_t w, const float* taps, int64_t r, int64_t oh,
                             int64_t ow, float* xp, float* row, float* out) {
    const int64_t t = 2 * r + 1, pw = w + 2 * r;
    pad_plane(x, h, w, r, xp);
    if (w <= narrow::LANES) return narrow::forward(xp, pw, h, taps, t, oh, ow, out);
    for (int64_t v = 0; v < h; ++v)
        for (int64_t qy = 0; qy < 2 && 2 * v + qy < oh; ++qy)
            for (int64_t qx = 0; qx < 2; ++qx) {
                const float* k = taps + (2 * qy + qx) * t * t;
                std::fill(row, row + w, 0.0f);
                for (int64_t a = 0; a < t; ++a)
                    for (int64_t c = 0; c < t; ++c) axpy(k[a * t + c], xp + (v + a) * pw + c, w, row);
                float* dst = out + (2 * v + qy) * ow;
                for (int64_t u = 0; 2 * u + qx < ow; ++u) dst[2 * u + qx] = row[u];
            }
}

// Backward of upsample_forward for one plane: gx [h, w] (overwritten) and the tap gradient added to
// gtaps [4, t * t] -- or, for planes at most LANES wide, lane-wise to acc [4 t t, LANES], to be
// summed into gtaps by add_tap_sums once for many planes. Scratch: xp and gp [h + 2r, w + 2r] (+ LANES
// floats), row [w], phases [4, h, LANES].
DDF_INLINE void upsample_backward(const float* x, const float* g, int64_t h, int64_t w, const float* taps, int64_t r,
                              int64_t oh, int64_t ow, float* xp, float* gp, float* row, float* acc, float* phases,
                              float* gx, float* gtaps) {
    const int64_t t = 2 * r + 1, pw = w + 2 * r;
    pad_plane(x, h, w, r, xp);
    std::fill(gp, gp + (h + 2 * r) * pw, 0.0f);
    if (w <= narrow::LANES) {
        narrow::backward(xp, pw, h, g, taps, t, oh, ow, gp, acc, phases);
        std::fill(gx, gx + h * w, 0.0f);
        fold_plane(gp, h, w, r, gx);
        return;
    }
    for (int64_t v = 0; v < h; ++v)
        for (int64_t qy = 0; qy < 2 && 2 * v + qy < oh; ++qy)
            for (int64_t qx = 0; qx < 2; ++qx) {
                const float* grow = g + (2 * v + qy) * ow;
                for (int64_t u = 0; u < w; ++u) row[u] = 2 * u + qx < ow ? grow[2 * u + qx] : 0.0f;
                const int64_t q = 2 * qy + qx;
                for (int64_t a = 0; a < t; ++a)
                    for (int64_t c = 0; c < t; ++c) {
                        const int64_t at = (v + a) * pw + c;
                        gtaps[q * t * t + a * t + c] += dot(row, xp + at, w);
                        axpy(taps[q * t * t + a * t + c], row, w, gp + at);
                    }
            }
    std::fill(gx, gx + h * w, 0.0f);
    fold_plane(gp, h, w, r, gx);
}

}  // namespace img
}  // namespace ddfast
