// Decoder-side inversion of the integer Laplace model (shared by C++ and CUDA): given a 24-bit
// slot q, find the symbol k with cum(k) <= q < cum(k + 1).
//
// A float inverse-CDF guess picks the candidate; only the integer cum() decides, so the guess may
// use any fast, non-reproducible float arithmetic without changing a decoded symbol. A wrong guess
// is corrected by one step either way and, failing that, by a binary search over the integer
// cum(), so the cost stays O(log(hi - lo)) even where the guess is far off (far tails, wide
// supports whose leaky floor the guess ignores).
#pragma once

#include <cstdint>

#include "laplace_model.h"

namespace ddfast {
namespace laplace {

// log2(r) for an integer 1 <= r < 2^31, to about 7e-4 (a hint, not a result): device code uses
// the fast intrinsic; host code the leading-zero count and a 1024-entry mantissa table.
DDF_HD float hint_log2(uint32_t r, const Tables& t) {
#if defined(__CUDA_ARCH__)
    return __log2f(static_cast<float>(r));
#else
    const int lz = __builtin_clz(r);
    const uint32_t idx = ((r << lz) >> (31 - kHintLog2Bits)) & ((1u << kHintLog2Bits) - 1);
    return static_cast<float>(31 - lz) + t.hint_log2[idx];
#endif
}

// b * ln 2 for a Q.8 log-scale already clamped to the table: symbols per unit of E.
DDF_HD float hint_scale(int32_t ls_clamped, const Tables& t) {
#if defined(__CUDA_ARCH__)
    return __expf(static_cast<float>(ls_clamped) * (1.0f / 256.0f)) * 0.69314718f;
#else
    return t.hint_scale[ls_clamped - kLsMin];
#endif
}

// A likely symbol for slot q: the inverse CDF at (q + 1/2) / FW, clamped to [lo, hi].
// In the exponent domain: E = log2(FW) - log2(2q + 1) left of the mean,
// E = log2(FW) - log2(2 FW - 2q - 1) right of it; the boundary lies E * b * ln 2 from mu.
DDF_HD int64_t guess_symbol(uint32_t q, int64_t mu_q, float scale, const Support& s, const Tables& t) {
    const int64_t twice_q = 2 * static_cast<int64_t>(q) + 1;
    const int64_t right = 2 * static_cast<int64_t>(s.free_weight) - twice_q;
    const bool left = twice_q < static_cast<int64_t>(s.free_weight);
    const int64_t r = left ? twice_q : (right > 1 ? right : 1);
    const float dist = (s.log2_free_weight - hint_log2(static_cast<uint32_t>(r), t)) * scale;
    // Position relative to lo, clamped to [0, hi - lo] (NaN goes to 0); truncation is then floor.
    const float pos = (static_cast<float>(mu_q) * (1.0f / 256.0f) + 0.5f - static_cast<float>(s.lo)) +
                      (left ? -dist : dist);
    const float top = static_cast<float>(s.hi - s.lo);
    const float clamped = pos > 0.0f ? (pos < top ? pos : top) : 0.0f;
    return s.lo + static_cast<int64_t>(clamped);
}

// The symbol of slot q (q < 2^24), with its left cumulative c and frequency p.
DDF_HD int64_t find_symbol(uint32_t q, int64_t mu_q, int32_t ls_q, const Support& s,
                           const Tables& t, uint32_t& c, uint32_t& p) {
    const int32_t ls = clamp_ls(ls_q);
    const uint64_t inv = t.inv_scale[ls - kLsMin];
    const uint32_t* exp2 = t.exp2;
    const int64_t k = guess_symbol(q, mu_q, hint_scale(ls, t), s, t);
    // Invariant of the search below: cum(a) <= q < cum(b), a < b.
    int64_t a, b;
    uint32_t ca, cb;
    const uint32_t ck = cum(k, mu_q, inv, s, exp2);
    if (ck <= q) {
        const uint32_t cn = cum(k + 1, mu_q, inv, s, exp2);
        if (q < cn) { c = ck; p = cn - ck; return k; }
        const uint32_t cnn = cum(k + 2, mu_q, inv, s, exp2);
        if (q < cnn) { c = cn; p = cnn - cn; return k + 1; }
        a = k + 2; ca = cnn; b = s.hi + 1; cb = kTotal;
    } else {
        const uint32_t cp = cum(k - 1, mu_q, inv, s, exp2);
        if (cp <= q) { c = cp; p = ck - cp; return k - 1; }
        a = s.lo; ca = 0; b = k - 1; cb = cp;
    }
    while (b - a > 1) {
        const int64_t m = a + (b - a) / 2;
        const uint32_t cm = cum(m, mu_q, inv, s, exp2);
        if (cm <= q) { a = m; ca = cm; } else { b = m; cb = cm; }
    }
    // Now b == a + 1.
    c = ca;
    p = cb - ca;
    return a;
}

}  // namespace laplace
}  // namespace ddfast
