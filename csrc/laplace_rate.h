// The Laplace rate of the training step on the CPU: bits of x under
// Laplace(mu, b = exp(clamp(s - 4, -4.6, 5))) on unit bins, at most 16, and its gradient. The same
// stable expressions and derivatives as ddfast.ops.torch_ops.laplace_rate and the Triton kernel
// (tail bins in the log domain), 16 elements at a time: both branches are computed and the one
// each element takes is selected, with exp and log as polynomials (Cephes' single-precision
// ones, about 1 ulp) so the whole rate vectorizes.
// Binding-free: used by cpu_image_ops.cpp (the rate op) and cpu_ops.cpp (the fused latent rate),
// through bits_rows / grad_rows (multiversioned; everything else here is force-inlined into them).
#pragma once

#include <algorithm>
#include <cstdint>

#include "head_mlp.h"  // vec, load, store, splat, DDF_INLINE

namespace ddfast {
namespace rate {

using head::load;
using head::splat;
using head::store;
using head::vec;
constexpr int LANES = head::LANES;
typedef int32_t ivec __attribute__((vector_size(64)));

constexpr float SCALE_OFFSET = 4.0f, SCALE_LOW = -4.6f, SCALE_HIGH = 5.0f, MAX_BITS = 16.0f;
constexpr float INV_LN2 = 1.4426950408889634f;

DDF_INLINE vec min(vec a, vec b) { return a < b ? a : b; }
DDF_INLINE vec max(vec a, vec b) { return a > b ? a : b; }

// e^x; inputs below -87 give e^-87 (not 0), which no caller can tell from 0.
DDF_INLINE vec exp(vec x) {
    x = min(max(x, splat(-87.0f)), splat(88.0f));
    const vec shifter = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    const vec n = (x * 1.44269504088896341f + shifter) - shifter;
    const vec r = x - n * 0.693359375f + n * 2.12194440e-4f;
    vec p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const ivec scale = (__builtin_convertvector(n, ivec) + 127) << 23;
    return p * (vec)scale;
}

// ln x for positive normal x.
DDF_INLINE vec log(vec x) {
    const ivec bits = (ivec)x;
    vec e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, vec);
    const ivec mantissa = (bits & 0x7fffff) | 0x3f000000;  // in [0.5, 1)
    vec m = (vec)mantissa;
    const auto small = m < 0.707106781186547524f;
    e = small ? e - 1.0f : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    const vec z = m * m;
    vec y = splat(7.0376836292e-2f);
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z - 2.12194440e-4f * e - 0.5f * z;
    return m + y + 0.693359375f * e;
}

// 1 - e^-y for y > 0, without the cancellation of 1 - exp(-y) for small y.
DDF_INLINE vec one_minus_exp_neg(vec y) {
    vec series = splat(-1.0f / 40320.0f);
    series = series * y + 1.0f / 5040.0f;
    series = series * y - 1.0f / 720.0f;
    series = series * y + 1.0f / 120.0f;
    series = series * y - 1.0f / 24.0f;
    series = series * y + 1.0f / 6.0f;
    series = series * y - 0.5f;
    series = (series * y + 1.0f) * y;
    return y < 0.5f ? series : 1.0f - exp(-y);
}

// The bits of 16 elements.
DDF_INLINE vec bits16(vec x, vec mu, vec s) {
    const vec inv_b = exp(-min(max(s - SCALE_OFFSET, splat(SCALE_LOW)), splat(SCALE_HIGH)));
    const vec diff = x - mu;
    const vec d = diff < 0.0f ? -diff : diff;
    const vec tail = 1.0f + ((d - 0.5f) * inv_b - log(one_minus_exp_neg(inv_b))) * INV_LN2;
    const vec dc = min(d, splat(0.5f));
    const vec p = 1.0f - 0.5f * (exp(-(0.5f - dc) * inv_b) + exp(-(0.5f + dc) * inv_b));
    const vec centre = -log(p) * INV_LN2;
    return min(d >= 0.5f ? tail : centre, splat(MAX_BITS));
}

// d(g * bits)/dx and d/ds of 16 elements (d/dmu = -d/dx; zero where the bits pass 16, and d/ds
// zero where s - 4 is clamped).
DDF_INLINE void grad16(vec x, vec mu, vec s, vec g, vec& gx, vec& gs) {
    const vec t = s - SCALE_OFFSET;
    const vec b = exp(min(max(t, splat(SCALE_LOW)), splat(SCALE_HIGH))), inv_b = 1.0f / b;
    const vec diff = x - mu;
    const vec d = diff < 0.0f ? -diff : diff;
    const vec inv_b2 = inv_b * inv_b;
    // A tail bin (d >= 1/2).
    const vec q = one_minus_exp_neg(inv_b);  // 1 - e^(-1/b)
    const vec tail = 1.0f + ((d - 0.5f) * inv_b - log(q)) * INV_LN2;
    const vec dd_tail = inv_b * INV_LN2;
    const vec db_tail = (0.5f - d + (1.0f - q) / q) * inv_b2 * INV_LN2;
    // The bin holding mu (d < 1/2).
    const vec dc = min(d, splat(0.5f));
    const vec e1 = exp(-(0.5f - dc) * inv_b), e2 = exp(-(0.5f + dc) * inv_b);
    const vec p = 1.0f - 0.5f * (e1 + e2);
    const vec centre = -log(p) * INV_LN2;
    const vec scale = 0.5f * INV_LN2 / p;
    const vec dd_centre = scale * (e1 - e2) * inv_b;
    const vec db_centre = scale * (e1 * (0.5f - dc) + e2 * (0.5f + dc)) * inv_b2;

    const auto in_tail = d >= 0.5f;
    const vec value = in_tail ? tail : centre;
    const vec dd = in_tail ? dd_tail : dd_centre, db = in_tail ? db_tail : db_centre;
    const vec sign = diff > 0.0f ? splat(1.0f) : diff < 0.0f ? splat(-1.0f) : vec{};
    gx = value <= MAX_BITS ? g * dd * sign : vec{};
    // d/ds needs value < 16 and SCALE_LOW < t < SCALE_HIGH, i.e. |t - centre| < half width, tested
    // as one comparison: the AND of two lane masks has no AVX-512F instruction, and the compiler
    // then computed the whole gradient lane by lane (3x slower). (At exactly 16 bits the gradient
    // is taken as zero here, a set of measure zero.)
    constexpr float CENTRE = 0.5f * (SCALE_LOW + SCALE_HIGH), HALF_WIDTH = 0.5f * (SCALE_HIGH - SCALE_LOW);
    const vec off_centre = t - CENTRE;
    const vec margin = max(value - MAX_BITS, (off_centre < 0.0f ? -off_centre : off_centre) - HALF_WIDTH);
    gs = margin < 0.0f ? g * db * b : vec{};
}

// out[i] = bits(x[i], mu[i], s[i]) for i < n.
DDF_INLINE void bits(const float* x, const float* mu, const float* s, int64_t n, float* out) {
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) store(out + i, bits16(load(x + i), load(mu + i), load(s + i)));
    if (i == n) return;
    alignas(64) float t[4][LANES] = {};
    std::copy(x + i, x + n, t[0]);
    std::copy(mu + i, mu + n, t[1]);
    std::copy(s + i, s + n, t[2]);
    store(t[3], bits16(load(t[0]), load(t[1]), load(t[2])));
    std::copy(t[3], t[3] + (n - i), out + i);
}

// gx[i], gs[i] = the gradients of g[i] * bits(x[i], mu[i], s[i]) for i < n.
DDF_INLINE void grad(const float* x, const float* mu, const float* s, const float* g, int64_t n, float* gx,
                     float* gs) {
    int64_t i = 0;
    vec vx, vs;
    for (; i + LANES <= n; i += LANES) {
        grad16(load(x + i), load(mu + i), load(s + i), load(g + i), vx, vs);
        store(gx + i, vx);
        store(gs + i, vs);
    }
    if (i == n) return;
    alignas(64) float t[6][LANES] = {};
    std::copy(x + i, x + n, t[0]);
    std::copy(mu + i, mu + n, t[1]);
    std::copy(s + i, s + n, t[2]);
    std::copy(g + i, g + n, t[3]);
    grad16(load(t[0]), load(t[1]), load(t[2]), load(t[3]), vx, vs);
    store(t[4], vx);
    store(t[5], vs);
    std::copy(t[4], t[4] + (n - i), gx + i);
    std::copy(t[5], t[5] + (n - i), gs + i);
}

// bits / grad above for n elements, multiversioned (AVX-512, AVX2, baseline): the entry points for
// callers that are not multiversioned themselves. Defined once, in cpu_image_ops.cpp.
void bits_rows(const float* x, const float* mu, const float* s, int64_t n, float* out);
void grad_rows(const float* x, const float* mu, const float* s, const float* g, int64_t n, float* gx, float* gs);

}  // namespace rate
}  // namespace ddfast
