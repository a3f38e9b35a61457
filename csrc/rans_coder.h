// rANS lane coder in constriction's AnsCoder stream format (shared by C++ and CUDA).
//
// State x: 64 bits, initially 0. Words: 32 bits. Probabilities: 24 bits (laplace_model.h).
// Encode (symbols pushed in reverse decode order): if (x >> 40) >= p, emit the low word of x and
// x >>= 32; then x = ((x / p) << 24) | (c + x % p).
// Flush: the emitted words in push order, then the final state's words low first (none for
// x == 0, one for 0 < x < 2^32, two otherwise). Decoding reads the array from its end.
// Decode: q = x mod 2^24; the symbol k with cum(k) <= q < cum(k) + p; x = (x >> 24) * p + q - c;
// if x < 2^32 and words remain, x = (x << 32) | next word.
// Decoding past the end is deterministic (as in constriction): with no words left the state
// shrinks to 0, and from state 0 every decoded symbol is lo. A lane's stream is complete and
// canonical when, after its last symbol, every word has been read and x == 0. The decoder also
// flags a refill from a state below p * 2^8: the encoder emits a word only from x >= p * 2^40.
// rANS carries no other redundancy, so some damage (e.g. words cut from the front) yields another
// valid stream; the container's checksums catch that.
#pragma once

#include <cstdint>

#include "laplace_inverse.h"
#include "laplace_model.h"

namespace ddfast {
namespace rans {

constexpr uint64_t kWordLimit = 1ull << 32;
constexpr int kRenormShift = 64 - laplace::kPrecision;  // 40

// Per-lane outcome of decoding, reported by the batch and incremental decoders.
enum Status : uint8_t {
    kOk = 0,
    kZeroLastWord = 1,    // the stream's last word (read first) is 0: no valid initial state
    kDamaged = 2,         // a refill found a state the encoder cannot have emitted from
    kUnreadWords = 3,     // strict end check: words left after the last symbol
    kNonzeroState = 4,    // strict end check: final state is not the initial state 0
};

// Words one lane of n symbols can need: at most one per symbol plus two for the final state.
DDF_HD int64_t max_lane_words(int64_t n) { return n + 2; }

// Encode n symbols (in decode order) into out[0 .. returned count); out holds max_lane_words(n).
// The symbols must lie in [s.lo, s.hi] (checked by the callers before any work starts).
DDF_HD int64_t encode_lane(const int32_t* sym, const int32_t* mu_q, const int32_t* ls_q, int64_t n,
                           const laplace::Support& s, const laplace::Tables& t, uint32_t* out) {
    uint64_t x = 0;
    int64_t m = 0;
    for (int64_t i = n - 1; i >= 0; --i) {
        const uint64_t inv = laplace::inv_scale(ls_q[i], t);
        const uint32_t c = laplace::cum(sym[i], mu_q[i], inv, s, t.exp2);
        const uint32_t p = laplace::cum(static_cast<int64_t>(sym[i]) + 1, mu_q[i], inv, s, t.exp2) - c;
        // Branch-free renormalization: the word is always stored, and kept only when emitted.
        const bool emit = (x >> kRenormShift) >= p;
        out[m] = static_cast<uint32_t>(x);
        m += emit;
        x = emit ? x >> 32 : x;
        x = ((x / p) << laplace::kPrecision) | (c + x % p);
    }
    if (x != 0) out[m++] = static_cast<uint32_t>(x);
    if (x >= kWordLimit) out[m++] = static_cast<uint32_t>(x >> 32);
    return m;
}

// Decoding state of one lane: x and the number of words not yet read (next: words[pos - 1]).
struct LaneDecoder {
    uint64_t x;
    int64_t pos;
    uint8_t status;  // kOk, or a sticky kZeroLastWord / kDamaged
};

// Read the initial state from a lane's n words.
DDF_HD LaneDecoder start_lane(const uint32_t* words, int64_t n) {
    LaneDecoder d{0, n, kOk};
    if (n == 0) return d;
    if (words[n - 1] == 0) {
        d.status = kZeroLastWord;
        d.pos = 0;
        return d;
    }
    d.x = words[--d.pos];
    if (d.pos > 0) d.x = (d.x << 32) | words[--d.pos];
    return d;
}

// Decode one symbol with parameters (mu_q, ls_q).
DDF_HD int32_t decode_symbol(LaneDecoder& d, const uint32_t* words, int32_t mu_q, int32_t ls_q,
                             const laplace::Support& s, const laplace::Tables& t) {
    const uint32_t q = static_cast<uint32_t>(d.x) & (laplace::kTotal - 1);
    uint32_t c, p;
    const int64_t k = laplace::find_symbol(q, mu_q, ls_q, s, t, c, p);
    d.x = (d.x >> laplace::kPrecision) * p + (q - c);
    if (d.pos > 0) {  // branch-free refill: the load does not wait for x
        const uint64_t next = words[d.pos - 1];
        const bool refill = d.x < kWordLimit;
        // The encoder emitted this word only from a state >= p * 2^40, so x >= p * 2^8 here.
        if (refill && d.x < (static_cast<uint64_t>(p) << 8)) d.status = kDamaged;
        d.x = refill ? (d.x << 32) | next : d.x;
        d.pos -= refill;
    }
    return static_cast<int32_t>(k);
}

// Status after the lane's last symbol: kOk only for a complete, canonical stream.
DDF_HD uint8_t end_status(const LaneDecoder& d) {
    if (d.status != kOk) return d.status;
    if (d.pos != 0) return kUnreadWords;
    if (d.x != 0) return kNonzeroState;
    return kOk;
}

}  // namespace rans
}  // namespace ddfast
