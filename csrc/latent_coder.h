// Latent coding of a .ddf slice (shared by the C++ and CUDA builds): the integer ARM, the
// wavefront order, and the per-lane encode / per-step decode loops.
//
// Integer ARM (a fixed-point mirror of the float ARM on post-quantized weights, in the manner of
// Cool-chic's integer ARM). Contexts are the integer latents, |latent| <= 8191. Activations are in
// Q.8, weights in Q.8 (w * 2^8, exact because ARM weight steps are 2^-k with k <= 8), biases in
// Q.16 (b * 2^16, exact because bias steps are 2^-k with k <= 16). With h0 = context * 2^8:
//     hidden layer:  acc_j = B_j + sum_i h_i * W'_ji        (W' = W + 2^8 I, the residual)
//                    h'_j  = acc_j <= 0 ? 0 : min((acc_j + 2^7) >> 8, 2^21 - 1)
//     output layer:  acc_k = B_k + sum_i h_i * W_ki,  v_k = sign(acc_k) * ((|acc_k| + 2^7) >> 8)
//     MU = clamp(v_0, -2^30, 2^30)                         (the mean in Q.8)
//     LS = clamp(v_1 - 4 * 2^8, -1178, 1280)               (ln b in Q.8: clamp(s - 4, -4.6, 5))
// Every value is an integer, and the bounds |h| < 2^21, |W'| < 2^25, |B| < 2^33 and C <= 64 keep
// every product and partial sum below 2^53 in magnitude. The accumulation therefore runs in float64
// registers with no rounding at all, in any summation order and with or without FMA: the result
// is exact integer arithmetic and the same on every machine, while the loops vectorize on every
// x86 ISA (int64 multiplies do not) and run at full rate on data-center GPUs. (MU, LS) feed the
// integer Laplace model of laplace_model.h.
//
// Wavefront order. Grid g of an image is H_g x W_g; a latent at row r, column x is decoded at step
// t = x + s * r, where s = the context's wavefront shift, so every context position was decoded at
// an earlier step. The rows of an image are listed grid after grid, top to bottom ("row index").
//
// Lanes and units. A unit is a group of images of one slice decoded together: either one lane
// holding whole images, or one image split into lanes that own contiguous ranges of its row
// index. A lane's symbols are coded in the order: step t, then image, then row index.
#pragma once

#include <cmath>
#include <cstdint>

#include "rans_coder.h"

namespace ddfast {
namespace latent {

constexpr int kMaxContext = 64;
constexpr int kMaxGrids = 12;
constexpr int kFracBits = 8;
constexpr int32_t kMuLimit = 1 << 30;
constexpr int32_t kLogScaleOffset = 4 << kFracBits;  // the "- 4" of b = exp(s - 4)
constexpr int32_t kLsMin = -1178;                      // round(-4.6 * 256)
constexpr int32_t kLsMax = 1280;                       // 5 * 256
constexpr int32_t kMaxAbsLatent = (1 << 13) - 1;       // |latent| * 2^8 < 2^21
// Frequency floor of the latents' Laplace model (laplace_model.h): no symbol costs more than 16
// bits, as in the rate P = max(F(x + 1/2) - F(x - 1/2), 2^-16) that training estimates.
constexpr uint32_t kFrequencyFloor = 1u << 8;
constexpr double kMaxActivation = (1 << 21) - 1;       // hidden activations saturate here (Q.8)
constexpr double kHalf = 1 << (kFracBits - 1);

// The fixed-point ARM of one slice. The integer weights are held as float64 (exactly), so that
// they are converted once per slice instead of once per use.
struct ArmWeights {
    int32_t context;  // C
    int32_t depth;    // hidden layers
    const double* w;  // depth x [C][C] ([in][out], residual folded in), then [2][C] ([out][in]); Q.8
    const double* b;  // depth x [C], then [2]; Q.16
};

// Where the grids of one image lie in its flat latent vector, and the context offsets.
struct Geometry {
    int32_t n_grids;
    int32_t grid_h[kMaxGrids];
    int32_t grid_w[kMaxGrids];
    int64_t grid_offset[kMaxGrids];   // first latent of grid g in the image's flat vector
    int32_t grid_row[kMaxGrids + 1];  // first row index of grid g; grid_row[n_grids] = rows
    int64_t image_latents;            // latents per image (M)
    int32_t context;
    int32_t dy[kMaxContext];
    int32_t dx[kMaxContext];
    int32_t reach;  // largest |dy| or |dx| of the context
    int32_t shift;  // wavefront row shift s
    int32_t steps;  // max over grids of W_g + (H_g - 1) * s
};

// A group of images decoded together, and its lanes [lane_begin, lane_begin + lane_count).
struct Unit {
    int32_t slice;
    int32_t image_begin;
    int32_t image_count;
    int32_t lane_begin;
    int32_t lane_count;
};

// A lane owns rows [row_begin, row_end) of every image of its unit.
struct Lane {
    int32_t row_begin;
    int32_t row_end;
};

// Fill geo from grid shapes [n_grids][2] (H, W), context offsets [context][2] (dy, dx) and the row
// shift; false (geo untouched) when a value is out of range or an offset is not causal in the
// wavefront order (an earlier row with dx < -dy * s, or the same row to the left).
inline bool make_geometry(const int32_t* grid_shapes, int64_t n_grids, const int32_t* offsets, int64_t context,
                          int32_t shift, Geometry& geo) {
    if (n_grids < 1 || n_grids > kMaxGrids || context < 1 || context > kMaxContext) return false;
    if (shift < 1 || shift > (1 << 16)) return false;
    Geometry g{};
    g.n_grids = static_cast<int32_t>(n_grids);
    g.context = static_cast<int32_t>(context);
    g.shift = shift;
    int64_t offset = 0, rows = 0, steps = 0;
    for (int64_t k = 0; k < n_grids; ++k) {
        const int32_t h = grid_shapes[2 * k], w = grid_shapes[2 * k + 1];
        if (h < 1 || w < 1 || h > (1 << 16) || w > (1 << 16)) return false;
        g.grid_h[k] = h;
        g.grid_w[k] = w;
        g.grid_offset[k] = offset;
        g.grid_row[k] = static_cast<int32_t>(rows);
        offset += static_cast<int64_t>(h) * w;
        rows += h;
        const int64_t grid_steps = w + static_cast<int64_t>(h - 1) * shift;
        steps = grid_steps > steps ? grid_steps : steps;
    }
    if (rows >= (1 << 24) || steps >= (1ll << 31)) return false;
    g.grid_row[n_grids] = static_cast<int32_t>(rows);
    g.image_latents = offset;
    g.steps = static_cast<int32_t>(steps);
    for (int64_t i = 0; i < context; ++i) {
        const int32_t dy = offsets[2 * i], dx = offsets[2 * i + 1];
        const bool causal = dy < 0 ? dx < -static_cast<int64_t>(dy) * shift : (dy == 0 && dx < 0);
        if (!causal || dy < -(1 << 16) || dx < -(1 << 16) || dx > (1 << 16)) return false;
        g.dy[i] = dy;
        g.dx[i] = dx;
        const int32_t reach = dy < 0 ? -dy : dy;
        const int32_t reach_x = dx < 0 ? -dx : dx;
        g.reach = g.reach > reach ? g.reach : reach;
        g.reach = g.reach > reach_x ? g.reach : reach_x;
    }
    geo = g;
    return true;
}

DDF_HD int32_t sat32(int64_t v) {
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : static_cast<int32_t>(v));
}

DDF_HD int32_t clamp32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Hidden activation of an accumulator: 0 if acc <= 0, else min((acc + 2^7) >> 8, kMaxActivation),
// written branch-free as clamp(floor((acc + 2^7) / 2^8), 0, kMaxActivation) (the same value: for
// acc <= 0 the floor is <= 0). The accumulator holds an exact integer below 2^53 (see the bounds
// at the top), so the floor of the division by 2^8 is the integer shift.
DDF_HD double relu_shift(double acc) {
    const double shifted = floor((acc + kHalf) * (1.0 / (1 << kFracBits)));
    const double positive = shifted > 0.0 ? shifted : 0.0;
    return positive < kMaxActivation ? positive : kMaxActivation;
}

// sign(acc) * ((|acc| + 2^7) >> 8), saturated to int32.
DDF_HD int32_t round_shift(double acc) {
    const double mag = floor((fabs(acc) + kHalf) * (1.0 / (1 << kFracBits)));
    const double v = acc < 0.0 ? -mag : mag;
    return v > 2147483647.0 ? INT32_MAX : (v < -2147483648.0 ? INT32_MIN : static_cast<int32_t>(v));
}

// The fixed-point ARM on one context of C raw integer latents -> (MU, LS). CT > 0 fixes C at
// compile time (so that the loops over C unroll and vectorize); CT = 0 reads it from a.context.
template <int CT>
DDF_HD void arm_eval_t(const int32_t* ctx, const ArmWeights& a, int32_t& mu_q, int32_t& ls_q) {
    const int c = CT > 0 ? CT : a.context;
    double h[CT > 0 ? CT : kMaxContext];
    double acc[CT > 0 ? CT : kMaxContext];
    for (int i = 0; i < c; ++i) h[i] = static_cast<double>(ctx[i]) * (1 << kFracBits);
    const double* w = a.w;
    const double* b = a.b;
    for (int layer = 0; layer < a.depth; ++layer) {
        for (int j = 0; j < c; ++j) acc[j] = b[j];
        for (int i = 0; i < c; ++i) {
            const double hi = h[i];
            const double* row = w + i * c;
            for (int j = 0; j < c; ++j) acc[j] += hi * row[j];
        }
        for (int j = 0; j < c; ++j) h[j] = relu_shift(acc[j]);
        w += c * c;
        b += c;
    }
    int32_t out[2];
    for (int k = 0; k < 2; ++k) {
        const double* row = w + k * c;
        double sum = b[k];
        for (int i = 0; i < c; ++i) sum += h[i] * row[i];
        out[k] = round_shift(sum);
    }
    mu_q = clamp32(out[0], -kMuLimit, kMuLimit);
    ls_q = clamp32(sat32(static_cast<int64_t>(out[1]) - kLogScaleOffset), kLsMin, kLsMax);
}

DDF_HD void arm_eval(const int32_t* ctx, const ArmWeights& a, int32_t& mu_q, int32_t& ls_q) {
    switch (a.context) {
        case 8: arm_eval_t<8>(ctx, a, mu_q, ls_q); break;
        case 16: arm_eval_t<16>(ctx, a, mu_q, ls_q); break;
        case 24: arm_eval_t<24>(ctx, a, mu_q, ls_q); break;
        case 32: arm_eval_t<32>(ctx, a, mu_q, ls_q); break;
        case 64: arm_eval_t<64>(ctx, a, mu_q, ls_q); break;
        default: arm_eval_t<0>(ctx, a, mu_q, ls_q); break;
    }
}

// The context of latent (grid, y, x) of one image (zeros outside the grid).
DDF_HD void gather_context(const int32_t* image, const Geometry& geo, int grid, int32_t y, int32_t x,
                           int32_t* ctx) {
    const int32_t h = geo.grid_h[grid];
    const int32_t w = geo.grid_w[grid];
    const int32_t* base = image + geo.grid_offset[grid];
    if (y >= geo.reach && x >= geo.reach && x < w - geo.reach) {  // every neighbour inside
        const int32_t* at = base + static_cast<int64_t>(y) * w + x;
        for (int i = 0; i < geo.context; ++i) ctx[i] = at[geo.dy[i] * w + geo.dx[i]];
        return;
    }
    for (int i = 0; i < geo.context; ++i) {
        const int32_t yy = y + geo.dy[i];
        const int32_t xx = x + geo.dx[i];
        const bool inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
        ctx[i] = inside ? base[static_cast<int64_t>(yy) * w + xx] : 0;
    }
}

// (MU, LS) of latent (grid, y, x) given the image's latents decoded so far.
DDF_HD void arm_at(const int32_t* image, const Geometry& geo, const ArmWeights& a, int grid, int32_t y,
                   int32_t x, int32_t& mu_q, int32_t& ls_q) {
    int32_t ctx[kMaxContext];
    gather_context(image, geo, grid, y, x, ctx);
    arm_eval(ctx, a, mu_q, ls_q);
}

// Rows of grid g active at step t (column x = t - s r inside the grid): [first, first + count).
DDF_HD int32_t active_rows(const Geometry& geo, int grid, int32_t t, int32_t& first) {
    const int32_t s = geo.shift;
    const int32_t below = t - geo.grid_w[grid] + 1;  // rows r with s r >= below
    first = below <= 0 ? 0 : (below + s - 1) / s;
    int32_t last = t / s;
    if (last > geo.grid_h[grid] - 1) last = geo.grid_h[grid] - 1;
    return last >= first ? last - first + 1 : 0;
}

// Active positions of one image at step t, over all grids.
DDF_HD int32_t active_per_image(const Geometry& geo, int32_t t) {
    int32_t total = 0;
    for (int g = 0; g < geo.n_grids; ++g) {
        int32_t first;
        total += active_rows(geo, g, t, first);
    }
    return total;
}

// The a-th active position of an image at step t (a < active_per_image): grid and row.
DDF_HD void active_position(const Geometry& geo, int32_t t, int32_t a, int& grid, int32_t& row) {
    for (int g = 0; g < geo.n_grids; ++g) {
        int32_t first;
        const int32_t n = active_rows(geo, g, t, first);
        if (a < n) {
            grid = g;
            row = first + a;
            return;
        }
        a -= n;
    }
    grid = geo.n_grids - 1;  // unreachable for a < active_per_image
    row = 0;
}

// Visit the symbols of a lane at step t in coding order: f(image, grid, row, x, row_index).
template <typename F>
DDF_HD void for_lane_step(const Geometry& geo, const Unit& unit, const Lane& lane, int32_t t, F&& f) {
    for (int32_t i = 0; i < unit.image_count; ++i) {
        for (int g = 0; g < geo.n_grids; ++g) {
            const int32_t grid_first = geo.grid_row[g];
            int32_t first;
            const int32_t n = active_rows(geo, g, t, first);
            // Intersect the active rows with the lane's rows [row_begin, row_end) of this grid.
            int32_t lo = first;
            int32_t hi = first + n;
            if (lo < lane.row_begin - grid_first) lo = lane.row_begin - grid_first;
            if (hi > lane.row_end - grid_first) hi = lane.row_end - grid_first;
            for (int32_t r = lo; r < hi; ++r) f(i, g, r, t - geo.shift * r, grid_first + r);
        }
    }
}

// Symbols of a lane (all steps), for sizing buffers.
DDF_HD int64_t lane_symbols(const Geometry& geo, const Unit& unit, const Lane& lane) {
    int64_t n = 0;
    for (int g = 0; g < geo.n_grids; ++g) {
        int32_t lo = geo.grid_row[g] > lane.row_begin ? geo.grid_row[g] : lane.row_begin;
        int32_t hi = geo.grid_row[g + 1] < lane.row_end ? geo.grid_row[g + 1] : lane.row_end;
        if (hi > lo) n += static_cast<int64_t>(hi - lo) * geo.grid_w[g];
    }
    return n * unit.image_count;
}

// One decode step of a lane: decode its symbols of step t with the unit's (MU, LS) of this step
// (indexed image * rows + row index) and write them into the slice's latents.
DDF_HD void decode_lane_step(rans::LaneDecoder& d, const uint32_t* words, const Geometry& geo, const Unit& unit,
                             const Lane& lane, int32_t t, const int32_t* mu_q, const int32_t* ls_q,
                             int32_t* slice_latents, const laplace::Support& support,
                             const laplace::Tables& tables) {
    const int32_t rows = geo.grid_row[geo.n_grids];
    for_lane_step(geo, unit, lane, t, [&](int32_t i, int g, int32_t r, int32_t x, int32_t row_index) {
        const int64_t param = static_cast<int64_t>(i) * rows + row_index;
        const int32_t symbol = rans::decode_symbol(d, words, mu_q[param], ls_q[param], support, tables);
        int32_t* image = slice_latents + static_cast<int64_t>(unit.image_begin + i) * geo.image_latents;
        image[geo.grid_offset[g] + static_cast<int64_t>(r) * geo.grid_w[g] + x] = symbol;
    });
}

}  // namespace latent
}  // namespace ddfast
