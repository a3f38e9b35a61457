// Argument checks and array helpers shared by the rANS bindings of ddfast._cpu.
// Every check throws py::value_error (ValueError) before any state is touched.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "laplace_model.h"

namespace ddfast {
namespace rans_py {

namespace py = pybind11;

using I32Array = py::array_t<int32_t, py::array::c_style>;
using I64Array = py::array_t<int64_t, py::array::c_style>;
using U32Array = py::array_t<uint32_t, py::array::c_style>;
using U8Array = py::array_t<uint8_t, py::array::c_style>;

inline void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error(message);
}

// Length of a one-dimensional array (ValueError for any other rank).
template <typename A>
int64_t length_1d(const A& a, const char* name) {
    require(a.ndim() == 1, std::string(name) + " must be one-dimensional, got " +
                               std::to_string(a.ndim()) + " dimensions");
    return static_cast<int64_t>(a.shape(0));
}

// Data of a one-dimensional C-contiguous numpy array of exactly T, with no conversion (cheaper
// than an array_t argument, for per-step calls); ValueError for anything else.
template <typename T>
const T* exact_1d(const py::array& a, const char* name, int64_t& n) {
    if (!(a.ndim() == 1 && (a.flags() & py::array::c_style) && a.dtype().is(py::dtype::of<T>()))) {
        throw py::value_error(std::string(name) + " must be a one-dimensional contiguous array of " +
                              py::str(py::dtype::of<T>()).cast<std::string>());
    }
    n = static_cast<int64_t>(a.shape(0));
    return static_cast<const T*>(a.data());
}

inline laplace::Support checked_support(int64_t lo, int64_t hi, int64_t floor = 1) {
    require(lo <= hi, "empty support: lo=" + std::to_string(lo) + " > hi=" + std::to_string(hi));
    require(laplace::support_ok(lo, hi),
            "support [" + std::to_string(lo) + ", " + std::to_string(hi) + "] is too wide: at most " +
                std::to_string(laplace::kMaxSupport) + " symbols within +-" +
                std::to_string(laplace::kMaxAbsSymbol));
    require(floor >= 1 && floor <= laplace::kTotal && laplace::support_ok(lo, hi, static_cast<uint32_t>(floor)),
            "frequency floor " + std::to_string(floor) + " is invalid for a support of " +
                std::to_string(hi - lo + 1) + " symbols: floor * symbols may be at most 2^23");
    return laplace::make_support(lo, hi, static_cast<uint32_t>(floor));
}

// Prefix offsets (n_lanes + 1 entries) of per-lane counts that must add up to total.
inline std::vector<int64_t> offsets_of(const I64Array& counts, int64_t total, const char* name) {
    const int64_t n = length_1d(counts, name);
    const int64_t* c = counts.data();
    std::vector<int64_t> off(static_cast<size_t>(n) + 1, 0);
    for (int64_t i = 0; i < n; ++i) {
        if (c[i] < 0) throw py::value_error(std::string(name) + "[" + std::to_string(i) + "] is negative");
        off[i + 1] = off[i] + c[i];
        if (off[i + 1] > total) {
            throw py::value_error(std::string(name) + " adds up to more than " + std::to_string(total));
        }
    }
    require(off[n] == total, std::string(name) + " adds up to " + std::to_string(off[n]) +
                                 ", expected " + std::to_string(total));
    return off;
}

// ValueError naming the first symbol outside [lo, hi].
inline void check_symbols(const int32_t* sym, int64_t n, int64_t lo, int64_t hi) {
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) ok &= (sym[i] >= lo) & (sym[i] <= hi);
    if (ok) return;
    for (int64_t i = 0; i < n; ++i) {
        if (sym[i] < lo || sym[i] > hi) {
            throw py::value_error("symbol " + std::to_string(sym[i]) + " at index " + std::to_string(i) +
                                  " is outside the support [" + std::to_string(lo) + ", " +
                                  std::to_string(hi) + "]");
        }
    }
}

void register_rans_batch(py::module_& m);
void register_rans_incremental(py::module_& m);

}  // namespace rans_py
}  // namespace ddfast
