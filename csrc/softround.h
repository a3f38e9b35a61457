// The training quantizer's proxy softround(softround(x, T) + noise, T) on the CPU, forward and
// backward (the gradient to x: the product of both softrounds' slopes), 16 elements at a time,
// with tanh through the vectorized exp of laplace_rate.h.
// Binding-free: the pybind11 glue (threads, arrays) is in cpu_image_ops.cpp, whose multiversioned
// softround_block compiles block() once per instruction set.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "head_mlp.h"      // vec, load, store, DDF_INLINE
#include "laplace_rate.h"  // rate::exp, rate::ivec

namespace ddfast {
namespace softround {

struct Softround {
    float inv_t, half_over_tanh;  // 1 / T and 1 / (2 tanh(1 / (2T)))

    explicit Softround(float t) : inv_t(1.0f / t), half_over_tanh(0.5f / std::tanh(0.5f / t)) {}

    // softround(v) and its slope, with tanh(z) = (1 - e) / (1 + e) * sign(z), e = exp(-2|z|).
    DDF_INLINE head::vec apply(head::vec v, head::vec* slope) const {
        head::vec floor = __builtin_convertvector(__builtin_convertvector(v, rate::ivec), head::vec);
        floor = floor > v ? floor - 1.0f : floor;  // truncation -> floor
        const head::vec z = (v - floor - 0.5f) * inv_t;
        const head::vec e = rate::exp(-2.0f * (z < 0.0f ? -z : z));
        const head::vec magnitude = (1.0f - e) / (1.0f + e);
        const head::vec tanh = z < 0.0f ? -magnitude : magnitude;
        if (slope != nullptr) *slope = (1.0f - tanh * tanh) * (inv_t * half_over_tanh);
        return floor + 0.5f + tanh * half_over_tanh;
    }
};

// out = the proxy of x + noise (g null), or g times its slope to x, for n elements.
DDF_INLINE void block(const float* x, const float* noise, float t, int64_t n, const float* g, float* out) {
    const Softround sr(t);
    alignas(64) float tail[3][head::LANES] = {};
    for (int64_t i = 0; i < n; i += head::LANES) {
        const int64_t count = std::min<int64_t>(head::LANES, n - i);
        const float *px = x + i, *pn = noise + i, *pg = g != nullptr ? g + i : nullptr;
        if (count < head::LANES) {  // the last, partial vector through zero-padded copies
            std::copy(px, px + count, tail[0]);
            std::copy(pn, pn + count, tail[1]);
            if (pg != nullptr) std::copy(pg, pg + count, tail[2]);
            px = tail[0];
            pn = tail[1];
            pg = pg != nullptr ? tail[2] : nullptr;
        }
        head::vec value;
        if (pg == nullptr) {
            value = sr.apply(sr.apply(head::load(px), nullptr) + head::load(pn), nullptr);
        } else {
            head::vec inner, outer;
            sr.apply(sr.apply(head::load(px), &inner) + head::load(pn), &outer);
            value = head::load(pg) * inner * outer;
        }
        alignas(64) float result[head::LANES];
        head::store(result, value);
        std::copy(result, result + count, out + i);
    }
}

}  // namespace softround
}  // namespace ddfast
