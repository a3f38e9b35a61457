// Per-slice pointwise MLP on the CPU: out = act_k(...act_1(x W_1 + b_1)... W_k + b_k) over pixels.
//
// The CPU twin of the fused GPU kernel behind ddfast.ops.pointwise_mlp. x is [S, P, C0], W_i is
// [S, C_i, C_(i+1)] (row-major), b_i is [S, C_(i+1)]. Pixels run in tiles of TILE whose
// activations stay in cache; the backward recomputes a tile's activations instead of storing
// them. Work is split over slices and pixel tiles (forward) or slices (backward: each slice's
// weight gradients are then summed by one thread, with no reduction across threads).
// The hot loops are compiled for AVX-512, AVX2 and baseline x86-64, picked at run time.
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

namespace ddfast {
namespace {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style>;

constexpr int64_t TILE = 32;


// Layers narrower than this run in "dot" form on transposed weights, so that the vectorized loop
// always spans the long dimension (e.g. 240 -> 3 is three dot products of length 240).
constexpr int64_t NARROW = 16;
constexpr int PIXEL_BLOCK = 4;

// Dot product with 16 independent partial sums (vectorizable without reassociation flags).
__attribute__((always_inline)) inline float dot(const float* a, const float* b, int64_t n) {
    float acc[16] = {0.0f};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int k = 0; k < 16; ++k) acc[k] += a[i + k] * b[i + k];
    }
    float sum = 0.0f;
    for (int k = 0; k < 16; ++k) sum += acc[k];
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

// out[t, :] = b + in[t, :] W for t < rows, then ReLU if asked. w is [cin, cout] and wt the same
// weights as [cout, cin]; the loop runs along whichever of cin / cout is long. CO > 0 fixes cout
// at compile time, so that a pixel's outputs stay in registers.
template <int CI, int CO>
__attribute__((always_inline)) inline void layer_forward_impl(const float* in, int64_t rows, int64_t cin_runtime,
                                                              const float* w, const float* wt, const float* b,
                                                              int64_t cout_runtime, bool relu, float* out) {
    const int64_t cin = CI > 0 ? CI : cin_runtime;
    const int64_t cout = CO > 0 ? CO : cout_runtime;
    for (int64_t t = 0; t < rows; ++t) {
        float* o = out + t * cout;
        const float* x = in + t * cin;
        if (CO == 0 && cout < NARROW) {
            for (int64_t j = 0; j < cout; ++j) o[j] = b[j] + dot(x, wt + j * cin, cin);
        } else if (CO > 0 && t + PIXEL_BLOCK <= rows) {
            // PIXEL_BLOCK pixels at once: independent accumulator chains, each weight row read once.
            float acc[PIXEL_BLOCK][CO > 0 ? CO : 1];
            for (int p = 0; p < PIXEL_BLOCK; ++p)
                for (int j = 0; j < CO; ++j) acc[p][j] = b[j];
            for (int64_t i = 0; i < cin; ++i) {
                const float* wr = w + i * CO;
                for (int p = 0; p < PIXEL_BLOCK; ++p) {
                    const float a = x[p * cin + i];
                    for (int j = 0; j < CO; ++j) acc[p][j] += a * wr[j];
                }
            }
            for (int p = 0; p < PIXEL_BLOCK; ++p) {
                for (int j = 0; j < CO; ++j) o[p * CO + j] = relu && acc[p][j] < 0.0f ? 0.0f : acc[p][j];
            }
            t += PIXEL_BLOCK - 1;
            continue;
        } else {
            for (int64_t j = 0; j < cout; ++j) o[j] = b[j];
            for (int64_t i = 0; i < cin; ++i) {
                const float a = x[i];
                const float* wr = w + i * cout;
                for (int64_t j = 0; j < cout; ++j) o[j] += a * wr[j];
            }
        }
        if (relu) {
            for (int64_t j = 0; j < cout; ++j) o[j] = o[j] > 0.0f ? o[j] : 0.0f;
        }
    }
}

DDFAST_MULTIVERSION
void layer_forward(const float* in, int64_t rows, int64_t cin, const float* w, const float* wt, const float* b,
                   int64_t cout, bool relu, float* out) {
    if (cin == 16 && cout == 16) return layer_forward_impl<16, 16>(in, rows, cin, w, wt, b, cout, relu, out);
    if (cin == 32 && cout == 32) return layer_forward_impl<32, 32>(in, rows, cin, w, wt, b, cout, relu, out);
    layer_forward_impl<0, 0>(in, rows, cin, w, wt, b, cout, relu, out);
}

// g_in for PIXEL_BLOCK pixels of a CI -> CO layer: g_in[p] = sum_j g[p, j] wt[j].
template <int CI, int CO>
__attribute__((always_inline)) inline void grad_input_block(const float* g, const float* wt, float* g_in) {
    float acc[PIXEL_BLOCK][CI];
    for (int p = 0; p < PIXEL_BLOCK; ++p)
        for (int i = 0; i < CI; ++i) acc[p][i] = 0.0f;
    for (int j = 0; j < CO; ++j) {
        const float* row = wt + j * CI;
        for (int p = 0; p < PIXEL_BLOCK; ++p) {
            const float gj = g[p * CO + j];
            for (int i = 0; i < CI; ++i) acc[p][i] += gj * row[i];
        }
    }
    for (int p = 0; p < PIXEL_BLOCK; ++p)
        for (int i = 0; i < CI; ++i) g_in[p * CI + i] = acc[p][i];
}

// gb += sum(g); gW += in^T g, accumulated in [cin, cout] (gw) or, for a narrow layer, transposed
// [cout, cin] (gwt); writes g_in = g W^T when g_in is not null. Works on a whole tile so that a
// weight-gradient row stays in registers (or L1) across the tile's pixels.
template <int CI, int CO>
__attribute__((always_inline)) inline void layer_backward_impl(const float* in, const float* g, int64_t rows,
                                                               int64_t cin_runtime, const float* w, const float* wt,
                                                               int64_t cout_runtime, float* gw, float* gwt,
                                                               float* gb, float* g_in) {
    const int64_t cin = CI > 0 ? CI : cin_runtime;
    const int64_t cout = CO > 0 ? CO : cout_runtime;
    for (int64_t t = 0; t < rows; ++t) {
        const float* gr = g + t * cout;
        for (int64_t j = 0; j < cout; ++j) gb[j] += gr[j];
    }
    if (CO == 0 && cout < NARROW) {
        for (int64_t j = 0; j < cout; ++j) {
            float* row = gwt + j * cin;
            for (int64_t t = 0; t < rows; ++t) {
                const float gj = g[t * cout + j];
                const float* x = in + t * cin;
                for (int64_t i = 0; i < cin; ++i) row[i] += gj * x[i];
            }
        }
    } else {
        for (int64_t i = 0; i < cin; ++i) {
            float* row = gw + i * cout;
            if (CO > 0) {
                float acc[CO > 0 ? CO : 1];
                for (int j = 0; j < CO; ++j) acc[j] = row[j];
                for (int64_t t = 0; t < rows; ++t) {
                    const float a = in[t * cin + i];
                    const float* gr = g + t * CO;
                    for (int j = 0; j < CO; ++j) acc[j] += a * gr[j];
                }
                for (int j = 0; j < CO; ++j) row[j] = acc[j];
            } else {
                for (int64_t t = 0; t < rows; ++t) {
                    const float a = in[t * cin + i];
                    const float* gr = g + t * cout;
                    for (int64_t j = 0; j < cout; ++j) row[j] += a * gr[j];
                }
            }
        }
    }
    if (g_in == nullptr) return;
    int64_t t = 0;
    if (CI > 0 && CO > 0) {
        for (; t + PIXEL_BLOCK <= rows; t += PIXEL_BLOCK) grad_input_block<CI, CO>(g + t * CO, wt, g_in + t * CI);
    }
    for (; t < rows; ++t) {
        const float* gr = g + t * cout;
        float* gi = g_in + t * cin;
        if (cin >= NARROW) {
            for (int64_t i = 0; i < cin; ++i) gi[i] = 0.0f;
            for (int64_t j = 0; j < cout; ++j) {
                const float gj = gr[j];
                const float* row = wt + j * cin;
                for (int64_t i = 0; i < cin; ++i) gi[i] += gj * row[i];
            }
        } else {
            for (int64_t i = 0; i < cin; ++i) gi[i] = dot(gr, w + i * cout, cout);
        }
    }
}

DDFAST_MULTIVERSION
void layer_backward(const float* in, const float* g, int64_t rows, int64_t cin, const float* w, const float* wt,
                    int64_t cout, float* gw, float* gwt, float* gb, float* g_in) {
    if (cin == 16 && cout == 16) return layer_backward_impl<16, 16>(in, g, rows, cin, w, wt, cout, gw, gwt, gb, g_in);
    if (cin == 32 && cout == 32) return layer_backward_impl<32, 32>(in, g, rows, cin, w, wt, cout, gw, gwt, gb, g_in);
    layer_backward_impl<0, 0>(in, g, rows, cin, w, wt, cout, gw, gwt, gb, g_in);
}

struct Mlp {
    int64_t slices = 0, pixels = 0;
    std::vector<int64_t> widths;  // C0, C1, ..., Ck
    std::vector<const float*> w, b;
    std::vector<std::vector<float>> wt;  // per layer: the weights transposed, [S, cout, cin]
    std::vector<bool> relu;

    int64_t layers() const { return static_cast<int64_t>(relu.size()); }
    bool narrow(int64_t l) const { return widths[l + 1] < NARROW; }
    const float* weight(int64_t l, int64_t s) const { return w[l] + s * widths[l] * widths[l + 1]; }
    const float* weight_t(int64_t l, int64_t s) const { return wt[l].data() + s * widths[l] * widths[l + 1]; }
    const float* bias(int64_t l, int64_t s) const { return b[l] + s * widths[l + 1]; }
    int64_t scratch() const {  // floats of one tile's activations (all layers)
        int64_t total = 0;
        for (int64_t l = 1; l < static_cast<int64_t>(widths.size()); ++l) total += widths[l];
        return total * TILE;
    }
    // Activations of layers 1..k for rows [p0, p0 + rows) of slice s, stored one after another.
    void forward_tile(const float* x, int64_t s, int64_t p0, int64_t rows, float* acts) const {
        const float* in = x + (s * pixels + p0) * widths[0];
        float* out = acts;
        for (int64_t l = 0; l < layers(); ++l) {
            layer_forward(in, rows, widths[l], weight(l, s), weight_t(l, s), bias(l, s), widths[l + 1], relu[l], out);
            in = out;
            out += TILE * widths[l + 1];
        }
    }
};

void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error(message);
}

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
    m.wt.resize(relus.size());
    for (size_t l = 0; l < relus.size(); ++l) {
        const int64_t ci = m.widths[l], co = m.widths[l + 1];
        m.wt[l].resize(m.slices * ci * co);
        for (int64_t s = 0; s < m.slices; ++s)
            for (int64_t i = 0; i < ci; ++i)
                for (int64_t j = 0; j < co; ++j) m.wt[l][(s * co + j) * ci + i] = m.w[l][(s * ci + i) * co + j];
    }
    return m;
}

FloatArray mlp_forward(const FloatArray& x, const std::vector<FloatArray>& weights,
                       const std::vector<FloatArray>& biases, const std::vector<bool>& relus) {
    const Mlp m = describe(x, weights, biases, relus);
    const int64_t cout = m.widths.back();
    FloatArray out({m.slices, m.pixels, cout});
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
    FloatArray grad_x(need_grad_x ? std::vector<int64_t>{m.slices, m.pixels, m.widths[0]}
                                  : std::vector<int64_t>{0, 0, 0});
    float* gx = need_grad_x ? grad_x.mutable_data() : nullptr;
    const float* src = x.data();
    const float* go = grad_out.data();
    const int64_t widest = *std::max_element(m.widths.begin(), m.widths.end());
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> acts(m.scratch()), g(TILE * widest), g_prev(TILE * widest);
            std::vector<std::vector<float>> gwt(k);
#pragma omp for schedule(dynamic, 1)
            for (int64_t s = 0; s < m.slices; ++s) {
                for (int64_t l = 0; l < k; ++l) {
                    if (m.narrow(l)) gwt[l].assign(m.widths[l] * m.widths[l + 1], 0.0f);
                }
                for (int64_t p0 = 0; p0 < m.pixels; p0 += TILE) {
                    const int64_t rows = std::min(TILE, m.pixels - p0);
                    m.forward_tile(src, s, p0, rows, acts.data());
                    std::vector<const float*> layer_in(k + 1);
                    layer_in[0] = src + (s * m.pixels + p0) * m.widths[0];
                    int64_t offset = 0;
                    for (int64_t l = 0; l < k; ++l) {
                        layer_in[l + 1] = acts.data() + offset;
                        offset += TILE * m.widths[l + 1];
                    }
                    const int64_t cout = m.widths[k];
                    std::copy(go + (s * m.pixels + p0) * cout, go + (s * m.pixels + p0 + rows) * cout, g.data());
                    for (int64_t l = k - 1; l >= 0; --l) {
                        const int64_t co = m.widths[l + 1], ci = m.widths[l];
                        if (m.relu[l]) {
                            const float* a = layer_in[l + 1];
                            for (int64_t e = 0; e < rows * co; ++e) g[e] = a[e] > 0.0f ? g[e] : 0.0f;
                        }
                        float* into = nullptr;
                        if (l > 0) into = g_prev.data();
                        else if (gx != nullptr) into = gx + (s * m.pixels + p0) * ci;
                        layer_backward(layer_in[l], g.data(), rows, ci, m.weight(l, s), m.weight_t(l, s), co,
                                       gw[l] + s * ci * co, gwt[l].data(), gb[l] + s * co, into);
                        if (l > 0) std::swap(g, g_prev);
                    }
                }
                for (int64_t l = 0; l < k; ++l) {
                    if (!m.narrow(l)) continue;
                    const int64_t ci = m.widths[l], co = m.widths[l + 1];
                    float* dst = gw[l] + s * ci * co;
                    for (int64_t i = 0; i < ci; ++i)
                        for (int64_t j = 0; j < co; ++j) dst[i * co + j] = gwt[l][j * ci + i];
                }
            }
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
