// pybind11 glue of the native CPU training kernels (ddfast.ops.cpu_ops): the fused synthesis head,
// the ARM's MLP, and the latent rate (context gather + ARM + Laplace bits in one pass).
//
// Threads split (slice, pixel tile) jobs; weight gradients go to per-thread accumulators that are
// summed at the end, so any number of slices keeps both cores busy. This file is compiled with
// -ffp-contract=fast (setup.py): the training kernels may fuse multiply-adds; the exact decoder
// code elsewhere may not.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "arm_mlp.h"
#include "bindings.h"
#include "cpu_util.h"
#include "head_mlp.h"
#include "indexed_gather.h"
#include "laplace_rate.h"
#include "multiversion.h"

namespace ddfast {
namespace {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style>;

constexpr int64_t HEAD_TILE = 256;

using cpu::require;

// Every slice's weights in the layouts of head::Weights.
struct HeadLayouts {
    int64_t slices, c0, hidden, c2, hp;
    std::vector<float> w1t, w1p, w2tp, b1p;
    const float *b1, *w2, *b2;

    head::Weights slice(int64_t s) const {
        return {hidden, w1t.data() + s * hidden * c0, b1 + s * hidden, w2 + s * hidden * c2, b2 + s * c2,
                w1p.data() + s * c0 * hp, w2tp.data() + s * c2 * hp, b1p.data() + s * hp};
    }
};

HeadLayouts head_layouts(const FloatArray& x, const FloatArray& w1, const FloatArray& b1, const FloatArray& w2,
                         const FloatArray& b2) {
    require(x.ndim() == 3, "x must be [S, P, C0]");
    HeadLayouts l;
    l.slices = x.shape(0);
    l.c0 = x.shape(2);
    require(w1.ndim() == 3 && w1.shape(0) == l.slices && w1.shape(1) == l.c0, "w1 must be [S, C0, H]");
    l.hidden = w1.shape(2);
    require(b1.ndim() == 2 && b1.shape(0) == l.slices && b1.shape(1) == l.hidden, "b1 must be [S, H]");
    require(w2.ndim() == 3 && w2.shape(0) == l.slices && w2.shape(1) == l.hidden, "w2 must be [S, H, C2]");
    l.c2 = w2.shape(2);
    require(b2.ndim() == 2 && b2.shape(0) == l.slices && b2.shape(1) == l.c2, "b2 must be [S, C2]");
    require(l.c0 >= 1 && l.c0 <= head::MAX_IN && l.c2 >= 1 && l.c2 <= head::MAX_OUT && l.hidden >= 1,
            "the fused head takes 1..8 inputs, 1..4 outputs and a hidden layer");
    l.hp = head::padded(l.hidden);
    l.b1 = b1.data();
    l.w2 = w2.data();
    l.b2 = b2.data();
    const float* pw1 = w1.data();
    l.w1t.resize(l.slices * l.hidden * l.c0);
    l.w1p.assign(l.slices * l.c0 * l.hp, 0.0f);
    l.w2tp.assign(l.slices * l.c2 * l.hp, 0.0f);
    l.b1p.assign(l.slices * l.hp, 0.0f);
    for (int64_t s = 0; s < l.slices; ++s) {
        for (int64_t i = 0; i < l.c0; ++i)
            for (int64_t j = 0; j < l.hidden; ++j) {
                const float v = pw1[(s * l.c0 + i) * l.hidden + j];
                l.w1t[(s * l.hidden + j) * l.c0 + i] = v;
                l.w1p[(s * l.c0 + i) * l.hp + j] = v;
            }
        for (int64_t j = 0; j < l.hidden; ++j) {
            l.b1p[s * l.hp + j] = l.b1[s * l.hidden + j];
            for (int64_t k = 0; k < l.c2; ++k) l.w2tp[(s * l.c2 + k) * l.hp + j] = l.w2[(s * l.hidden + j) * l.c2 + k];
        }
    }
    return l;
}

struct HeadForward {
    const float* x;
    int64_t rows;
    const head::Weights& w;
    float* y;
    template <int C0, int C2>
    DDF_INLINE void operator()() const { head::forward_rows<C0, C2>(x, rows, w, y); }
};

struct HeadBackward {
    const float *x, *g;
    int64_t rows;
    const head::Weights& w;
    float *gx, *gw1p, *gw2tp, *gb1p, *gb2;
    template <int C0, int C2>
    DDF_INLINE void operator()() const {
        if (gx != nullptr) head::input_grad_rows<C0, C2>(x, g, rows, w, gx);
        head::weight_grad_rows<C0, C2>(x, g, rows, w, gw1p, gw2tp, gb1p, gb2);
    }
};

DDFAST_MULTIVERSION
void head_forward_rows(int64_t c0, int64_t c2, const float* x, int64_t rows, const head::Weights& w, float* y) {
    head::dispatch(c0, c2, HeadForward{x, rows, w, y});
}

DDFAST_MULTIVERSION
void head_backward_rows(int64_t c0, int64_t c2, const float* x, const float* g, int64_t rows,
                        const head::Weights& w, float* gx, float* gw1p, float* gw2tp, float* gb1p, float* gb2) {
    head::dispatch(c0, c2, HeadBackward{x, g, rows, w, gx, gw1p, gw2tp, gb1p, gb2});
}

FloatArray head_forward(const FloatArray& x, const FloatArray& w1, const FloatArray& b1, const FloatArray& w2,
                        const FloatArray& b2) {
    const HeadLayouts l = head_layouts(x, w1, b1, w2, b2);
    const int64_t pixels = x.shape(1);
    FloatArray y = cpu::float_array({l.slices, pixels, l.c2});
    const float* src = x.data();
    float* dst = y.mutable_data();
    const int64_t tiles = (pixels + HEAD_TILE - 1) / HEAD_TILE;
    {
        py::gil_scoped_release release;
        cpu::parallel_jobs(l.slices * tiles, [&](int64_t job) {
            const int64_t s = job / tiles, p0 = (job % tiles) * HEAD_TILE;
            const head::Weights w = l.slice(s);
            head_forward_rows(l.c0, l.c2, src + (s * pixels + p0) * l.c0, std::min(HEAD_TILE, pixels - p0), w,
                              dst + (s * pixels + p0) * l.c2);
        });
    }
    return y;
}

py::tuple head_backward(const FloatArray& x, const FloatArray& w1, const FloatArray& b1, const FloatArray& w2,
                        const FloatArray& b2, const FloatArray& grad_out, bool need_grad_x) {
    const HeadLayouts l = head_layouts(x, w1, b1, w2, b2);
    const int64_t pixels = x.shape(1);
    require(grad_out.ndim() == 3 && grad_out.shape(0) == l.slices && grad_out.shape(1) == pixels &&
                grad_out.shape(2) == l.c2,
            "grad_out must be [S, P, C2]");
    FloatArray grad_x = cpu::float_array(need_grad_x ? std::vector<int64_t>{l.slices, pixels, l.c0}
                                                     : std::vector<int64_t>{0, 0, 0});
    float* gx = need_grad_x ? grad_x.mutable_data() : nullptr;
    const float* src = x.data();
    const float* go = grad_out.data();
    const int64_t tiles = (pixels + HEAD_TILE - 1) / HEAD_TILE;
    // Per thread and slice: dW1 [C0, Hp], dW2^T [C2, Hp], db1 [Hp], db2 [C2].
    cpu::Partials partials(l.slices, (l.c0 + l.c2 + 1) * l.hp + l.c2);
    {
        py::gil_scoped_release release;
        cpu::parallel_jobs(l.slices * tiles, [&](int64_t job) {
            const int64_t s = job / tiles, p0 = (job % tiles) * HEAD_TILE;
            const int64_t rows = std::min(HEAD_TILE, pixels - p0);
            float* acc = partials.mine(s);
            const head::Weights w = l.slice(s);
            head_backward_rows(l.c0, l.c2, src + (s * pixels + p0) * l.c0, go + (s * pixels + p0) * l.c2, rows, w,
                               gx == nullptr ? nullptr : gx + (s * pixels + p0) * l.c0, acc, acc + l.c0 * l.hp,
                               acc + (l.c0 + l.c2) * l.hp, acc + (l.c0 + l.c2 + 1) * l.hp);
        });
    }
    FloatArray gw1 = cpu::float_array({l.slices, l.c0, l.hidden});
    FloatArray gb1 = cpu::float_array({l.slices, l.hidden});
    FloatArray gw2 = cpu::float_array({l.slices, l.hidden, l.c2});
    FloatArray gb2 = cpu::float_array({l.slices, l.c2});
    float *pw1 = gw1.mutable_data(), *pb1 = gb1.mutable_data(), *pw2 = gw2.mutable_data(), *pb2 = gb2.mutable_data();
    for (int64_t s = 0; s < l.slices; ++s) {
        const std::vector<float> sum = partials.reduce(s);
        for (int64_t i = 0; i < l.c0; ++i)
            for (int64_t j = 0; j < l.hidden; ++j) pw1[(s * l.c0 + i) * l.hidden + j] = sum[i * l.hp + j];
        for (int64_t j = 0; j < l.hidden; ++j) {
            for (int64_t k = 0; k < l.c2; ++k) pw2[(s * l.hidden + j) * l.c2 + k] = sum[(l.c0 + k) * l.hp + j];
            pb1[s * l.hidden + j] = sum[(l.c0 + l.c2) * l.hp + j];
        }
        for (int64_t k = 0; k < l.c2; ++k) pb2[s * l.c2 + k] = sum[(l.c0 + l.c2 + 1) * l.hp + k];
    }
    return py::make_tuple(need_grad_x ? py::object(grad_x) : py::none(), gw1, gb1, gw2, gb2);
}

// ---------------------------------------------------------------------------------------- ARM MLP

// Every slice's ARM weights in the layouts of arm::Weights.
struct ArmLayouts {
    int64_t slices, depth, c;
    std::vector<float> w, wt, b, wo, bo, wot;

    arm::Weights slice(int64_t s) const {
        const int64_t cc = c * c;
        return {depth, w.data() + s * depth * cc, wt.data() + s * depth * cc, b.data() + s * depth * c,
                wo.data() + s * c * arm::LANES, bo.data() + s * arm::LANES, wot.data() + s * arm::OUT * c};
    }
};

ArmLayouts arm_layouts(int64_t slices, int64_t width, const std::vector<FloatArray>& weights,
                       const std::vector<FloatArray>& biases) {
    require(!weights.empty() && weights.size() == biases.size(), "need one bias per weight");
    ArmLayouts l;
    l.slices = slices;
    l.c = width;
    l.depth = static_cast<int64_t>(weights.size()) - 1;
    require(l.c == 16 || l.c == 32 || l.c == 64, "the native ARM takes C = 16, 32 or 64");
    const int64_t c = l.c, cc = c * c, s_n = l.slices;
    for (int64_t k = 0; k <= l.depth; ++k) {
        const int64_t co = k < l.depth ? c : arm::OUT;
        require(weights[k].ndim() == 3 && weights[k].shape(0) == s_n && weights[k].shape(1) == c &&
                    weights[k].shape(2) == co && biases[k].ndim() == 2 && biases[k].shape(0) == s_n &&
                    biases[k].shape(1) == co,
                "ARM layer " + std::to_string(k) + " must be [S, C, " + std::to_string(co) + "] with a bias [S, " +
                    std::to_string(co) + "]");
    }
    l.w.resize(s_n * l.depth * cc);
    l.wt.resize(s_n * l.depth * cc);
    l.b.resize(s_n * l.depth * c);
    l.wo.assign(s_n * c * arm::LANES, 0.0f);
    l.bo.assign(s_n * arm::LANES, 0.0f);
    l.wot.resize(s_n * arm::OUT * c);
    for (int64_t s = 0; s < s_n; ++s) {
        for (int64_t k = 0; k < l.depth; ++k) {
            const float* src = weights[k].data() + s * cc;
            float* w = l.w.data() + (s * l.depth + k) * cc;
            float* wt = l.wt.data() + (s * l.depth + k) * cc;
            for (int64_t i = 0; i < c; ++i)
                for (int64_t j = 0; j < c; ++j) {
                    w[i * c + j] = src[i * c + j];
                    wt[j * c + i] = src[i * c + j];
                }
            std::copy(biases[k].data() + s * c, biases[k].data() + (s + 1) * c, l.b.data() + (s * l.depth + k) * c);
        }
        const float* wo = weights[l.depth].data() + s * c * arm::OUT;
        for (int64_t i = 0; i < c; ++i)
            for (int64_t o = 0; o < arm::OUT; ++o) {
                l.wo[(s * c + i) * arm::LANES + o] = wo[i * arm::OUT + o];
                l.wot[(s * arm::OUT + o) * c + i] = wo[i * arm::OUT + o];
            }
        for (int64_t o = 0; o < arm::OUT; ++o) l.bo[s * arm::LANES + o] = biases[l.depth].data()[s * arm::OUT + o];
    }
    return l;
}

int64_t arm_tile(int64_t c) { return 64 * 16 / c; }

DDFAST_MULTIVERSION
void arm_forward_tile(int64_t c, const float* x, int64_t tile, const arm::Weights& w, float* acts, float* out16) {
    if (c == 16) arm::forward_tile<1>(x, tile, w, acts, out16);
    else if (c == 32) arm::forward_tile<2>(x, tile, w, acts, out16);
    else arm::forward_tile<4>(x, tile, w, acts, out16);
}

DDFAST_MULTIVERSION
void arm_backward_tile(int64_t c, const float* x, const float* go, int64_t tile, const arm::Weights& w,
                       const float* acts, float* g, float* g2, float* gx, float* gw, float* gb, float* gwot,
                       float* gbo) {
    if (c == 16) arm::backward_tile<1>(x, go, tile, w, acts, g, g2, gx, gw, gb, gwot, gbo);
    else if (c == 32) arm::backward_tile<2>(x, go, tile, w, acts, g, g2, gx, gw, gb, gwot, gbo);
    else arm::backward_tile<4>(x, go, tile, w, acts, g, g2, gx, gw, gb, gwot, gbo);
}

// Rows [p0, p0 + rows) of a [N, width] array into a zero-padded [tile, width] buffer.
void copy_tile(const float* src, int64_t p0, int64_t rows, int64_t width, int64_t tile, float* dst) {
    std::copy(src + p0 * width, src + (p0 + rows) * width, dst);
    std::fill(dst + rows * width, dst + tile * width, 0.0f);
}

// The per-thread weight-gradient accumulators summed into torch's layouts: ([dW_l], [db_l]).
py::tuple arm_weight_grads(const ArmLayouts& l, const cpu::Partials& partials) {
    const int64_t depth = l.depth, c = l.c;
    py::list gws, gbs;
    std::vector<float*> pw, pb;
    for (int64_t k = 0; k <= depth; ++k) {
        const int64_t co = k < depth ? c : arm::OUT;
        FloatArray wk = cpu::float_array({l.slices, c, co});
        FloatArray bk = cpu::float_array({l.slices, co});
        pw.push_back(wk.mutable_data());
        pb.push_back(bk.mutable_data());
        gws.append(wk);
        gbs.append(bk);
    }
    for (int64_t s = 0; s < l.slices; ++s) {
        const std::vector<float> sum = partials.reduce(s);
        for (int64_t k = 0; k < depth; ++k) {
            std::copy(sum.begin() + k * c * c, sum.begin() + (k + 1) * c * c, pw[k] + s * c * c);
            std::copy(sum.begin() + depth * c * c + k * c, sum.begin() + depth * c * c + (k + 1) * c, pb[k] + s * c);
        }
        const float* gwot = sum.data() + depth * c * c + depth * c;
        for (int64_t i = 0; i < c; ++i)
            for (int64_t o = 0; o < arm::OUT; ++o) pw[depth][(s * c + i) * arm::OUT + o] = gwot[o * c + i];
        for (int64_t o = 0; o < arm::OUT; ++o) pb[depth][s * arm::OUT + o] = gwot[arm::OUT * c + o];
    }
    return py::make_tuple(gws, gbs);
}

FloatArray arm_forward(const FloatArray& x, const std::vector<FloatArray>& weights,
                       const std::vector<FloatArray>& biases) {
    require(x.ndim() == 3, "x must be [S, N, C]");
    const ArmLayouts l = arm_layouts(x.shape(0), x.shape(2), weights, biases);
    const int64_t n = x.shape(1), c = l.c, tile = arm_tile(c), tiles = (n + tile - 1) / tile;
    FloatArray out = cpu::float_array({l.slices, n, static_cast<int64_t>(arm::OUT)});
    const float* src = x.data();
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xt(tile * c), acts(std::max<int64_t>(l.depth, 1) * tile * c), out16(tile * arm::LANES);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < l.slices * tiles; ++job) {
                const int64_t s = job / tiles, p0 = (job % tiles) * tile, rows = std::min(tile, n - p0);
                copy_tile(src + s * n * c, p0, rows, c, tile, xt.data());
                const arm::Weights w = l.slice(s);
                arm_forward_tile(c, xt.data(), tile, w, acts.data(), out16.data());
                for (int64_t p = 0; p < rows; ++p)
                    for (int64_t o = 0; o < arm::OUT; ++o)
                        dst[(s * n + p0 + p) * arm::OUT + o] = out16[p * arm::LANES + o];
            }
        }
    }
    return out;
}

py::tuple arm_backward(const FloatArray& x, const std::vector<FloatArray>& weights,
                       const std::vector<FloatArray>& biases, const FloatArray& grad_out, bool need_grad_x) {
    require(x.ndim() == 3, "x must be [S, N, C]");
    const ArmLayouts l = arm_layouts(x.shape(0), x.shape(2), weights, biases);
    const int64_t n = x.shape(1), c = l.c, tile = arm_tile(c), tiles = (n + tile - 1) / tile, depth = l.depth;
    require(grad_out.ndim() == 3 && grad_out.shape(0) == l.slices && grad_out.shape(1) == n &&
                grad_out.shape(2) == arm::OUT,
            "grad_out must be [S, N, 2]");
    FloatArray grad_x =
        cpu::float_array(need_grad_x ? std::vector<int64_t>{l.slices, n, c} : std::vector<int64_t>{0, 0, 0});
    float* gx = need_grad_x ? grad_x.mutable_data() : nullptr;
    const float* src = x.data();
    const float* go = grad_out.data();
    const int64_t per_slice = depth * c * c + depth * c + arm::OUT * c + arm::OUT;
    cpu::Partials partials(l.slices, per_slice);
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xt(tile * c), got(tile * arm::OUT), acts(std::max<int64_t>(depth, 1) * tile * c),
                out16(tile * arm::LANES), g(tile * c), g2(tile * c), gxt(tile * c);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < l.slices * tiles; ++job) {
                const int64_t s = job / tiles, p0 = (job % tiles) * tile, rows = std::min(tile, n - p0);
                copy_tile(src + s * n * c, p0, rows, c, tile, xt.data());
                copy_tile(go + s * n * arm::OUT, p0, rows, arm::OUT, tile, got.data());
                float* acc = partials.mine(s);
                const arm::Weights w = l.slice(s);
                arm_forward_tile(c, xt.data(), tile, w, acts.data(), out16.data());
                arm_backward_tile(c, xt.data(), got.data(), tile, w, acts.data(), g.data(), g2.data(),
                                  gx != nullptr ? gxt.data() : nullptr, acc, acc + depth * c * c,
                                  acc + depth * c * c + depth * c, acc + depth * c * c + depth * c + arm::OUT * c);
                if (gx != nullptr) std::copy(gxt.data(), gxt.data() + rows * c, gx + (s * n + p0) * c);
            }
        }
    }
    const py::tuple grads = arm_weight_grads(l, partials);
    return py::make_tuple(need_grad_x ? py::object(grad_x) : py::none(), grads[0], grads[1]);
}


// -------------------------------------------------- latent rate: context gather + ARM + Laplace bits
// Bits of every latent of S slices x n images, [S, n, M], under the ARM's Laplace model of its
// causal context, with no [S, n * M, C] context array: each (slice, image) job copies its M latents
// into a buffer whose slot M is zero, gathers a tile's contexts through the [M, C] neighbour table
// (entries in [0, M], M = outside the grid), runs the ARM on the tile and the rate on its rows.
// The backward recomputes each tile, keeps the image's context gradient and adds it into the
// latent gradient through the context gather's adjoint table (indexed_gather.h; jobs own whole
// images, so no two threads write the same latent).
using IndexArray = py::array_t<int32_t, py::array::c_style>;

struct LatentRateJob {
    int64_t slices, images, m, c;
};

LatentRateJob latent_rate_job(const FloatArray& latents, const IndexArray& neighbours) {
    require(latents.ndim() == 3, "latents must be [S, n, M]");
    require(neighbours.ndim() == 2 && neighbours.shape(0) == latents.shape(2), "neighbours must be [M, C]");
    const LatentRateJob job{latents.shape(0), latents.shape(1), latents.shape(2), neighbours.shape(1)};
    const int32_t* nb = neighbours.data();
    for (int64_t e = 0; e < job.m * job.c; ++e)
        require(nb[e] >= 0 && nb[e] <= job.m, "neighbour entries must lie in [0, M]");
    return job;
}

// The ARM's (mu, log-scale) rows of a tile ([T, 16] with both in lanes 0 and 1) as two arrays.
void split_outputs(const float* out16, int64_t rows, float* mu, float* log_scale) {
    for (int64_t p = 0; p < rows; ++p) {
        mu[p] = out16[p * arm::LANES];
        log_scale[p] = out16[p * arm::LANES + 1];
    }
}

// Rows [p0, p0 + rows) of one image's contexts into a [tile, C] tile, zero rows after `rows`.
void gather_tile(const float* padded, const int32_t* nb, int64_t c, int64_t p0, int64_t rows, int64_t tile,
                 float* xt) {
    gather::gather(padded, nb + p0 * c, rows * c, xt);
    std::fill(xt + rows * c, xt + tile * c, 0.0f);
}

FloatArray latent_rate_forward(const FloatArray& latents, const IndexArray& neighbours,
                               const std::vector<FloatArray>& weights, const std::vector<FloatArray>& biases) {
    const LatentRateJob shape = latent_rate_job(latents, neighbours);
    const ArmLayouts l = arm_layouts(shape.slices, shape.c, weights, biases);
    const int64_t m = shape.m, c = shape.c, tile = arm_tile(c);
    FloatArray bits = cpu::float_array({shape.slices, shape.images, m});
    const float* src = latents.data();
    const int32_t* nb = neighbours.data();
    float* dst = bits.mutable_data();
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> padded(m + 1, 0.0f), xt(tile * c), acts(std::max<int64_t>(l.depth, 1) * tile * c),
                out16(tile * arm::LANES), mu(tile), log_scale(tile);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < shape.slices * shape.images; ++job) {
                const float* image = src + job * m;
                std::copy(image, image + m, padded.begin());
                const arm::Weights w = l.slice(job / shape.images);
                for (int64_t p0 = 0; p0 < m; p0 += tile) {
                    const int64_t rows = std::min(tile, m - p0);
                    gather_tile(padded.data(), nb, c, p0, rows, tile, xt.data());
                    arm_forward_tile(c, xt.data(), tile, w, acts.data(), out16.data());
                    split_outputs(out16.data(), rows, mu.data(), log_scale.data());
                    rate::bits_rows(image + p0, mu.data(), log_scale.data(), rows, dst + job * m + p0);
                }
            }
        }
    }
    return bits;
}

py::tuple latent_rate_backward(const FloatArray& latents, const IndexArray& neighbours,
                               const std::vector<FloatArray>& weights, const std::vector<FloatArray>& biases,
                               const FloatArray& grad_bits) {
    const LatentRateJob shape = latent_rate_job(latents, neighbours);
    require(grad_bits.ndim() == 3 && grad_bits.shape(0) == shape.slices && grad_bits.shape(1) == shape.images &&
                grad_bits.shape(2) == shape.m,
            "grad_bits must be [S, n, M] like the latents");
    const ArmLayouts l = arm_layouts(shape.slices, shape.c, weights, biases);
    const int64_t m = shape.m, c = shape.c, tile = arm_tile(c), depth = l.depth;
    FloatArray grad = cpu::float_array({shape.slices, shape.images, m});
    const float* src = latents.data();
    const float* gbits = grad_bits.data();
    const int32_t* nb = neighbours.data();
    float* gdst = grad.mutable_data();
    cpu::Partials partials(l.slices, depth * c * c + depth * c + arm::OUT * c + arm::OUT);
    const int64_t zero_slot = (m + tile - 1) / tile * tile * c;  // past every tile's context gradient rows
    const gather::Readers readers = gather::readers_of(nb, m * c, m, static_cast<int32_t>(zero_slot));
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> padded(m + 1, 0.0f), xt(tile * c), acts(std::max<int64_t>(depth, 1) * tile * c),
                out16(tile * arm::LANES), got(tile * arm::OUT, 0.0f), g(tile * c), g2(tile * c),
                context_grad(zero_slot + 1, 0.0f), mu(tile), log_scale(tile), gs(tile);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < shape.slices * shape.images; ++job) {
                const int64_t s = job / shape.images;
                const float* image = src + job * m;
                std::copy(image, image + m, padded.begin());
                float* latent_grad = gdst + job * m;
                const arm::Weights w = l.slice(s);
                float* acc = partials.mine(s);
                for (int64_t p0 = 0; p0 < m; p0 += tile) {
                    const int64_t rows = std::min(tile, m - p0);
                    gather_tile(padded.data(), nb, c, p0, rows, tile, xt.data());
                    arm_forward_tile(c, xt.data(), tile, w, acts.data(), out16.data());
                    split_outputs(out16.data(), rows, mu.data(), log_scale.data());
                    float* gx = latent_grad + p0;  // the rate's own gradient; the contexts' is added below
                    rate::grad_rows(image + p0, mu.data(), log_scale.data(), gbits + job * m + p0, rows, gx, gs.data());
                    for (int64_t p = 0; p < rows; ++p) {
                        got[p * arm::OUT] = -gx[p];  // d bits / d mu = -d bits / d x
                        got[p * arm::OUT + 1] = gs[p];
                    }
                    std::fill(got.begin() + rows * arm::OUT, got.end(), 0.0f);
                    arm_backward_tile(c, xt.data(), got.data(), tile, w, acts.data(), g.data(), g2.data(),
                                      context_grad.data() + p0 * c, acc, acc + depth * c * c,
                                      acc + depth * c * c + depth * c, acc + depth * c * c + depth * c + arm::OUT * c);
                }
                gather::gather_add(context_grad.data(), readers.table.data(), readers.width, m, latent_grad);
            }
        }
    }
    const py::tuple grads = arm_weight_grads(l, partials);
    return py::make_tuple(grad, grads[0], grads[1]);
}
FloatArray indexed_gather(const FloatArray& src, const IndexArray& index, bool fast) {
    require(src.ndim() == 1 && index.ndim() == 1, "src and index must be 1-D");
    for (int64_t e = 0; e < index.shape(0); ++e)
        require(index.data()[e] >= 0 && index.data()[e] < src.shape(0), "index entries must lie in [0, len(src))");
    require(!fast || gather::fast_path(), "this CPU has no AVX-512 gather path");
    FloatArray out = cpu::float_array({index.shape(0)});
    gather::gather(src.data(), index.data(), index.shape(0), out.mutable_data(), fast);
    return out;
}

FloatArray indexed_gather_add(const FloatArray& src, const IndexArray& readers, const FloatArray& acc, bool fast) {
    require(src.ndim() == 1 && readers.ndim() == 2 && acc.ndim() == 1 && readers.shape(1) == acc.shape(0),
            "src [N], readers [width, n] and acc [n]");
    for (int64_t e = 0; e < readers.size(); ++e)
        require(readers.data()[e] >= 0 && readers.data()[e] < src.shape(0), "readers must lie in [0, len(src))");
    require(!fast || gather::fast_path(), "this CPU has no AVX-512 gather path");
    FloatArray out = cpu::float_array({acc.shape(0)});
    std::copy(acc.data(), acc.data() + acc.shape(0), out.mutable_data());
    gather::gather_add(src.data(), readers.data(), readers.shape(0), acc.shape(0), out.mutable_data(), fast);
    return out;
}
}  // namespace

void register_cpu_ops(py::module_& m) {
    m.def("head_forward", &head_forward, py::arg("x"), py::arg("w1"), py::arg("b1"), py::arg("w2"), py::arg("b2"),
          "Fused relu(x W1 + b1) W2 + b2 over [S, P, C0] float32 pixels (C0 <= 8, C2 <= 4).");
    m.def("head_backward", &head_backward, py::arg("x"), py::arg("w1"), py::arg("b1"), py::arg("w2"),
          py::arg("b2"), py::arg("grad_out"), py::arg("need_grad_x"),
          "Gradients (x or None, W1, b1, W2, b2) of sum(grad_out * head_forward(...)), recomputing the hidden layer.");
    m.def("arm_forward", &arm_forward, py::arg("x"), py::arg("weights"), py::arg("biases"),
          "The ARM MLP over [S, N, C] contexts (C = 16, 32, 64): depth ReLU layers C -> C, then C -> 2.");
    m.def("latent_rate_forward", &latent_rate_forward, py::arg("latents"), py::arg("neighbours"), py::arg("weights"),
          py::arg("biases"), "Bits [S, n, M] of every latent under the ARM of its gathered context (C = 16, 32, 64).");
    m.def("indexed_gather", &indexed_gather, py::arg("src"), py::arg("index"), py::arg("fast"),
          "Test hook: src[index] by the AVX-512 path (fast) or its plain twin.");
    m.def("indexed_gather_add", &indexed_gather_add, py::arg("src"), py::arg("readers"), py::arg("acc"),
          py::arg("fast"), "Test hook: acc + sum_t src[readers[t]] by the AVX-512 path (fast) or its plain twin.");
    m.def("indexed_gather_fast_path", &gather::fast_path, "Whether this CPU takes the AVX-512 gather path.");
    m.def("latent_rate_backward", &latent_rate_backward, py::arg("latents"), py::arg("neighbours"),
          py::arg("weights"), py::arg("biases"), py::arg("grad_bits"),
          "Gradients (latents, [W_l], [b_l]) of sum(grad_bits * latent_rate_forward(...)).");
    m.def("arm_backward", &arm_backward, py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("grad_out"),
          py::arg("need_grad_x"), "Gradients (x or None, [W_l], [b_l]) of sum(grad_out * arm_forward(...)).");
}

}  // namespace ddfast
