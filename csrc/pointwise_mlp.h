// Per-slice pointwise MLP on the CPU: out = act_k(...act_1(x W_1 + b_1)... W_k + b_k) over pixels.
//
// The CPU twin of the fused GPU kernel behind ddfast.ops.pointwise_mlp. x is [S, P, C0], W_i is
// [S, C_i, C_(i+1)] (row-major), b_i is [S, C_(i+1)]. Pixels run in tiles of TILE whose
// activations stay in cache; the backward recomputes a tile's activations instead of storing
// them, one slice at a time (its weight gradients are summed by one thread, with no reduction
// across threads).
// Binding-free: the pybind11 glue (argument checks, threads, the GIL) is in pointwise_mlp.cpp,
// which also defines layer_forward / layer_backward, the hot loops compiled for AVX-512, AVX2 and
// baseline x86-64 and picked at run time (everything they call here is force-inlined into them).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace ddfast {
namespace mlp {

// Pixels per tile: one tile's activations of every layer stay in cache.
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

// layer_forward_impl for one layer, with the widths of the ARM's hidden layers fixed at compile time.
__attribute__((always_inline)) inline void layer_forward_any(const float* in, int64_t rows, int64_t cin,
                                                             const float* w, const float* wt, const float* b,
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

// layer_backward_impl for one layer, with the widths of the ARM's hidden layers fixed at compile time.
__attribute__((always_inline)) inline void layer_backward_any(const float* in, const float* g, int64_t rows,
                                                              int64_t cin, const float* w, const float* wt,
                                                              int64_t cout, float* gw, float* gwt, float* gb,
                                                              float* g_in) {
    if (cin == 16 && cout == 16) return layer_backward_impl<16, 16>(in, g, rows, cin, w, wt, cout, gw, gwt, gb, g_in);
    if (cin == 32 && cout == 32) return layer_backward_impl<32, 32>(in, g, rows, cin, w, wt, cout, gw, gwt, gb, g_in);
    layer_backward_impl<0, 0>(in, g, rows, cin, w, wt, cout, gw, gwt, gb, g_in);
}

// layer_*_any, multiversioned (AVX-512, AVX2, baseline): the entry points of the tile walks below,
// which are not multiversioned themselves. Defined once, in pointwise_mlp.cpp.
void layer_forward(const float* in, int64_t rows, int64_t cin, const float* w, const float* wt, const float* b,
                   int64_t cout, bool relu, float* out);
void layer_backward(const float* in, const float* g, int64_t rows, int64_t cin, const float* w, const float* wt,
                    int64_t cout, float* gw, float* gwt, float* gb, float* g_in);

// One thread's buffers for Mlp::backward_slice: a tile's activations, the gradient flowing back
// through it, and the weight gradients of narrow layers, transposed.
struct Scratch {
    std::vector<float> acts, g, g_prev;
    std::vector<std::vector<float>> gwt;
};

// The layers of every slice, read in place (w, b) except for a transposed copy of the weights.
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

    // Fills wt from w (once widths, w and relu are set).
    void transpose_weights() {
        wt.resize(relu.size());
        for (size_t l = 0; l < relu.size(); ++l) {
            const int64_t ci = widths[l], co = widths[l + 1];
            wt[l].resize(slices * ci * co);
            for (int64_t s = 0; s < slices; ++s)
                for (int64_t i = 0; i < ci; ++i)
                    for (int64_t j = 0; j < co; ++j) wt[l][(s * co + j) * ci + i] = w[l][(s * ci + i) * co + j];
        }
    }

    Scratch make_scratch() const {
        const int64_t widest = *std::max_element(widths.begin(), widths.end());
        return {std::vector<float>(scratch()), std::vector<float>(TILE * widest), std::vector<float>(TILE * widest),
                std::vector<std::vector<float>>(layers())};
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

    // Slice s of the backward of sum(go * out): writes its weight and bias gradients to gw[l] + s * C_l * C_(l+1)
    // and gb[l] + s * C_(l+1) (zeroed by the caller), and its input gradient to gx unless gx is null.
    void backward_slice(const float* x, const float* go, int64_t s, float* const* gw, float* const* gb, float* gx,
                        Scratch& buffers) const {
        const int64_t k = layers();
        std::vector<float>& acts = buffers.acts;
        std::vector<float>& g = buffers.g;
        std::vector<float>& g_prev = buffers.g_prev;
        std::vector<std::vector<float>>& gwt = buffers.gwt;
        for (int64_t l = 0; l < k; ++l) {
            if (narrow(l)) gwt[l].assign(widths[l] * widths[l + 1], 0.0f);
        }
        for (int64_t p0 = 0; p0 < pixels; p0 += TILE) {
            const int64_t rows = std::min(TILE, pixels - p0);
            forward_tile(x, s, p0, rows, acts.data());
            std::vector<const float*> layer_in(k + 1);
            layer_in[0] = x + (s * pixels + p0) * widths[0];
            int64_t offset = 0;
            for (int64_t l = 0; l < k; ++l) {
                layer_in[l + 1] = acts.data() + offset;
                offset += TILE * widths[l + 1];
            }
            const int64_t cout = widths[k];
            std::copy(go + (s * pixels + p0) * cout, go + (s * pixels + p0 + rows) * cout, g.data());
            for (int64_t l = k - 1; l >= 0; --l) {
                const int64_t co = widths[l + 1], ci = widths[l];
                if (relu[l]) {
                    const float* a = layer_in[l + 1];
                    for (int64_t e = 0; e < rows * co; ++e) g[e] = a[e] > 0.0f ? g[e] : 0.0f;
                }
                float* into = nullptr;
                if (l > 0) into = g_prev.data();
                else if (gx != nullptr) into = gx + (s * pixels + p0) * ci;
                layer_backward(layer_in[l], g.data(), rows, ci, weight(l, s), weight_t(l, s), co, gw[l] + s * ci * co,
                               gwt[l].data(), gb[l] + s * co, into);
                if (l > 0) std::swap(g, g_prev);
            }
        }
        for (int64_t l = 0; l < k; ++l) {
            if (!narrow(l)) continue;
            const int64_t ci = widths[l], co = widths[l + 1];
            float* dst = gw[l] + s * ci * co;
            for (int64_t i = 0; i < ci; ++i)
                for (int64_t j = 0; j < co; ++j) dst[i * co + j] = gwt[l][j * ci + i];
        }
    }
};

}  // namespace mlp
}  // namespace ddfast
