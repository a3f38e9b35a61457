// The Laplace rate of the training step, elementwise on the CPU: bits of x under
// Laplace(mu, b = exp(clamp(s - 4, -4.6, 5))) on unit bins, at most 16, and its gradient. The same
// stable expressions and derivatives as ddfast.ops.torch_ops.laplace_rate and the Triton kernel
// (tail bins in the log domain); only the branch an element takes is evaluated.
// Binding-free: used by cpu_image_ops.cpp (the rate op) and cpu_ops.cpp (the fused latent rate).
#pragma once

#include <algorithm>
#include <cmath>

namespace ddfast {
namespace rate {

constexpr float SCALE_OFFSET = 4.0f, SCALE_LOW = -4.6f, SCALE_HIGH = 5.0f, MAX_BITS = 16.0f;
constexpr float INV_LN2 = 1.4426950408889634f;

inline float bits(float x, float mu, float s) {
    const float inv_b = std::exp(-std::clamp(s - SCALE_OFFSET, SCALE_LOW, SCALE_HIGH));
    const float d = std::fabs(x - mu);
    float out;
    if (d >= 0.5f) {
        out = 1.0f + ((d - 0.5f) * inv_b - std::log(-std::expm1(-inv_b))) * INV_LN2;
    } else {
        const float p = 1.0f - 0.5f * (std::exp(-(0.5f - d) * inv_b) + std::exp(-(0.5f + d) * inv_b));
        out = -std::log(p) * INV_LN2;
    }
    return std::min(out, MAX_BITS);
}

// d(g * bits)/dx, d/dmu = -d/dx, d/ds (zero where the bits hit 16 or s - 4 is clamped).
inline void grad(float x, float mu, float s, float g, float& gx, float& gs) {
    const float t = s - SCALE_OFFSET;
    const bool inside = t > SCALE_LOW && t < SCALE_HIGH;
    const float b = std::exp(std::clamp(t, SCALE_LOW, SCALE_HIGH)), inv_b = 1.0f / b;
    const float diff = x - mu, d = std::fabs(diff);
    float value, dd, db;
    if (d >= 0.5f) {
        const float e = std::exp(-inv_b);
        value = 1.0f + ((d - 0.5f) * inv_b - std::log(-std::expm1(-inv_b))) * INV_LN2;
        dd = inv_b * INV_LN2;
        db = (-(d - 0.5f) + e / (1.0f - e)) * inv_b * inv_b * INV_LN2;
    } else {
        const float e1 = std::exp(-(0.5f - d) * inv_b), e2 = std::exp(-(0.5f + d) * inv_b);
        const float p = 1.0f - 0.5f * (e1 + e2);
        value = -std::log(p) * INV_LN2;
        const float scale = -INV_LN2 / p;
        dd = scale * -0.5f * (e1 - e2) * inv_b;
        db = scale * -0.5f * (e1 * (0.5f - d) + e2 * (0.5f + d)) * inv_b * inv_b;
    }
    const bool keep = value <= MAX_BITS;
    const float sign = diff > 0.0f ? 1.0f : diff < 0.0f ? -1.0f : 0.0f;
    gx = keep ? g * dd * sign : 0.0f;
    gs = keep && inside ? g * db * b : 0.0f;
}

}  // namespace rate
}  // namespace ddfast
