// Integer-only discretized Laplace model with 24-bit probabilities (shared by C++ and CUDA).
//
// A symbol k of the support [lo, hi] has, for a floor f >= 1, the left cumulative
//     cum(k) = ((F(k - 1/2) * FW) >> 31) + (k - lo) * f     for lo < k <= hi,
//     cum(lo) = 0,  cum(hi + 1) = 2^24,  FW = 2^24 - f * (hi - lo + 1),
// and the frequency p(k) = cum(k + 1) - cum(k) >= f. With f = 1 this is the "leaky" quantizer
// of constriction's QuantizedLaplace (the tails beyond lo - 1/2 and hi + 1/2 fold into the edge
// symbols); a larger f caps the code length of any symbol at 24 - log2(f) bits (the latents of
// .ddf files use f = 2^8, i.e. the 16-bit cap of the rate that training estimates).
// F is the Laplace CDF in Q.31, evaluated with integers only:
//     D = (2t) * 2^7 - MU           boundary t = k - 1/2 minus the mean, Q.8 (so 2t = 2k - 1)
//     E = min(|D|, 2^30) * INV_SCALE[LS]          |t - mu| / b * log2(e), Q.32
//     G = EXP2[(E mod 2^32) >> 20] >> (1 + (E >> 32))     1/2 * 2^-E in Q.31; 0 when E >> 32 >= 31
//     F = G if D < 0, else 2^31 - G
// MU = round(mu * 2^8) is any int32; LS = round(ln(b) * 2^8) is clamped to the table range.
// The clamp of |D| at 2^30 changes no value: there E >> 32 >= 31 already for every LS (static
// check below), and it keeps E below 2^64. Every operation is an integer add, multiply, shift or
// compare, so the result is the same on every CPU and GPU.
#pragma once

#include <cmath>
#include <cstdint>

#include "laplace_tables.h"

#if defined(__CUDACC__)
#define DDF_HD __host__ __device__ __forceinline__
#else
#define DDF_HD inline
#endif

namespace ddfast {
namespace laplace {

constexpr int kPrecision = 24;                       // probability bits
constexpr uint32_t kTotal = 1u << kPrecision;        // sum of all frequencies
constexpr int32_t kLsMin = DDF_LAPLACE_LS_MIN;
constexpr int32_t kLsMax = DDF_LAPLACE_LS_MAX;
constexpr int kExp2Bits = DDF_LAPLACE_EXP2_BITS;
constexpr uint64_t kDistanceClamp = 1ull << 30;      // |D| clamp, Q.8
// Largest accepted |lo| and |hi|, and the widest support (hi - lo + 1 symbols).
constexpr int64_t kMaxAbsSymbol = 1ll << 30;
constexpr int64_t kMaxSupport = 1ll << 20;

static_assert(kDistanceClamp * DDF_LAPLACE_INV_SCALE_MIN >= (31ull << 32),
              "the |D| clamp must lie where the tail is already 0");
static_assert(kDistanceClamp <= UINT64_MAX / DDF_LAPLACE_INV_SCALE_MAX, "E must fit in 64 bits");

constexpr int kHintLog2Bits = 10;  // mantissa bits of the decoder's host log2 hint table

// Pointers to the tables, in host or device memory depending on the caller. The two model
// tables decide every probability; the hint tables (host only, nullptr on the device) only
// speed up the decoder's first guess and may differ between platforms.
struct Tables {
    const uint32_t* inv_scale;  // DDF_LAPLACE_INV_SCALE_SIZE entries
    const uint32_t* exp2;       // DDF_LAPLACE_EXP2_SIZE entries
    const float* hint_scale;    // b * ln 2 per clamped LS (DDF_LAPLACE_INV_SCALE_SIZE entries)
    const float* hint_log2;     // log2(1 + (i + 1/2) / 2^kHintLog2Bits), i < 2^kHintLog2Bits
};

// The support [lo, hi], the frequency floor f and the free weight FW.
struct Support {
    int64_t lo;
    int64_t hi;
    uint32_t floor;
    uint64_t free_weight;
    float log2_free_weight;  // log2(FW), for the decoder's float guess only
};

DDF_HD Support make_support(int64_t lo, int64_t hi, uint32_t floor = 1) {
    const uint64_t fw = static_cast<uint64_t>(kTotal) - static_cast<uint64_t>(floor) * static_cast<uint64_t>(hi - lo + 1);
    return Support{lo, hi, floor, fw, static_cast<float>(log2(static_cast<double>(fw)))};
}

// True when [lo, hi] with floor f is a support this model accepts (it leaves FW >= 2^23).
DDF_HD bool support_ok(int64_t lo, int64_t hi, uint32_t floor = 1) {
    return lo <= hi && lo >= -kMaxAbsSymbol && hi <= kMaxAbsSymbol && hi - lo + 1 <= kMaxSupport && floor >= 1 &&
           static_cast<uint64_t>(floor) * static_cast<uint64_t>(hi - lo + 1) <= kTotal / 2;
}

DDF_HD int32_t clamp_ls(int32_t ls_q) { return ls_q < kLsMin ? kLsMin : (ls_q > kLsMax ? kLsMax : ls_q); }

// INV_SCALE entry for a Q.8 log-scale (clamped to the table).
DDF_HD uint64_t inv_scale(int32_t ls_q, const Tables& t) { return t.inv_scale[clamp_ls(ls_q) - kLsMin]; }

// Laplace CDF at the half-integer boundary (twice_t / 2) in Q.31, for mean MU (Q.8).
DDF_HD uint64_t cdf_q31(int64_t twice_t, int64_t mu_q, uint64_t inv, const uint32_t* exp2) {
    const int64_t d = twice_t * 128 - mu_q;
    uint64_t dist = d < 0 ? static_cast<uint64_t>(-d) : static_cast<uint64_t>(d);
    dist = dist < kDistanceClamp ? dist : kDistanceClamp;
    const uint64_t e = dist * inv;
    const uint64_t whole = e >> 32;
    const uint64_t shift = (whole < 31 ? whole : 31) + 1;  // 32 clears any table value
    const uint64_t g =
        static_cast<uint64_t>(exp2[(e >> (32 - kExp2Bits)) & ((1u << kExp2Bits) - 1)]) >> shift;
    return d < 0 ? g : (1ull << 31) - g;
}

// Left cumulative frequency cum(k); 0 for k <= lo, 2^24 for k > hi.
DDF_HD uint32_t cum(int64_t k, int64_t mu_q, uint64_t inv, const Support& s, const uint32_t* exp2) {
    if (k <= s.lo) return 0;
    if (k > s.hi) return kTotal;
    const uint64_t f = cdf_q31(2 * k - 1, mu_q, inv, exp2);
    return static_cast<uint32_t>((f * s.free_weight) >> 31) + static_cast<uint32_t>(k - s.lo) * s.floor;
}

}  // namespace laplace
}  // namespace ddfast
