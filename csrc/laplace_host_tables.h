// The Laplace model's tables in host memory (CPU builds; the CUDA build keeps its own copy in
// device memory, initialized from the same generated header).
#pragma once

#include <cmath>
#include <cstdint>

#include "laplace_model.h"

namespace ddfast {
namespace laplace {

inline constexpr uint32_t kHostInvScale[DDF_LAPLACE_INV_SCALE_SIZE] = DDF_LAPLACE_INV_SCALE_INIT;
inline constexpr uint32_t kHostExp2[DDF_LAPLACE_EXP2_SIZE] = DDF_LAPLACE_EXP2_INIT;

// Decoder hint tables, computed once with the platform's float math (they never decide a symbol).
struct HostHints {
    float scale[DDF_LAPLACE_INV_SCALE_SIZE];
    float log2[1 << kHintLog2Bits];
    HostHints() {
        for (int i = 0; i < DDF_LAPLACE_INV_SCALE_SIZE; ++i) {
            scale[i] = static_cast<float>(std::exp((i + kLsMin) / 256.0) * std::log(2.0));
        }
        for (int i = 0; i < (1 << kHintLog2Bits); ++i) {
            log2[i] = static_cast<float>(std::log2(1.0 + (i + 0.5) / (1 << kHintLog2Bits)));
        }
    }
};

inline Tables host_tables() {
    static const HostHints hints;
    return Tables{kHostInvScale, kHostExp2, hints.scale, hints.log2};
}

}  // namespace laplace
}  // namespace ddfast
