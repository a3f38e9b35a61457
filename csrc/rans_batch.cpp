// Batch rANS encode/decode of many lanes (OpenMP over lanes) and the integer model's tables,
// exposed to Python as ddfast._cpu.rans_*.
#include <cstring>
#include <memory>
#include <vector>

#include "laplace_host_tables.h"
#include "rans_coder.h"
#include "rans_pyutil.h"

namespace ddfast {
namespace rans_py {
namespace {

// Lanes are spread over threads only when there is enough work to pay for it.
constexpr int64_t kParallelMinSymbols = 1 << 14;
// laplace_cdf refuses tables larger than this many entries (1 GiB of uint32).
constexpr int64_t kMaxCdfEntries = 1ll << 28;

struct Params {
    const int32_t* mu;
    const int32_t* ls;
    int64_t n;
};

Params checked_params(const I32Array& mu, const I32Array& ls) {
    const int64_t n = length_1d(mu, "mu_q");
    require(length_1d(ls, "logscale_q") == n,
            "mu_q and logscale_q differ in length (" + std::to_string(n) + " vs " +
                std::to_string(ls.shape(0)) + ")");
    return Params{mu.data(), ls.data(), n};
}

// Encode lanes of symbols; returns (words, lane_words): all lanes' words concatenated in lane
// order and the number of words of each lane.
py::tuple encode(const I32Array& symbols, const I32Array& mu, const I32Array& ls,
                 const I64Array& lane_sizes, int64_t lo, int64_t hi, int64_t floor) {
    const laplace::Support s = checked_support(lo, hi, floor);
    const Params prm = checked_params(mu, ls);
    require(length_1d(symbols, "symbols") == prm.n,
            "symbols and mu_q differ in length (" + std::to_string(symbols.shape(0)) + " vs " +
                std::to_string(prm.n) + ")");
    const std::vector<int64_t> off = offsets_of(lane_sizes, prm.n, "lane_sizes");
    const int64_t lanes = static_cast<int64_t>(off.size()) - 1;
    const int32_t* sym = symbols.data();
    check_symbols(sym, prm.n, lo, hi);

    std::unique_ptr<uint32_t[]> scratch(new uint32_t[prm.n + 2 * lanes]);
    std::vector<int64_t> counts(static_cast<size_t>(lanes));
    std::vector<int64_t> out_off(static_cast<size_t>(lanes) + 1, 0);
    {
        py::gil_scoped_release nogil;
        const laplace::Tables t = laplace::host_tables();
#pragma omp parallel for schedule(dynamic, 1) if (lanes > 1 && prm.n >= kParallelMinSymbols)
        for (int64_t l = 0; l < lanes; ++l) {
            const int64_t a = off[l];
            counts[l] = rans::encode_lane(sym + a, prm.mu + a, prm.ls + a, off[l + 1] - a, s, t,
                                          scratch.get() + a + 2 * l);
        }
        for (int64_t l = 0; l < lanes; ++l) out_off[l + 1] = out_off[l] + counts[l];
    }
    U32Array words(out_off[lanes]);
    I64Array lane_words(lanes);
    uint32_t* w = words.mutable_data();
    int64_t* lw = lane_words.mutable_data();
    {
        py::gil_scoped_release nogil;
        for (int64_t l = 0; l < lanes; ++l) {
            lw[l] = counts[l];
            if (counts[l] > 0) {
                std::memcpy(w + out_off[l], scratch.get() + off[l] + 2 * l,
                            static_cast<size_t>(counts[l]) * sizeof(uint32_t));
            }
        }
    }
    return py::make_tuple(words, lane_words);
}

// Decode lanes; returns (symbols, status) with one rans::Status per lane (end_status).
py::tuple decode(const U32Array& words, const I64Array& lane_words, const I32Array& mu,
                 const I32Array& ls, const I64Array& lane_sizes, int64_t lo, int64_t hi, int64_t floor) {
    const laplace::Support s = checked_support(lo, hi, floor);
    const Params prm = checked_params(mu, ls);
    const std::vector<int64_t> woff = offsets_of(lane_words, length_1d(words, "words"), "lane_words");
    const std::vector<int64_t> off = offsets_of(lane_sizes, prm.n, "lane_sizes");
    const int64_t lanes = static_cast<int64_t>(off.size()) - 1;
    require(static_cast<int64_t>(woff.size()) - 1 == lanes,
            "lane_words has " + std::to_string(woff.size() - 1) + " lanes, lane_sizes has " +
                std::to_string(lanes));

    I32Array out(prm.n);
    U8Array status(lanes);
    int32_t* o = out.mutable_data();
    uint8_t* st = status.mutable_data();
    const uint32_t* w = words.data();
    {
        py::gil_scoped_release nogil;
        const laplace::Tables t = laplace::host_tables();
#pragma omp parallel for schedule(dynamic, 1) if (lanes > 1 && prm.n >= kParallelMinSymbols)
        for (int64_t l = 0; l < lanes; ++l) {
            const uint32_t* lw = w + woff[l];
            rans::LaneDecoder d = rans::start_lane(lw, woff[l + 1] - woff[l]);
            for (int64_t i = off[l]; i < off[l + 1]; ++i) {
                o[i] = rans::decode_symbol(d, lw, prm.mu[i], prm.ls[i], s, t);
            }
            st[l] = rans::end_status(d);
        }
    }
    return py::make_tuple(out, status);
}

// cum(k) for k = lo .. hi + 1 of each parameter pair: a (n, hi - lo + 2) uint32 table.
U32Array laplace_cdf(const I32Array& mu, const I32Array& ls, int64_t lo, int64_t hi, int64_t floor) {
    const laplace::Support s = checked_support(lo, hi, floor);
    const Params prm = checked_params(mu, ls);
    const int64_t width = hi - lo + 2;
    require(prm.n * width <= kMaxCdfEntries,
            "CDF table of " + std::to_string(prm.n) + " x " + std::to_string(width) +
                " entries is too large");
    U32Array out({prm.n, width});
    uint32_t* o = out.mutable_data();
    const laplace::Tables t = laplace::host_tables();
    for (int64_t i = 0; i < prm.n; ++i) {
        const uint64_t inv = laplace::inv_scale(prm.ls[i], t);
        for (int64_t k = 0; k < width; ++k) o[i * width + k] = laplace::cum(lo + k, prm.mu[i], inv, s, t.exp2);
    }
    return out;
}

// (cum(symbol), p(symbol)) of each symbol under its own parameters.
py::tuple laplace_freqs(const I32Array& symbols, const I32Array& mu, const I32Array& ls, int64_t lo,
                        int64_t hi, int64_t floor) {
    const laplace::Support s = checked_support(lo, hi, floor);
    const Params prm = checked_params(mu, ls);
    require(length_1d(symbols, "symbols") == prm.n, "symbols and mu_q differ in length");
    const int32_t* sym = symbols.data();
    check_symbols(sym, prm.n, lo, hi);
    U32Array cums(prm.n);
    U32Array freqs(prm.n);
    uint32_t* c = cums.mutable_data();
    uint32_t* p = freqs.mutable_data();
    const laplace::Tables t = laplace::host_tables();
    for (int64_t i = 0; i < prm.n; ++i) {
        const uint64_t inv = laplace::inv_scale(prm.ls[i], t);
        c[i] = laplace::cum(sym[i], prm.mu[i], inv, s, t.exp2);
        p[i] = laplace::cum(static_cast<int64_t>(sym[i]) + 1, prm.mu[i], inv, s, t.exp2) - c[i];
    }
    return py::make_tuple(cums, freqs);
}

}  // namespace

void register_rans_batch(py::module_& m) {
    m.def("rans_encode", &encode, py::arg("symbols"), py::arg("mu_q"), py::arg("logscale_q"),
          py::arg("lane_sizes"), py::arg("lo"), py::arg("hi"), py::arg("floor") = 1,
          "Encode int32 symbols lane by lane; returns (words uint32, lane_words int64).");
    m.def("rans_decode", &decode, py::arg("words"), py::arg("lane_words"), py::arg("mu_q"),
          py::arg("logscale_q"), py::arg("lane_sizes"), py::arg("lo"), py::arg("hi"), py::arg("floor") = 1,
          "Decode lanes; returns (symbols int32, per-lane end status uint8).");
    m.def("laplace_cdf", &laplace_cdf, py::arg("mu_q"), py::arg("logscale_q"), py::arg("lo"),
          py::arg("hi"), py::arg("floor") = 1, "Integer CDF cum(lo .. hi+1) per parameter pair, shape (n, hi-lo+2).");
    m.def("laplace_freqs", &laplace_freqs, py::arg("symbols"), py::arg("mu_q"),
          py::arg("logscale_q"), py::arg("lo"), py::arg("hi"), py::arg("floor") = 1,
          "(cum, freq) of each symbol under the integer model.");
    m.attr("RANS_MAX_SUPPORT") = laplace::kMaxSupport;
    m.attr("RANS_MAX_ABS_SYMBOL") = laplace::kMaxAbsSymbol;
    m.attr("LAPLACE_LS_MIN") = laplace::kLsMin;
    m.attr("LAPLACE_LS_MAX") = laplace::kLsMax;
}

}  // namespace rans_py
}  // namespace ddfast
