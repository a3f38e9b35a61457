// pybind11 glue of the native CPU image and rate kernels (ddfast.ops.cpu_ops): the synthesis's 3x3
// residual convs, the upsampling levels and the Laplace rate, forward and backward.
//
// Threads split image planes (or element blocks); weight gradients go to per-thread accumulators
// summed at the end. Compiled with -ffp-contract=fast (setup.py), like cpu_ops.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bindings.h"
#include "cpu_util.h"
#include "image_ops.h"
#include "laplace_rate.h"
#include "multiversion.h"

namespace ddfast {
namespace {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style>;
using cpu::require;

// ------------------------------------------------------------------------------ 3x3 residual conv

struct ConvShape {
    int64_t slices, images, c, h, w;
};

ConvShape conv_shape(const FloatArray& x, const FloatArray& weight, const FloatArray& bias) {
    require(x.ndim() == 5, "x must be [S, N, C, H, W]");
    const ConvShape s{x.shape(0), x.shape(1), x.shape(2), x.shape(3), x.shape(4)};
    require(s.h >= 1 && s.w >= 1, "images must not be empty");
    require(weight.ndim() == 5 && weight.shape(0) == s.slices && weight.shape(1) == s.c && weight.shape(2) == s.c &&
                weight.shape(3) == 3 && weight.shape(4) == 3,
            "weight must be [S, C, C, 3, 3]");
    require(bias.ndim() == 2 && bias.shape(0) == s.slices && bias.shape(1) == s.c, "bias must be [S, C]");
    return s;
}

DDFAST_MULTIVERSION
void conv3_forward_image(const float* x, int64_t c, int64_t h, int64_t w, const float* wt, const float* b, bool relu,
                         float* xp, float* y) {
    img::conv3_forward(x, c, h, w, wt, b, relu, xp, y);
}

DDFAST_MULTIVERSION
void conv3_backward_image(const float* x, const float* y, const float* g, int64_t c, int64_t h, int64_t w,
                          const float* wt, bool relu, float* xp, float* gp, float* gy, float* gx, float* gw,
                          float* gb) {
    img::conv3_backward(x, y, g, c, h, w, wt, relu, xp, gp, gy, gx, gw, gb);
}

FloatArray conv3_forward(const FloatArray& x, const FloatArray& weight, const FloatArray& bias, bool relu) {
    const ConvShape s = conv_shape(x, weight, bias);
    FloatArray y({s.slices, s.images, s.c, s.h, s.w});
    const int64_t image = s.c * s.h * s.w, padded = s.c * (s.h + 2) * (s.w + 2);
    const float *src = x.data(), *pw = weight.data(), *pb = bias.data();
    float* dst = y.mutable_data();
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xp(padded);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < s.slices * s.images; ++job) {
                const int64_t slice = job / s.images;
                conv3_forward_image(src + job * image, s.c, s.h, s.w, pw + slice * s.c * s.c * 9, pb + slice * s.c,
                                    relu, xp.data(), dst + job * image);
            }
        }
    }
    return y;
}

py::tuple conv3_backward(const FloatArray& x, const FloatArray& y, const FloatArray& weight, const FloatArray& bias,
                         const FloatArray& grad_out, bool relu, bool need_grad_x) {
    const ConvShape s = conv_shape(x, weight, bias);
    for (const FloatArray* a : {&y, &grad_out})
        require(a->ndim() == 5 && a->shape(0) == s.slices && a->shape(1) == s.images && a->shape(2) == s.c &&
                    a->shape(3) == s.h && a->shape(4) == s.w,
                "y and grad_out must have x's shape");
    const int64_t image = s.c * s.h * s.w, padded = s.c * (s.h + 2) * (s.w + 2), per_slice = s.c * s.c * 9 + s.c;
    FloatArray grad_x(need_grad_x ? std::vector<int64_t>{s.slices, s.images, s.c, s.h, s.w}
                                  : std::vector<int64_t>{0, 0, 0, 0, 0});
    float* gx = need_grad_x ? grad_x.mutable_data() : nullptr;
    const float *px = x.data(), *py_ = y.data(), *pg = grad_out.data(), *pw = weight.data();
    cpu::Partials partials(s.slices, per_slice);
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xp(padded), gp(padded), gy(image);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < s.slices * s.images; ++job) {
                const int64_t slice = job / s.images;
                float* acc = partials.mine(slice);
                conv3_backward_image(px + job * image, py_ + job * image, pg + job * image, s.c, s.h, s.w,
                                     pw + slice * s.c * s.c * 9, relu, xp.data(), gp.data(), gy.data(),
                                     gx != nullptr ? gx + job * image : nullptr, acc, acc + s.c * s.c * 9);
            }
        }
    }
    FloatArray gw({s.slices, s.c, s.c, int64_t{3}, int64_t{3}}), gb({s.slices, s.c});
    for (int64_t slice = 0; slice < s.slices; ++slice) {
        const std::vector<float> sum = partials.reduce(slice);
        std::copy(sum.begin(), sum.begin() + s.c * s.c * 9, gw.mutable_data() + slice * s.c * s.c * 9);
        std::copy(sum.begin() + s.c * s.c * 9, sum.end(), gb.mutable_data() + slice * s.c);
    }
    return py::make_tuple(need_grad_x ? py::object(grad_x) : py::none(), gw, gb);
}

// ---------------------------------------------------------------------------- upsampling level

struct UpShape {
    int64_t slices, planes, h, w, radius;
};

UpShape up_shape(const FloatArray& x, const FloatArray& taps, int64_t out_h, int64_t out_w) {
    require(x.ndim() == 4, "x must be [S, B, h, w]");
    const int64_t slices = x.shape(0), h = x.shape(2), w = x.shape(3);
    require(h >= 1 && w >= 1, "grids must not be empty");
    require(taps.ndim() == 3 && taps.shape(0) == slices && taps.shape(1) == 4, "taps must be [S, 4, T * T]");
    int64_t t = 1;
    while (t * t < taps.shape(2)) ++t;
    require(t * t == taps.shape(2) && t % 2 == 1, "taps must hold an odd square number of entries per phase");
    require(out_h >= 1 && out_h <= 2 * h && out_w >= 1 && out_w <= 2 * w, "the output must be at most twice the input");
    return {slices, x.shape(1), h, w, t / 2};
}

DDFAST_MULTIVERSION
void upsample_forward_plane(const float* x, int64_t h, int64_t w, const float* taps, int64_t r, int64_t oh,
                            int64_t ow, float* xp, float* row, float* out) {
    img::upsample_forward(x, h, w, taps, r, oh, ow, xp, row, out);
}

DDFAST_MULTIVERSION
void upsample_backward_plane(const float* x, const float* g, int64_t h, int64_t w, const float* taps, int64_t r,
                             int64_t oh, int64_t ow, float* xp, float* gp, float* row, float* gx, float* gtaps) {
    img::upsample_backward(x, g, h, w, taps, r, oh, ow, xp, gp, row, gx, gtaps);
}

FloatArray upsample_forward(const FloatArray& x, const FloatArray& taps, int64_t out_h, int64_t out_w) {
    const UpShape s = up_shape(x, taps, out_h, out_w);
    FloatArray out({s.slices, s.planes, out_h, out_w});
    const int64_t r = s.radius, t2 = taps.shape(2), padded = (s.h + 2 * r) * (s.w + 2 * r);
    const float *src = x.data(), *pt = taps.data();
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xp(padded), row(s.w);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < s.slices * s.planes; ++job)
                upsample_forward_plane(src + job * s.h * s.w, s.h, s.w, pt + (job / s.planes) * 4 * t2, r, out_h,
                                       out_w, xp.data(), row.data(), dst + job * out_h * out_w);
        }
    }
    return out;
}

py::tuple upsample_backward(const FloatArray& x, const FloatArray& taps, const FloatArray& grad_out) {
    require(grad_out.ndim() == 4, "grad_out must be [S, B, out_h, out_w]");
    const int64_t out_h = grad_out.shape(2), out_w = grad_out.shape(3);
    const UpShape s = up_shape(x, taps, out_h, out_w);
    require(grad_out.shape(0) == s.slices && grad_out.shape(1) == s.planes, "grad_out must be [S, B, out_h, out_w]");
    const int64_t r = s.radius, t2 = taps.shape(2), padded = (s.h + 2 * r) * (s.w + 2 * r);
    FloatArray grad_x({s.slices, s.planes, s.h, s.w});
    const float *src = x.data(), *pt = taps.data(), *pg = grad_out.data();
    float* gx = grad_x.mutable_data();
    cpu::Partials partials(s.slices, 4 * t2);
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            const cpu::FlushDenormals flush;
            std::vector<float> xp(padded), gp(padded), row(s.w);
#pragma omp for schedule(static)
            for (int64_t job = 0; job < s.slices * s.planes; ++job) {
                const int64_t slice = job / s.planes;
                upsample_backward_plane(src + job * s.h * s.w, pg + job * out_h * out_w, s.h, s.w, pt + slice * 4 * t2,
                                        r, out_h, out_w, xp.data(), gp.data(), row.data(), gx + job * s.h * s.w,
                                        partials.mine(slice));
            }
        }
    }
    FloatArray grad_taps({s.slices, int64_t{4}, t2});
    for (int64_t slice = 0; slice < s.slices; ++slice) {
        const std::vector<float> sum = partials.reduce(slice);
        std::copy(sum.begin(), sum.end(), grad_taps.mutable_data() + slice * 4 * t2);
    }
    return py::make_tuple(grad_x, grad_taps);
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
    FloatArray out(std::vector<int64_t>(x.shape(), x.shape() + x.ndim()));
    const int64_t n = x.size();
    const float *px = x.data(), *pm = mu.data(), *ps = log_scale.data();
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        cpu::parallel_jobs(blocks(n), [&](int64_t block) {
            for (int64_t e = block * RATE_BLOCK; e < std::min(n, (block + 1) * RATE_BLOCK); ++e)
                dst[e] = rate::bits(px[e], pm[e], ps[e]);
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
    FloatArray gx(shape), gmu(shape), gs(shape);
    const int64_t n = x.size();
    const float *px = x.data(), *pm = mu.data(), *ps = log_scale.data(), *pg = grad_out.data();
    float *dx = gx.mutable_data(), *dm = gmu.mutable_data(), *ds = gs.mutable_data();
    {
        py::gil_scoped_release release;
        cpu::parallel_jobs(blocks(n), [&](int64_t block) {
            for (int64_t e = block * RATE_BLOCK; e < std::min(n, (block + 1) * RATE_BLOCK); ++e) {
                rate::grad(px[e], pm[e], ps[e], pg[e], dx[e], ds[e]);
                dm[e] = -dx[e];
            }
        });
    }
    return py::make_tuple(gx, gmu, gs);
}

}  // namespace

void register_cpu_image_ops(py::module_& m) {
    m.def("conv3_forward", &conv3_forward, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("relu"),
          "Per-slice residual 3x3 conv with replicate padding over [S, N, C, H, W]: act(conv(x) + b + x).");
    m.def("conv3_backward", &conv3_backward, py::arg("x"), py::arg("y"), py::arg("weight"), py::arg("bias"),
          py::arg("grad_out"), py::arg("relu"), py::arg("need_grad_x"),
          "Gradients (x or None, weight, bias) of sum(grad_out * conv3_forward(...)), given its output y.");
    m.def("upsample_forward", &upsample_forward, py::arg("x"), py::arg("taps"), py::arg("out_h"), py::arg("out_w"),
          "One polyphase upsampling level: [S, B, h, w] maps and [S, 4, T * T] taps -> [S, B, out_h, out_w].");
    m.def("upsample_backward", &upsample_backward, py::arg("x"), py::arg("taps"), py::arg("grad_out"),
          "Gradients (x, taps) of sum(grad_out * upsample_forward(...)).");
    m.def("rate_forward", &rate_forward, py::arg("x"), py::arg("mu"), py::arg("log_scale"),
          "Laplace bits of every element (at most 16), as ddfast.ops.laplace_rate.");
    m.def("rate_backward", &rate_backward, py::arg("x"), py::arg("mu"), py::arg("log_scale"), py::arg("grad_out"),
          "Gradients (x, mu, log_scale) of sum(grad_out * rate_forward(...)).");
}

}  // namespace ddfast
