// Small-channel image kernels of the training step on the CPU: the synthesis's 3x3 residual convs
// (replicate padding) and one level of the polyphase upsampling, forward and backward, one image
// plane at a time. Inner loops run along image rows (`omp simd`); the caller threads over planes.
// Binding-free: the pybind11 glue is in cpu_image_ops.cpp.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ddfast {
namespace img {

// [h, w] plane -> [h + 2r, w + 2r] with replicate padding.
inline void pad_plane(const float* src, int64_t h, int64_t w, int64_t r, float* dst) {
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
inline void fold_plane(const float* src, int64_t h, int64_t w, int64_t r, float* dst) {
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

// sum_x a[x] * b[x]
inline float dot(const float* a, const float* b, int64_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t x = 0; x < n; ++x) acc += a[x] * b[x];
    return acc;
}

// dst[x] += k * src[x]
inline void axpy(float k, const float* src, int64_t n, float* dst) {
#pragma omp simd
    for (int64_t x = 0; x < n; ++x) dst[x] += k * src[x];
}

// One image of the residual conv: y = act(conv3x3(pad(x), wt) + b + x), x and y [c, h, w],
// wt [c, c, 3, 3] (out, in, dy, dx), xp a [c, h + 2, w + 2] scratch.
inline void conv3_forward(const float* x, int64_t c, int64_t h, int64_t w, const float* wt, const float* b,
                          bool relu, float* xp, float* y) {
    const int64_t pw = w + 2, plane = (h + 2) * pw;
    for (int64_t i = 0; i < c; ++i) pad_plane(x + i * h * w, h, w, 1, xp + i * plane);
    for (int64_t o = 0; o < c; ++o)
        for (int64_t r = 0; r < h; ++r) {
            float* out = y + (o * h + r) * w;
            const float* res = x + (o * h + r) * w;
            const float bias = b[o];
#pragma omp simd
            for (int64_t u = 0; u < w; ++u) out[u] = bias + res[u];
            for (int64_t i = 0; i < c; ++i)
                for (int64_t dy = 0; dy < 3; ++dy)
                    for (int64_t dx = 0; dx < 3; ++dx)
                        axpy(wt[((o * c + i) * 3 + dy) * 3 + dx], xp + i * plane + (r + dy) * pw + dx, w, out);
            if (relu) {
#pragma omp simd
                for (int64_t u = 0; u < w; ++u) out[u] = std::max(out[u], 0.0f);
            }
        }
}

// Backward of conv3_forward for one image, given its output y (for the ReLU's mask) and the output
// gradient g: gx (may be null) = the input gradient; gw [c, c, 3, 3] and gb [c] are added to.
// Scratch: xp and gp [c, h + 2, w + 2], gy [c, h, w].
inline void conv3_backward(const float* x, const float* y, const float* g, int64_t c, int64_t h, int64_t w,
                           const float* wt, bool relu, float* xp, float* gp, float* gy, float* gx, float* gw,
                           float* gb) {
    const int64_t pw = w + 2, plane = (h + 2) * pw, hw = h * w;
    for (int64_t i = 0; i < c; ++i) pad_plane(x + i * hw, h, w, 1, xp + i * plane);
    for (int64_t e = 0; e < c * hw; ++e) gy[e] = relu && !(y[e] > 0.0f) ? 0.0f : g[e];
    std::fill(gp, gp + c * plane, 0.0f);
    for (int64_t o = 0; o < c; ++o) {
        float bias = 0.0f;
        for (int64_t e = 0; e < hw; ++e) bias += gy[o * hw + e];
        gb[o] += bias;
        for (int64_t i = 0; i < c; ++i)
            for (int64_t dy = 0; dy < 3; ++dy)
                for (int64_t dx = 0; dx < 3; ++dx) {
                    const int64_t k = ((o * c + i) * 3 + dy) * 3 + dx;
                    float acc = 0.0f;
                    for (int64_t r = 0; r < h; ++r) {
                        const float* grow = gy + (o * h + r) * w;
                        acc += dot(grow, xp + i * plane + (r + dy) * pw + dx, w);
                        axpy(wt[k], grow, w, gp + i * plane + (r + dy) * pw + dx);
                    }
                    gw[k] += acc;
                }
    }
    if (gx == nullptr) return;
    std::copy(gy, gy + c * hw, gx);  // the residual path
    for (int64_t i = 0; i < c; ++i) fold_plane(gp + i * plane, h, w, 1, gx + i * hw);
}

// One plane of one upsampling level: out [oh, ow] (oh <= 2h, ow <= 2w) with
// out[2v + qy][2u + qx] = sum_{a, c} taps[q][a * t + c] * pad(x)[v + a][u + c], q = 2 qy + qx,
// t = 2r + 1 taps per axis. xp: a [h + 2r, w + 2r] scratch, row: a [w] scratch.
inline void upsample_forward(const float* x, int64_t h, int64_t w, const float* taps, int64_t r, int64_t oh,
                             int64_t ow, float* xp, float* row, float* out) {
    const int64_t t = 2 * r + 1, pw = w + 2 * r;
    pad_plane(x, h, w, r, xp);
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

// Backward of upsample_forward for one plane: gx [h, w] (overwritten) and gtaps [4, t * t] (added to).
// Scratch: xp and gp [h + 2r, w + 2r], row [w].
inline void upsample_backward(const float* x, const float* g, int64_t h, int64_t w, const float* taps, int64_t r,
                              int64_t oh, int64_t ow, float* xp, float* gp, float* row, float* gx, float* gtaps) {
    const int64_t t = 2 * r + 1, pw = w + 2 * r;
    pad_plane(x, h, w, r, xp);
    std::fill(gp, gp + (h + 2 * r) * pw, 0.0f);
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
