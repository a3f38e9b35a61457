// pybind11 glue of the native CPU image and rate kernels (ddfast.ops.cpu_ops): the synthesis's 3x3
// residual convs, the upsampling pyramid, the Laplace rate and the training quantizer's noisy
// softround, forward and backward.
//
// Threads split image planes (or element blocks); weight gradients go to per-thread accumulators
// summed at the end. Compiled with -ffp-contract=fast (setup.py), like cpu_ops.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "bindings.h"
#include "cpu_util.h"
#include "image_ops.h"
#include "laplace_rate.h"
#include "multiversion.h"
#include "softround.h"

namespace ddfast {

// The rate entry points declared in laplace_rate.h, compiled once per instruction set.
namespace rate {

DDFAST_MULTIVERSION
void bits_rows(const float* x, const float* mu, const float* s, int64_t n, float* out) { bits(x, mu, s, n, out); }

DDFAST_MULTIVERSION
void grad_rows(const float* x, const float* mu, const float* s, const float* g, int64_t n, float* gx, float* gs) {
    grad(x, mu, s, g, n, gx, gs);
}

}  // namespace rate

namespace {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style>;
using cpu::require;

// ------------------------------------------------------------------------------ 3x3 residual conv

struct ConvShape {
    int64_t slices, images, c, h, w;
};

// x is [S, N, C, H, W], or [S, N, H, W, C] when channels_last (the synthesis head's own layout, so
// the first conv reads the head's output without a transposing copy).
ConvShape conv_shape(const FloatArray& x, const FloatArray& weight, const FloatArray& bias, bool channels_last) {
    require(x.ndim() == 5, channels_last ? "x must be [S, N, H, W, C]" : "x must be [S, N, C, H, W]");
    const ConvShape s = channels_last ? ConvShape{x.shape(0), x.shape(1), x.shape(4), x.shape(2), x.shape(3)}
                                      : ConvShape{x.shape(0), x.shape(1), x.shape(2), x.shape(3), x.shape(4)};
    require(s.h >= 1 && s.w >= 1, "images must not be empty");
    require(s.c >= 1 && s.c <= 64, "the residual conv takes 1..64 channels");
    require(weight.ndim() == 5 && weight.shape(0) == s.slices && weight.shape(1) == s.c && weight.shape(2) == s.c &&
                weight.shape(3) == 3 && weight.shape(4) == 3,
            "weight must be [S, C, C, 3, 3]");
    require(bias.ndim() == 2 && bias.shape(0) == s.slices && bias.shape(1) == s.c, "bias must be [S, C]");
    return s;
}

// One image between layouts (RGB at a fixed channel count, where the loops vectorize).
DDFAST_MULTIVERSION
void to_planar_image(const float* src, int64_t hw, int64_t c, float* dst) {
    if (c == 3) return img::to_planar<3>(src, hw, c, dst);
    img::to_planar(src, hw, c, dst);
}

DDFAST_MULTIVERSION
void to_channels_last_image(const float* src, int64_t hw, int64_t c, float* dst) {
    if (c == 3) return img::to_channels_last<3>(src, hw, c, dst);
    img::to_channels_last(src, hw, c, dst);
}

DDFAST_MULTIVERSION
void conv3_forward_image(const float* x, int64_t c, int64_t h, int64_t w, const float* wt, const float* b, bool relu,
                         float* xp, float* acc, float* y) {
    img::conv3_forward(x, c, h, w, wt, b, relu, xp, acc, y);
}

DDFAST_MULTIVERSION
void conv3_backward_image(const float* x, const float* y, const float* g, int64_t c, int64_t h, int64_t w,
                          const float* wt, bool relu, float* xp, float* gp, float* gy, float* gx, float* gw,
                          float* gb) {
    img::conv3_backward(x, y, g, c, h, w, wt, relu, xp, gp, gy, gx, gw, gb);
}

FloatArray conv3_forward(const FloatArray& x, const FloatArray& weight, const FloatArray& bias, bool relu,
                         bool channels_last) {
    const ConvShape s = conv_shape(x, weight, bias, channels_last);
    FloatArray y = cpu::float_array({s.slices, s.images, s.c, s.h, s.w});
    const int64_t image = s.c * s.h * s.w, padded = s.c * (s.h + 2) * (s.w + 2);
    const float *src = x.data(), *pw = weight.data(), *pb = bias.data();
    float* dst = y.mutable_data();
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xp(padded + 2), acc(s.h * (s.w + 2)), planar(channels_last ? image : 0);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < s.slices * s.images; ++job) {
                const int64_t slice = job / s.images;
                const float* in = src + job * image;
                if (channels_last) {
                    to_planar_image(in, s.h * s.w, s.c, planar.data());
                    in = planar.data();
                }
                conv3_forward_image(in, s.c, s.h, s.w, pw + slice * s.c * s.c * 9, pb + slice * s.c, relu, xp.data(),
                                    acc.data(), dst + job * image);
            }
        }
    }
    return y;
}

// Gradients of conv3_forward; the x gradient comes back in x's layout.
py::tuple conv3_backward(const FloatArray& x, const FloatArray& y, const FloatArray& weight, const FloatArray& bias,
                         const FloatArray& grad_out, bool relu, bool need_grad_x, bool channels_last) {
    const ConvShape s = conv_shape(x, weight, bias, channels_last);
    for (const FloatArray* a : {&y, &grad_out})
        require(a->ndim() == 5 && a->shape(0) == s.slices && a->shape(1) == s.images && a->shape(2) == s.c &&
                    a->shape(3) == s.h && a->shape(4) == s.w,
                "y and grad_out must be [S, N, C, H, W]");
    const int64_t image = s.c * s.h * s.w, padded = s.c * (s.h + 2) * (s.w + 2), per_slice = s.c * s.c * 9 + s.c;
    std::vector<int64_t> x_shape(x.shape(), x.shape() + 5);
    FloatArray grad_x = cpu::float_array(need_grad_x ? x_shape : std::vector<int64_t>{0, 0, 0, 0, 0});
    float* gx = need_grad_x ? grad_x.mutable_data() : nullptr;
    const float *px = x.data(), *py_ = y.data(), *pg = grad_out.data(), *pw = weight.data();
    cpu::Partials partials(s.slices, per_slice);
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xp(padded + 2), gp(padded + 2), gy(s.c * img::conv3_grad_stride(s.h, s.w), 0.0f);
            std::vector<float> planar(channels_last ? 2 * image : 0);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < s.slices * s.images; ++job) {
                const int64_t slice = job / s.images;
                float* acc = partials.mine(slice);
                const float* in = px + job * image;
                float* gx_image = gx != nullptr ? gx + job * image : nullptr;
                if (channels_last) {
                    to_planar_image(in, s.h * s.w, s.c, planar.data());
                    in = planar.data();
                }
                float* gx_planar = channels_last && gx_image != nullptr ? planar.data() + image : gx_image;
                conv3_backward_image(in, py_ + job * image, pg + job * image, s.c, s.h, s.w,
                                     pw + slice * s.c * s.c * 9, relu, xp.data(), gp.data(), gy.data(), gx_planar,
                                     acc, acc + s.c * s.c * 9);
                if (channels_last && gx_image != nullptr) to_channels_last_image(gx_planar, s.h * s.w, s.c, gx_image);
            }
        }
    }
    FloatArray gw = cpu::float_array({s.slices, s.c, s.c, int64_t{3}, int64_t{3}});
    FloatArray gb = cpu::float_array({s.slices, s.c});
    for (int64_t slice = 0; slice < s.slices; ++slice) {
        const std::vector<float> sum = partials.reduce(slice);
        std::copy(sum.begin(), sum.begin() + s.c * s.c * 9, gw.mutable_data() + slice * s.c * s.c * 9);
        std::copy(sum.begin() + s.c * s.c * 9, sum.end(), gb.mutable_data() + slice * s.c);
    }
    return py::make_tuple(need_grad_x ? py::object(grad_x) : py::none(), gw, gb);
}

// -------------------------------------------------------------------------- upsampling pyramid
// The whole upsampled latent stack in one pass: channel j of an image is grid j upsampled j times
// (grid j -> the size of grid j - 1 -> ... -> grid 0), each step cropped top-left. The output is
// channels-last, [S, n, H, W, L]: the pixels the synthesis head reads. Jobs are (slice, image)
// pairs; the chain of a plane lives in per-thread scratch, so nothing but the output is written to
// memory. The backward recomputes each chain and walks it back.

struct Pyramid {
    int64_t slices, images, m, levels, radius, t2;
    std::vector<int64_t> h, w, offset;  // per grid, finest first; offset = start in the flat latents
};

Pyramid pyramid_shape(const FloatArray& latents, const FloatArray& taps,
                      const std::vector<std::pair<int64_t, int64_t>>& grids) {
    require(latents.ndim() == 3, "latents must be [S, n, M]");
    require(!grids.empty(), "need at least one grid");
    Pyramid p;
    p.slices = latents.shape(0);
    p.images = latents.shape(1);
    p.m = latents.shape(2);
    p.levels = static_cast<int64_t>(grids.size());
    int64_t total = 0;
    for (size_t i = 0; i < grids.size(); ++i) {
        const auto [h, w] = grids[i];
        require(h >= 1 && w >= 1, "grids must not be empty");
        if (i > 0)
            require(grids[i - 1].first <= 2 * h && grids[i - 1].second <= 2 * w,
                    "each grid must be at least half the size of the one before it");
        p.h.push_back(h);
        p.w.push_back(w);
        p.offset.push_back(total);
        total += h * w;
    }
    require(total == p.m, "the grids must hold exactly M latents");
    require(taps.ndim() == 3 && taps.shape(0) == p.slices && taps.shape(1) == 4, "taps must be [S, 4, T * T]");
    int64_t t = 1;
    while (t * t < taps.shape(2)) ++t;
    require(t * t == taps.shape(2) && t % 2 == 1, "taps must hold an odd square number of entries per phase");
    p.radius = t / 2;
    p.t2 = taps.shape(2);
    return p;
}

// Scratch size of a padded coarse plane (with the LANES floats the narrow kernels may read past it).
int64_t padded_size(const Pyramid& p) {
    return (p.levels > 1 ? (p.h[1] + 2 * p.radius) * (p.w[1] + 2 * p.radius) : 1) + head::LANES;
}

DDFAST_MULTIVERSION
void upsample_forward_plane(const float* x, int64_t h, int64_t w, const float* taps, int64_t r, int64_t oh,
                            int64_t ow, float* xp, float* row, float* out) {
    img::upsample_forward(x, h, w, taps, r, oh, ow, xp, row, out);
}

DDFAST_MULTIVERSION
void upsample_backward_plane(const float* x, const float* g, int64_t h, int64_t w, const float* taps, int64_t r,
                             int64_t oh, int64_t ow, float* xp, float* gp, float* row, float* acc, float* phases,
                             float* gx, float* gtaps) {
    img::upsample_backward(x, g, h, w, taps, r, oh, ow, xp, gp, row, acc, phases, gx, gtaps);
}

// Grid j of one image's latents upsampled to every finer grid: chain + offset[k] holds it at grid k's
// size for k = j - 1 .. stop (chain may be the output plane when stop = 0, see pyramid_forward).
void upsample_chain(const Pyramid& p, const float* latents, int64_t j, int64_t stop, const float* taps, float* chain,
                    float* last, float* xp, float* row) {
    const float* cur = latents + p.offset[j];
    for (int64_t k = j - 1; k >= stop; --k) {
        float* next = k == 0 ? last : chain + p.offset[k];
        upsample_forward_plane(cur, p.h[k + 1], p.w[k + 1], taps, p.radius, p.h[k], p.w[k], xp, row, next);
        cur = next;
    }
}

FloatArray upsample_pyramid_forward(const FloatArray& latents, const FloatArray& taps,
                                    const std::vector<std::pair<int64_t, int64_t>>& grids) {
    const Pyramid p = pyramid_shape(latents, taps, grids);
    const int64_t plane = p.h[0] * p.w[0];
    FloatArray out = cpu::float_array({p.slices, p.images, p.h[0], p.w[0], p.levels});
    const float *src = latents.data(), *pt = taps.data();
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xp(padded_size(p)), row(p.w[0]), chain(p.m), last(plane);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < p.slices * p.images; ++job) {
                const float* image = src + job * p.m;
                float* o = dst + job * p.levels * plane;
                for (int64_t j = 0; j < p.levels; ++j) {
                    const float* up = image;  // grid 0 as it is
                    if (j > 0) {
                        upsample_chain(p, image, j, 0, pt + (job / p.images) * 4 * p.t2, chain.data(), last.data(),
                                       xp.data(), row.data());
                        up = last.data();
                    }
                    for (int64_t e = 0; e < plane; ++e) o[e * p.levels + j] = up[e];
                }
            }
        }
    }
    return out;
}

py::tuple upsample_pyramid_backward(const FloatArray& latents, const FloatArray& taps, const FloatArray& grad_out,
                                    const std::vector<std::pair<int64_t, int64_t>>& grids) {
    const Pyramid p = pyramid_shape(latents, taps, grids);
    const int64_t plane = p.h[0] * p.w[0];
    require(grad_out.ndim() == 5 && grad_out.shape(0) == p.slices && grad_out.shape(1) == p.images &&
                grad_out.shape(2) == p.h[0] && grad_out.shape(3) == p.w[0] && grad_out.shape(4) == p.levels,
            "grad_out must be [S, n, H, W, L] like the pyramid");
    FloatArray grad = cpu::float_array({p.slices, p.images, p.m});
    const float *src = latents.data(), *pt = taps.data(), *pg = grad_out.data();
    float* gdst = grad.mutable_data();
    cpu::Partials partials(p.slices, 4 * p.t2);
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xp(padded_size(p)), gp(padded_size(p)), row(p.w[0]), chain(p.m), glast(plane),
                ga(plane), gb(plane);
            std::vector<float> acc(4 * p.t2 * head::LANES, 0.0f), phases(4 * p.h[0] * head::LANES);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < p.slices * p.images; ++job) {
                const int64_t slice = job / p.images;
                const float *image = src + job * p.m, *g = pg + job * p.levels * plane, *tp = pt + slice * 4 * p.t2;
                float* gl = gdst + job * p.m;
                for (int64_t e = 0; e < plane; ++e) gl[e] = g[e * p.levels];
                for (int64_t j = 1; j < p.levels; ++j) {
                    upsample_chain(p, image, j, 1, tp, chain.data(), nullptr, xp.data(), row.data());
                    for (int64_t e = 0; e < plane; ++e) glast[e] = g[e * p.levels + j];
                    const float* gcur = glast.data();
                    for (int64_t k = 0; k < j; ++k) {  // back from grid 0's size to grid j's
                        const float* x = k + 1 == j ? image + p.offset[j] : chain.data() + p.offset[k + 1];
                        float* gnext = k + 1 == j ? gl + p.offset[j] : gcur == ga.data() ? gb.data() : ga.data();
                        upsample_backward_plane(x, gcur, p.h[k + 1], p.w[k + 1], tp, p.radius, p.h[k], p.w[k],
                                                xp.data(), gp.data(), row.data(), acc.data(), phases.data(), gnext,
                                                partials.mine(slice));
                        gcur = gnext;
                    }
                }
                img::add_tap_sums(acc.data(), 4 * p.t2, partials.mine(slice));
            }
        }
    }
    FloatArray grad_taps = cpu::float_array({p.slices, int64_t{4}, p.t2});
    for (int64_t slice = 0; slice < p.slices; ++slice) {
        const std::vector<float> sum = partials.reduce(slice);
        std::copy(sum.begin(), sum.end(), grad_taps.mutable_data() + slice * 4 * p.t2);
    }
    return py::make_tuple(grad, grad_taps);
}

// ---------------------------------------------------------------------------------- Laplace rate

constexpr int64_t RATE_BLOCK = 4096;

int64_t blocks(int64_t n) { return (n + RATE_BLOCK - 1) / RATE_BLOCK; }

void require_same_size(const FloatArray& a, const FloatArray& b, const char* what) {
    require(a.size() == b.size(), std::string(what) + " must have x's number of elements");
}

FloatArray rate_forward(const FloatArray& x, const FloatArray& mu, const FloatArray& log_scale) {
    require_same_size(x, mu, "mu");
    require_same_size(x, log_scale, "log_scale");
    FloatArray out = cpu::float_array(std::vector<int64_t>(x.shape(), x.shape() + x.ndim()));
    const int64_t n = x.size();
    const float *px = x.data(), *pm = mu.data(), *ps = log_scale.data();
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        cpu::parallel_jobs(blocks(n), [&](int64_t block) {
            const int64_t e = block * RATE_BLOCK;
            rate::bits_rows(px + e, pm + e, ps + e, std::min(RATE_BLOCK, n - e), dst + e);
        });
    }
    return out;
}

py::tuple rate_backward(const FloatArray& x, const FloatArray& mu, const FloatArray& log_scale,
                        const FloatArray& grad_out) {
    require_same_size(x, mu, "mu");
    require_same_size(x, log_scale, "log_scale");
    require_same_size(x, grad_out, "grad_out");
    const std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim());
    FloatArray gx = cpu::float_array(shape);
    FloatArray gmu = cpu::float_array(shape);
    FloatArray gs = cpu::float_array(shape);
    const int64_t n = x.size();
    const float *px = x.data(), *pm = mu.data(), *ps = log_scale.data(), *pg = grad_out.data();
    float *dx = gx.mutable_data(), *dm = gmu.mutable_data(), *ds = gs.mutable_data();
    {
        py::gil_scoped_release release;
        cpu::parallel_jobs(blocks(n), [&](int64_t block) {
            const int64_t e = block * RATE_BLOCK, count = std::min(RATE_BLOCK, n - e);
            rate::grad_rows(px + e, pm + e, ps + e, pg + e, count, dx + e, ds + e);
            for (int64_t i = e; i < e + count; ++i) dm[i] = -dx[i];
        });
    }
    return py::make_tuple(gx, gmu, gs);
}


// ------------------------------------------------------------------------- noisy softround

DDFAST_MULTIVERSION
void softround_block(const float* x, const float* noise, float t, int64_t n, const float* g, float* out) {
    softround::block(x, noise, t, n, g, out);
}

void softround_job(const FloatArray& x, const FloatArray& noise, float temperature, const float* g, float* out) {
    const int64_t n = x.size();
    const float *px = x.data(), *pn = noise.data();
    py::gil_scoped_release release;
    cpu::parallel_jobs(blocks(n), [&](int64_t block) {
        const int64_t e = block * RATE_BLOCK;
        softround_block(px + e, pn + e, temperature, std::min(RATE_BLOCK, n - e), g != nullptr ? g + e : nullptr,
                        out + e);
    });
}

FloatArray softround_forward(const FloatArray& x, const FloatArray& noise, float temperature) {
    require_same_size(x, noise, "noise");
    require(temperature > 0.0f, "the temperature must be > 0");
    FloatArray out = cpu::float_array(std::vector<int64_t>(x.shape(), x.shape() + x.ndim()));
    softround_job(x, noise, temperature, nullptr, out.mutable_data());
    return out;
}

FloatArray softround_backward(const FloatArray& x, const FloatArray& noise, float temperature,
                              const FloatArray& grad_out) {
    require_same_size(x, noise, "noise");
    require_same_size(x, grad_out, "grad_out");
    require(temperature > 0.0f, "the temperature must be > 0");
    FloatArray grad = cpu::float_array(std::vector<int64_t>(x.shape(), x.shape() + x.ndim()));
    softround_job(x, noise, temperature, grad_out.data(), grad.mutable_data());
    return grad;
}

}  // namespace

void register_cpu_image_ops(py::module_& m) {
    m.def("conv3_forward", &conv3_forward, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("relu"),
          py::arg("channels_last") = false,
          "Per-slice residual 3x3 conv with replicate padding: act(conv(x) + b + x) as [S, N, C, H, W], from x "
          "[S, N, C, H, W] (or [S, N, H, W, C] with channels_last).");
    m.def("conv3_backward", &conv3_backward, py::arg("x"), py::arg("y"), py::arg("weight"), py::arg("bias"),
          py::arg("grad_out"), py::arg("relu"), py::arg("need_grad_x"), py::arg("channels_last") = false,
          "Gradients (x or None, in x's layout; weight; bias) of sum(grad_out * conv3_forward(...)), given its "
          "output y.");
    m.def("upsample_pyramid_forward", &upsample_pyramid_forward, py::arg("latents"), py::arg("taps"),
          py::arg("grids"),
          "The upsampled latent stack: [S, n, M] flat grids (finest first) and [S, 4, T * T] polyphase taps -> "
          "[S, n, H, W, L] (channels last).");
    m.def("upsample_pyramid_backward", &upsample_pyramid_backward, py::arg("latents"), py::arg("taps"),
          py::arg("grad_out"), py::arg("grids"),
          "Gradients (latents [S, n, M], taps [S, 4, T * T]) of sum(grad_out * upsample_pyramid_forward(...)).");
    m.def("softround_forward", &softround_forward, py::arg("x"), py::arg("noise"), py::arg("temperature"),
          "softround(softround(x, T) + noise, T) elementwise (the training quantizer's proxy).");
    m.def("softround_backward", &softround_backward, py::arg("x"), py::arg("noise"), py::arg("temperature"),
          py::arg("grad_out"), "The gradient to x of sum(grad_out * softround_forward(...)).");
    m.def("rate_forward", &rate_forward, py::arg("x"), py::arg("mu"), py::arg("log_scale"),
          "Laplace bits of every element (at most 16), as ddfast.ops.laplace_rate.");
    m.def("rate_backward", &rate_backward, py::arg("x"), py::arg("mu"), py::arg("log_scale"), py::arg("grad_out"),
          "Gradients (x, mu, log_scale) of sum(grad_out * rate_forward(...)).");
}

}  // namespace ddfast
