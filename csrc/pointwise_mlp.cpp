// pybind11 glue of the per-slice pointwise MLP on the CPU (the kernels: pointwise_mlp.h), bound as
// ddfast._cpu.mlp_forward / mlp_backward for ddfast.ops.cpu_ops. Checks the arrays before any
// work, then splits slices and pixel tiles (forward) or slices (backward) over threads with the
// GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings.h"
#include "cpu_util.h"
#include "multiversion.h"
#include "pointwise_mlp.h"

namespace ddfast {

// The layer entry points declared in pointwise_mlp.h, compiled once per instruction set.
namespace mlp {

DDFAST_MULTIVERSION
void layer_forward(const float* in, int64_t rows, int64_t cin, const float* w, const float* wt, const float* b,
                   int64_t cout, bool relu, float* out) {
    layer_forward_any(in, rows, cin, w, wt, b, cout, relu, out);
}

DDFAST_MULTIVERSION
void layer_backward(const float* in, const float* g, int64_t rows, int64_t cin, const float* w, const float* wt,
                    int64_t cout, float* gw, float* gwt, float* gb, float* g_in) {
    layer_backward_any(in, g, rows, cin, w, wt, cout, gw, gwt, gb, g_in);
}

}  // namespace mlp

namespace {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style>;
using cpu::require;
using mlp::Mlp;
using mlp::TILE;

Mlp describe(const FloatArray& x, const std::vector<FloatArray>& weights, const std::vector<FloatArray>& biases,
             const std::vector<bool>& relus) {
    require(x.ndim() == 3, "x must be [S, P, C0]");
    require(!relus.empty() && weights.size() == relus.size() && biases.size() == relus.size(),
            "need one weight, bias and relu flag per layer");
    Mlp m;
    m.slices = x.shape(0);
    m.pixels = x.shape(1);
    m.widths.push_back(x.shape(2));
    for (size_t l = 0; l < relus.size(); ++l) {
        const auto& w = weights[l];
        const auto& b = biases[l];
        require(w.ndim() == 3 && w.shape(0) == m.slices && w.shape(1) == m.widths.back(),
                "weight " + std::to_string(l) + " must be [S, C_in, C_out] matching the previous layer");
        require(b.ndim() == 2 && b.shape(0) == m.slices && b.shape(1) == w.shape(2),
                "bias " + std::to_string(l) + " must be [S, C_out]");
        m.widths.push_back(w.shape(2));
        m.w.push_back(w.data());
        m.b.push_back(b.data());
    }
    m.relu = relus;
    m.transpose_weights();
    return m;
}

FloatArray mlp_forward(const FloatArray& x, const std::vector<FloatArray>& weights,
                       const std::vector<FloatArray>& biases, const std::vector<bool>& relus) {
    const Mlp m = describe(x, weights, biases, relus);
    const int64_t cout = m.widths.back();
    FloatArray out = cpu::float_array({m.slices, m.pixels, cout});
    float* dst = out.mutable_data();
    const float* src = x.data();
    const int64_t tiles = (m.pixels + TILE - 1) / TILE;
    const int64_t last_offset = m.scratch() - TILE * cout;
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> acts(m.scratch());
#pragma omp for schedule(static)
            for (int64_t job = 0; job < m.slices * tiles; ++job) {
                const int64_t s = job / tiles, p0 = (job % tiles) * TILE;
                const int64_t rows = std::min(TILE, m.pixels - p0);
                m.forward_tile(src, s, p0, rows, acts.data());
                std::copy(acts.data() + last_offset, acts.data() + last_offset + rows * cout,
                          dst + (s * m.pixels + p0) * cout);
            }
        }
    }
    return out;
}

py::tuple mlp_backward(const FloatArray& x, const std::vector<FloatArray>& weights,
                       const std::vector<FloatArray>& biases, const std::vector<bool>& relus,
                       const FloatArray& grad_out, bool need_grad_x) {
    const Mlp m = describe(x, weights, biases, relus);
    const int64_t k = m.layers();
    require(grad_out.ndim() == 3 && grad_out.shape(0) == m.slices && grad_out.shape(1) == m.pixels &&
                grad_out.shape(2) == m.widths.back(),
            "grad_out must be [S, P, C_out]");
    std::vector<FloatArray> grad_w, grad_b;
    std::vector<float*> gw(k), gb(k);
    for (int64_t l = 0; l < k; ++l) {
        grad_w.emplace_back(std::vector<int64_t>{m.slices, m.widths[l], m.widths[l + 1]});
        grad_b.emplace_back(std::vector<int64_t>{m.slices, m.widths[l + 1]});
        gw[l] = grad_w[l].mutable_data();
        gb[l] = grad_b[l].mutable_data();
        std::fill(gw[l], gw[l] + grad_w[l].size(), 0.0f);
        std::fill(gb[l], gb[l] + grad_b[l].size(), 0.0f);
    }
    FloatArray grad_x = cpu::float_array(need_grad_x ? std::vector<int64_t>{m.slices, m.pixels, m.widths[0]}
                                                     : std::vector<int64_t>{0, 0, 0});
    float* gx = need_grad_x ? grad_x.mutable_data() : nullptr;
    const float* src = x.data();
    const float* go = grad_out.data();
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            mlp::Scratch scratch = m.make_scratch();
#pragma omp for schedule(dynamic, 1)
            for (int64_t s = 0; s < m.slices; ++s) m.backward_slice(src, go, s, gw.data(), gb.data(), gx, scratch);
        }
    }
    py::list gws, gbs;
    for (int64_t l = 0; l < k; ++l) {
        gws.append(grad_w[l]);
        gbs.append(grad_b[l]);
    }
    return py::make_tuple(need_grad_x ? py::object(grad_x) : py::none(), gws, gbs);
}

}  // namespace

void register_pointwise_mlp(py::module_& m) {
    m.def("mlp_forward", &mlp_forward, py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("relus"),
          "Per-slice pointwise MLP forward over [S, P, C0] float32 arrays.");
    m.def("mlp_backward", &mlp_backward, py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("relus"),
          py::arg("grad_out"), py::arg("need_grad_x"),
          "Gradients (x or None, [W_i], [b_i]) of sum(grad_out * mlp_forward(...)), recomputing activations.");
}

}  // namespace ddfast
