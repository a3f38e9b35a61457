// Exp-Golomb coding of quantized network weights, exposed to Python as ddfast._cpu.eg_*.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "exp_golomb.h"
#include "rans_pyutil.h"

namespace ddfast {
namespace {

namespace py = pybind11;
using rans_py::I32Array;
using rans_py::I64Array;
using rans_py::require;

void check_orders(const I32Array& orders, int64_t n) {
    require(rans_py::length_1d(orders, "orders") == n, "orders needs one entry per value");
    for (int64_t i = 0; i < n; ++i) {
        if (orders.at(i) < 0 || orders.at(i) > expgolomb::kMaxOrder) {
            require(false, "exp-Golomb order " + std::to_string(orders.at(i)) + " at index " + std::to_string(i) +
                               " is outside [0, " + std::to_string(expgolomb::kMaxOrder) + "]");
        }
    }
}

// Code values[i] with order orders[i], in order; returns the bytes (the last one zero-padded).
py::bytes encode(const I64Array& values, const I32Array& orders) {
    const int64_t n = rans_py::length_1d(values, "values");
    check_orders(orders, n);
    for (int64_t i = 0; i < n; ++i) {
        if (values.at(i) < -(1ll << 40) || values.at(i) > (1ll << 40)) require(false, "value too large to code");
    }
    expgolomb::BitWriter out;
    for (int64_t i = 0; i < n; ++i) out.put_code(values.at(i), orders.at(i));
    const auto& bytes = out.bytes();
    return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Decode orders.size() values from data starting at bit `bit`; returns (values int64, end bit).
// ValueError when the data end first, a prefix is too long or |value| exceeds max_abs.
py::tuple decode(const py::bytes& data, int64_t bit, const I32Array& orders, int64_t max_abs) {
    const std::string_view view(data);
    const int64_t n = orders.ndim() == 1 ? orders.shape(0) : -1;
    check_orders(orders, n);
    require(bit >= 0 && bit <= static_cast<int64_t>(view.size()) * 8, "start bit outside the data");
    expgolomb::BitReader in(reinterpret_cast<const uint8_t*>(view.data()), static_cast<int64_t>(view.size()), bit);
    I64Array out(n);
    int64_t* o = out.mutable_data();
    for (int64_t i = 0; i < n; ++i) {
        const int64_t at = in.bit();
        if (!in.get_code(orders.at(i), o[i])) {
            require(false, "exp-Golomb value " + std::to_string(i) + " at bit " + std::to_string(at) +
                               " runs past the end of its data or has an overlong prefix");
        }
        if (o[i] > max_abs || o[i] < -max_abs) {
            require(false, "exp-Golomb value " + std::to_string(i) + " at bit " + std::to_string(at) + " is " +
                               std::to_string(o[i]) + ", beyond +-" + std::to_string(max_abs));
        }
    }
    return py::make_tuple(out, in.bit());
}

}  // namespace

void register_weight_codec(py::module_& m) {
    m.def("eg_encode", &encode, py::arg("values"), py::arg("orders"),
          "Exp-Golomb code of int64 values, each with its order; returns bytes (last byte zero-padded).");
    m.def("eg_decode", &decode, py::arg("data"), py::arg("bit"), py::arg("orders"), py::arg("max_abs"),
          "Decode len(orders) exp-Golomb values from bytes at a bit offset; returns (values int64, end bit).");
    m.attr("EG_MAX_ORDER") = expgolomb::kMaxOrder;
}

}  // namespace ddfast
