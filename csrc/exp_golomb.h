// Exp-Golomb coding of signed integers (the weight code of .ddf slices), bits MSB-first.
//
// A value s is coded with order k as: v = |s|, w = v + 2^k, n = floor(log2 w) - k; n zero bits,
// then w in its n + k + 1 bits, then a sign bit (1 = negative) when v != 0. Its length is
// 2 n + k + 1 + [s != 0] bits, the count DD-RUO and Cool-chic use for network weights.
#pragma once

#include <cstdint>
#include <vector>

namespace ddfast {
namespace expgolomb {

constexpr int kMaxOrder = 12;
constexpr int kMaxPrefix = 40;  // zero bits before a code word: more means a damaged stream

inline int bit_length(uint64_t x) { return x == 0 ? 0 : 64 - __builtin_clzll(x); }

// Length in bits of s coded with order k.
inline int64_t code_bits(int64_t s, int k) {
    const uint64_t v = static_cast<uint64_t>(s < 0 ? -s : s);
    const int n = bit_length(v + (1ull << k)) - 1 - k;
    return 2 * n + k + 1 + (v != 0);
}

class BitWriter {
public:
    // Append the low `count` bits of `value`, most significant first.
    void put(uint64_t value, int count) {
        for (int i = count - 1; i >= 0; --i) {
            if (bits_ % 8 == 0) bytes_.push_back(0);
            if ((value >> i) & 1u) bytes_.back() |= static_cast<uint8_t>(0x80u >> (bits_ % 8));
            ++bits_;
        }
    }
    void put_code(int64_t s, int k) {
        const uint64_t v = static_cast<uint64_t>(s < 0 ? -s : s);
        const uint64_t w = v + (1ull << k);
        const int n = bit_length(w) - 1 - k;
        put(0, n);
        put(w, n + k + 1);
        if (v != 0) put(s < 0 ? 1 : 0, 1);
    }
    const std::vector<uint8_t>& bytes() const { return bytes_; }
    int64_t bits() const { return bits_; }

private:
    std::vector<uint8_t> bytes_;
    int64_t bits_ = 0;
};

// Reads codes from bytes [0, size); every read checks the end. A failed read sets `error` and
// returns 0; callers test `error` once after a batch of reads.
class BitReader {
public:
    BitReader(const uint8_t* data, int64_t size, int64_t bit) : data_(data), limit_(size * 8), bit_(bit) {}

    bool read_bit(uint32_t& b) {
        if (bit_ >= limit_) return false;
        b = (data_[bit_ >> 3] >> (7 - (bit_ & 7))) & 1u;
        ++bit_;
        return true;
    }
    // One code of order k into s; false on truncation or a prefix longer than kMaxPrefix.
    bool get_code(int k, int64_t& s) {
        int n = 0;
        uint32_t b = 0;
        while (true) {
            if (!read_bit(b)) return false;
            if (b) break;
            if (++n > kMaxPrefix) return false;
        }
        uint64_t w = 1;  // the leading 1 just read
        for (int i = 0; i < n + k; ++i) {
            if (!read_bit(b)) return false;
            w = (w << 1) | b;
        }
        const uint64_t v = w - (1ull << k);
        if (v != 0) {
            if (!read_bit(b)) return false;
            s = b ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
        } else {
            s = 0;
        }
        return true;
    }
    int64_t bit() const { return bit_; }

private:
    const uint8_t* data_;
    int64_t limit_;
    int64_t bit_;
};

}  // namespace expgolomb
}  // namespace ddfast
