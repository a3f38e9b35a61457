// Indexed reads of the latent rate's contexts on the CPU: the gather out[e] = src[index[e]] and its
// adjoint written as a gather too, acc[q] += sum_t src[readers[t][q]], so neither direction scatters
// (a scatter adds into the same latents row after row, each add waiting on the previous store).
//
// The compiler keeps these loops scalar (its cost model rejects gather instructions), so the
// AVX-512 path issues vgatherdps itself and is picked at run time; the plain loops are its twin
// and the fallback, and both add in the same order (bit-identical results; tests/test_cpu_ops.py).
// Measured at 100 x 8 (the fused latent rate, 1.09 M contexts): forward 20.9 -> 15.9 ms,
// backward 55.8 -> 48.5 ms. Binding-free: the glue is in cpu_ops.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define DDFAST_GATHER_AVX512 1
#endif

namespace ddfast {
namespace gather {

inline void gather_plain(const float* src, const int32_t* index, int64_t n, float* out) {
    for (int64_t e = 0; e < n; ++e) out[e] = src[index[e]];
}

// acc[q] += src[readers[t * n + q]] for t = 0 .. width - 1, in that order.
inline void gather_add_plain(const float* src, const int32_t* readers, int64_t width, int64_t n, float* acc) {
    for (int64_t q = 0; q < n; ++q) {
        float sum = acc[q];
        for (int64_t t = 0; t < width; ++t) sum += src[readers[t * n + q]];
        acc[q] = sum;
    }
}

#ifdef DDFAST_GATHER_AVX512
__attribute__((target("avx512f"))) inline __m512 gather16(const float* src, const int32_t* index) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xffff, _mm512_loadu_si512(index), src, 4);
}

__attribute__((target("avx512f"))) inline void gather_avx512(const float* src, const int32_t* index, int64_t n,
                                                              float* out) {
    int64_t e = 0;
    for (; e + 16 <= n; e += 16) _mm512_storeu_ps(out + e, gather16(src, index + e));
    gather_plain(src, index + e, n - e, out + e);
}

__attribute__((target("avx512f"))) inline void gather_add_avx512(const float* src, const int32_t* readers,
                                                                  int64_t width, int64_t n, float* acc) {
    int64_t q = 0;
    for (; q + 16 <= n; q += 16) {
        __m512 sum = _mm512_loadu_ps(acc + q);
        for (int64_t t = 0; t < width; ++t) sum = _mm512_add_ps(sum, gather16(src, readers + t * n + q));
        _mm512_storeu_ps(acc + q, sum);
    }
    for (; q < n; ++q) {
        float sum = acc[q];
        for (int64_t t = 0; t < width; ++t) sum += src[readers[t * n + q]];
        acc[q] = sum;
    }
}
#endif

// Whether the AVX-512 path runs on this CPU.
inline bool fast_path() {
#ifdef DDFAST_GATHER_AVX512
    static const bool yes = __builtin_cpu_supports("avx512f");
    return yes;
#else
    return false;
#endif
}

// out[e] = src[index[e]] for e < n.
inline void gather(const float* src, const int32_t* index, int64_t n, float* out, bool fast = fast_path()) {
#ifdef DDFAST_GATHER_AVX512
    if (fast) return gather_avx512(src, index, n, out);
#endif
    gather_plain(src, index, n, out);
}

// acc[q] += sum_t src[readers[t * n + q]] for q < n (the sum taken in order of t).
inline void gather_add(const float* src, const int32_t* readers, int64_t width, int64_t n, float* acc,
                       bool fast = fast_path()) {
#ifdef DDFAST_GATHER_AVX512
    if (fast) return gather_add_avx512(src, readers, width, n, acc);
#endif
    gather_add_plain(src, readers, width, n, acc);
}

// The adjoint of out[e] = src[index[e]] (e < entries, index values in [0, n]; n is a zero slot
// never read back) as a gather table: [width, n] positions in `out`, each q's readers in
// increasing e, unused entries pointing to `pad` (a position that holds zero).
struct Readers {
    int64_t width = 0;
    std::vector<int32_t> table;
};

inline Readers readers_of(const int32_t* index, int64_t entries, int64_t n, int32_t pad) {
    std::vector<int32_t> count(n, 0);
    for (int64_t e = 0; e < entries; ++e)
        if (index[e] < n) ++count[index[e]];
    Readers readers;
    for (int64_t q = 0; q < n; ++q) readers.width = std::max<int64_t>(readers.width, count[q]);
    readers.table.assign(readers.width * n, pad);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t e = 0; e < entries; ++e) {
        const int32_t q = index[e];
        if (q < n) readers.table[count[q]++ * n + q] = static_cast<int32_t>(e);
    }
    return readers;
}

}  // namespace gather
}  // namespace ddfast
