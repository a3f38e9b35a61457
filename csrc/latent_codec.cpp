// Latent coding of .ddf slices on the CPU, exposed to Python as ddfast._cpu.latent_*: the
// teacher-forced integer ARM, exact model bits, lane encoding and the wavefront decoder
// (latent_coder.h). Work is spread over slices/images, lanes or units with OpenMP; every
// argument is checked before any work starts.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "laplace_host_tables.h"
#include "latent_arm_cpu.h"
#include "latent_coder.h"
#include "multiversion.h"
#include "rans_pyutil.h"

namespace ddfast {
namespace latent_py {
namespace {

namespace py = pybind11;
using rans_py::I32Array;
using rans_py::I64Array;
using rans_py::require;
using rans_py::U32Array;
using rans_py::U8Array;
using F64Array = py::array_t<double, py::array::c_style>;

std::string str(int64_t v) { return std::to_string(v); }

// Geometry from grid shapes [G, 2] (H, W), context offsets [C, 2] (dy, dx) and the row shift.
latent::Geometry make_geometry(const I32Array& grid_shapes, const I32Array& offsets, int32_t shift) {
    require(grid_shapes.ndim() == 2 && grid_shapes.shape(1) == 2, "grid_shapes must have shape [grids, 2]");
    require(offsets.ndim() == 2 && offsets.shape(1) == 2, "offsets must have shape [context, 2]");
    latent::Geometry geo;
    require(latent::make_geometry(grid_shapes.data(), grid_shapes.shape(0), offsets.data(), offsets.shape(0), shift,
                                  geo),
            "invalid geometry: 1-" + str(latent::kMaxGrids) + " grids of 1-65536 rows and columns, 1-" +
                str(latent::kMaxContext) + " context offsets that precede their latent in the wavefront order "
                "of row shift " + str(shift));
    return geo;
}

// The fixed-point ARM weights of every slice: w [S, depth*C*C + 2C] int32, b [S, depth*C + 2] int64,
// held as float64 (exact) for the vectorized ARM. `arms` points into `w` and `b` (moving the
// struct keeps the vectors' buffers, so the pointers stay valid).
struct SliceArms {
    std::vector<double> w, b;
    std::vector<latent::ArmWeights> arms;
};

SliceArms make_arms(const I32Array& w, const I64Array& b, int32_t depth, const latent::Geometry& geo,
                    int64_t slices) {
    const int64_t c = geo.context;
    require(depth >= 0 && depth <= 64, "arm depth must lie in [0, 64]");
    require(w.ndim() == 2 && w.shape(0) == slices && w.shape(1) == depth * c * c + 2 * c,
            "arm weights must have shape [" + str(slices) + ", " + str(depth * c * c + 2 * c) + "]");
    require(b.ndim() == 2 && b.shape(0) == slices && b.shape(1) == depth * c + 2,
            "arm biases must have shape [" + str(slices) + ", " + str(depth * c + 2) + "]");
    // The bounds that keep every accumulator an exact integer below 2^53 (see latent_coder.h).
    const int32_t* wd = w.data();
    for (int64_t i = 0; i < w.size(); ++i) {
        if (wd[i] <= -(1 << 25) || wd[i] >= (1 << 25)) require(false, "arm weight out of the fixed-point range");
    }
    const int64_t* bd = b.data();
    for (int64_t i = 0; i < b.size(); ++i) {
        if (bd[i] <= -(1ll << 33) || bd[i] >= (1ll << 33)) require(false, "arm bias out of the fixed-point range");
    }
    SliceArms out;
    out.w.assign(wd, wd + w.size());
    out.b.assign(bd, bd + b.size());
    for (int64_t s = 0; s < slices; ++s) {
        out.arms.push_back(
            latent::ArmWeights{geo.context, depth, out.w.data() + s * w.shape(1), out.b.data() + s * b.shape(1)});
    }
    return out;
}

// Per-slice supports [S, 2] (lo, hi), each within +-kMaxAbsLatent.
std::vector<laplace::Support> make_supports(const I32Array& support, int64_t slices) {
    require(support.ndim() == 2 && support.shape(0) == slices && support.shape(1) == 2,
            "support must have shape [" + str(slices) + ", 2]");
    std::vector<laplace::Support> out;
    for (int64_t s = 0; s < slices; ++s) {
        const int32_t lo = support.at(s, 0);
        const int32_t hi = support.at(s, 1);
        require(lo <= hi && lo >= -latent::kMaxAbsLatent && hi <= latent::kMaxAbsLatent,
                "slice " + str(s) + ": latent support [" + str(lo) + ", " + str(hi) + "] must be ordered and within +-" +
                    str(latent::kMaxAbsLatent));
        out.push_back(laplace::make_support(lo, hi, latent::kFrequencyFloor));
    }
    return out;
}

// The latents array [S, N, M] and the valid image count of each slice.
struct Latents {
    int64_t slices, images, per_image;
};

Latents check_latents(const I32Array& latents, const latent::Geometry& geo) {
    require(latents.ndim() == 3, "latents must have shape [slices, images, latents per image]");
    require(latents.shape(2) == geo.image_latents,
            "latents hold " + str(latents.shape(2)) + " values per image, the grids " + str(geo.image_latents));
    return Latents{latents.shape(0), latents.shape(1), latents.shape(2)};
}

struct Plan {
    std::vector<latent::Unit> units;
    std::vector<latent::Lane> lanes;
};

// Units [U, 5] (slice, image_begin, image_count, lane_begin, lane_count) and lanes [L, 2] (rows).
Plan make_plan(const I32Array& units, const I32Array& lanes, const Latents& lat, const latent::Geometry& geo) {
    require(units.ndim() == 2 && units.shape(1) == 5, "units must have shape [units, 5]");
    require(lanes.ndim() == 2 && lanes.shape(1) == 2, "lanes must have shape [lanes, 2]");
    Plan plan;
    const int64_t n_lanes = lanes.shape(0);
    const int32_t rows = geo.grid_row[geo.n_grids];
    for (int64_t l = 0; l < n_lanes; ++l) {
        const latent::Lane lane{lanes.at(l, 0), lanes.at(l, 1)};
        require(lane.row_begin >= 0 && lane.row_begin < lane.row_end && lane.row_end <= rows,
                "lane " + str(l) + " has an invalid row range");
        plan.lanes.push_back(lane);
    }
    int64_t next_lane = 0;
    for (int64_t u = 0; u < units.shape(0); ++u) {
        const latent::Unit unit{units.at(u, 0), units.at(u, 1), units.at(u, 2), units.at(u, 3), units.at(u, 4)};
        require(unit.slice >= 0 && unit.slice < lat.slices, "unit " + str(u) + " names a missing slice");
        require(unit.image_begin >= 0 && unit.image_count >= 1 &&
                    static_cast<int64_t>(unit.image_begin) + unit.image_count <= lat.images,
                "unit " + str(u) + " has an invalid image range");
        require(unit.lane_begin == next_lane && unit.lane_count >= 1 && unit.lane_begin + unit.lane_count <= n_lanes,
                "unit " + str(u) + ": lanes must follow each other unit by unit");
        next_lane += unit.lane_count;
        plan.units.push_back(unit);
    }
    require(next_lane == n_lanes, "the units do not cover every lane");
    return plan;
}

// Every latent within +-kMaxAbsLatent, the range the integer ARM is exact on.
void check_range(const int32_t* data, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        if (data[i] < -latent::kMaxAbsLatent || data[i] > latent::kMaxAbsLatent) {
            require(false, "latent " + str(data[i]) + " at index " + str(i) + " exceeds +-" +
                               str(latent::kMaxAbsLatent));
        }
    }
}

const int32_t* image_ptr(const int32_t* data, const Latents& lat, int64_t slice, int64_t image) {
    return data + (slice * lat.images + image) * lat.per_image;
}

// -- teacher-forced ARM ---------------------------------------------------------------------------

// (MU, LS) of every latent of an image from its true context: blocked (the CPU path) or one
// position at a time with latent::arm_eval (the path the GPU runs).
void arm_image(const int32_t* image, const latent::Geometry& geo, const latent::ArmWeights& arm, int32_t* mu,
               int32_t* ls, bool blocked = true) {
    latent::ArmBatch batch(geo, arm);
    for (int g = 0; g < geo.n_grids; ++g) {
        for (int32_t y = 0; y < geo.grid_h[g]; ++y) {
            for (int32_t x = 0; x < geo.grid_w[g]; ++x) {
                const int64_t k = geo.grid_offset[g] + static_cast<int64_t>(y) * geo.grid_w[g] + x;
                if (blocked) {
                    batch.add(image, g, y, x, mu + k, ls + k);
                } else {
                    latent::arm_at(image, geo, arm, g, y, x, mu[k], ls[k]);
                }
            }
        }
    }
    batch.flush();
}

// (MU, LS) of every latent from its true context: [S, N, M] each.
py::tuple arm(const I32Array& latents, const I32Array& w, const I64Array& b, int32_t depth,
              const I32Array& grid_shapes, const I32Array& offsets, int32_t shift, bool blocked) {
    const latent::Geometry geo = make_geometry(grid_shapes, offsets, shift);
    const Latents lat = check_latents(latents, geo);
    const SliceArms arms = make_arms(w, b, depth, geo, lat.slices);
    check_range(latents.data(), latents.size());
    I32Array mu({lat.slices, lat.images, lat.per_image});
    I32Array ls({lat.slices, lat.images, lat.per_image});
    int32_t* m = mu.mutable_data();
    int32_t* l = ls.mutable_data();
    const int32_t* data = latents.data();
    {
        py::gil_scoped_release nogil;
        const int64_t jobs = lat.slices * lat.images;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t j = 0; j < jobs; ++j) {
            const int64_t s = j / lat.images;
            const int64_t off = j * lat.per_image;
            arm_image(data + off, geo, arms.arms[s], m + off, l + off, blocked);
        }
    }
    return py::make_tuple(mu, ls);
}

// -- model bits -------------------------------------------------------------------------------------

double image_bits(const int32_t* image, const latent::Geometry& geo, const latent::ArmWeights& arm,
                  const laplace::Support& support, const laplace::Tables& t) {
    std::vector<int32_t> mu(static_cast<size_t>(geo.image_latents)), ls(mu.size());
    arm_image(image, geo, arm, mu.data(), ls.data());
    double bits = 0.0;
    for (int64_t k = 0; k < geo.image_latents; ++k) {
        const uint64_t inv = laplace::inv_scale(ls[k], t);
        const uint32_t p = laplace::cum(static_cast<int64_t>(image[k]) + 1, mu[k], inv, support, t.exp2) -
                           laplace::cum(image[k], mu[k], inv, support, t.exp2);
        bits += laplace::kPrecision - std::log2(static_cast<double>(p));
    }
    return bits;
}

// Exact code length -sum log2(p / 2^24) of each slice's first counts[s] images.
F64Array bits(const I32Array& latents, const I32Array& counts, const I32Array& w, const I64Array& b,
              int32_t depth, const I32Array& grid_shapes, const I32Array& offsets, int32_t shift,
              const I32Array& support) {
    const latent::Geometry geo = make_geometry(grid_shapes, offsets, shift);
    const Latents lat = check_latents(latents, geo);
    const SliceArms arms = make_arms(w, b, depth, geo, lat.slices);
    const std::vector<laplace::Support> supports = make_supports(support, lat.slices);
    require(rans_py::length_1d(counts, "counts") == lat.slices, "counts needs one entry per slice");
    std::vector<int64_t> count(static_cast<size_t>(lat.slices));
    for (int64_t s = 0; s < lat.slices; ++s) {
        count[s] = counts.at(s);
        require(count[s] >= 0 && count[s] <= lat.images, "counts out of range");
    }
    const int32_t* data = latents.data();
    for (int64_t s = 0; s < lat.slices; ++s) {
        const int64_t n = count[s] * lat.per_image;
        const int32_t* p = image_ptr(data, lat, s, 0);
        for (int64_t i = 0; i < n; ++i) {
            if (p[i] < supports[s].lo || p[i] > supports[s].hi) {
                require(false, "slice " + str(s) + ": latent " + str(p[i]) + " lies outside its support");
            }
        }
    }
    std::vector<double> per_job(static_cast<size_t>(lat.slices * lat.images), 0.0);
    {
        py::gil_scoped_release nogil;
        const laplace::Tables t = laplace::host_tables();
        const int64_t jobs = lat.slices * lat.images;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t j = 0; j < jobs; ++j) {
            const int64_t s = j / lat.images;
            if (j % lat.images < count[s]) {
                per_job[j] = image_bits(data + j * lat.per_image, geo, arms.arms[s], supports[s], t);
            }
        }
    }
    F64Array out(lat.slices);
    double* o = out.mutable_data();
    for (int64_t s = 0; s < lat.slices; ++s) {
        double sum = 0.0;
        for (int64_t i = 0; i < lat.images; ++i) sum += per_job[s * lat.images + i];
        o[s] = sum;
    }
    return out;
}

// -- encode -------------------------------------------------------------------------------------------

// Encode the lanes of one unit: teacher-forced (MU, LS) of its images, then each lane's symbols in
// coding order; lane l's words go to out + cap[l], its word count to counts[l].
void encode_unit(const int32_t* latents, const Latents& lat, const latent::Geometry& geo,
                 const latent::ArmWeights& arm, const Plan& plan, const latent::Unit& unit,
                 const laplace::Support& support, const laplace::Tables& t, uint32_t* out, const int64_t* cap,
                 int64_t* counts) {
    const int64_t m = geo.image_latents;
    std::vector<int32_t> mu(static_cast<size_t>(unit.image_count * m)), ls(mu.size());
    const int32_t* first = image_ptr(latents, lat, unit.slice, unit.image_begin);
    for (int32_t i = 0; i < unit.image_count; ++i) arm_image(first + i * m, geo, arm, mu.data() + i * m, ls.data() + i * m);
    for (int32_t l = unit.lane_begin; l < unit.lane_begin + unit.lane_count; ++l) {
        const int64_t n = latent::lane_symbols(geo, unit, plan.lanes[l]);
        std::vector<int32_t> sym(static_cast<size_t>(n)), lmu(sym.size()), lls(sym.size());
        int64_t k = 0;
        for (int32_t step = 0; step < geo.steps; ++step) {
            latent::for_lane_step(geo, unit, plan.lanes[l], step, [&](int32_t i, int g, int32_t r, int32_t x, int32_t) {
                const int64_t at = i * m + geo.grid_offset[g] + static_cast<int64_t>(r) * geo.grid_w[g] + x;
                sym[k] = first[at];
                lmu[k] = mu[at];
                lls[k] = ls[at];
                ++k;
            });
        }
        counts[l] = rans::encode_lane(sym.data(), lmu.data(), lls.data(), n, support, t, out + cap[l]);
    }
}

// Encode every lane of the plan; returns (words uint32, lane_words int64).
py::tuple encode(const I32Array& latents, const I32Array& w, const I64Array& b, int32_t depth,
                 const I32Array& grid_shapes, const I32Array& offsets, int32_t shift, const I32Array& units,
                 const I32Array& lanes, const I32Array& support) {
    const latent::Geometry geo = make_geometry(grid_shapes, offsets, shift);
    const Latents lat = check_latents(latents, geo);
    const SliceArms arms = make_arms(w, b, depth, geo, lat.slices);
    const std::vector<laplace::Support> supports = make_supports(support, lat.slices);
    const Plan plan = make_plan(units, lanes, lat, geo);
    const int32_t* data = latents.data();
    for (const latent::Unit& unit : plan.units) {
        const int32_t* p = image_ptr(data, lat, unit.slice, unit.image_begin);
        const laplace::Support& sup = supports[unit.slice];
        for (int64_t i = 0; i < static_cast<int64_t>(unit.image_count) * lat.per_image; ++i) {
            if (p[i] < sup.lo || p[i] > sup.hi) {
                require(false, "slice " + str(unit.slice) + ": latent " + str(p[i]) + " lies outside its support [" +
                                   str(sup.lo) + ", " + str(sup.hi) + "]");
            }
        }
    }
    const int64_t n_lanes = static_cast<int64_t>(plan.lanes.size());
    const int64_t n_units = static_cast<int64_t>(plan.units.size());
    std::vector<int64_t> cap(static_cast<size_t>(n_lanes) + 1, 0);
    for (const latent::Unit& unit : plan.units) {
        for (int32_t l = unit.lane_begin; l < unit.lane_begin + unit.lane_count; ++l) {
            cap[l + 1] = cap[l] + rans::max_lane_words(latent::lane_symbols(geo, unit, plan.lanes[l]));
        }
    }
    std::vector<uint32_t> scratch(static_cast<size_t>(cap[n_lanes]));
    std::vector<int64_t> counts(static_cast<size_t>(n_lanes));
    {
        py::gil_scoped_release nogil;
        const laplace::Tables t = laplace::host_tables();
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t u = 0; u < n_units; ++u) {
            const latent::Unit& unit = plan.units[u];
            encode_unit(data, lat, geo, arms.arms[unit.slice], plan, unit, supports[unit.slice], t, scratch.data(),
                        cap.data(), counts.data());
        }
    }
    int64_t total = 0;
    for (int64_t c : counts) total += c;
    U32Array words(total);
    I64Array lane_words(n_lanes);
    uint32_t* wd = words.mutable_data();
    int64_t* lw = lane_words.mutable_data();
    int64_t pos = 0;
    for (int64_t l = 0; l < n_lanes; ++l) {
        for (int64_t i = 0; i < counts[l]; ++i) wd[pos + i] = scratch[cap[l] + i];
        pos += counts[l];
        lw[l] = counts[l];
    }
    return py::make_tuple(words, lane_words);
}

// -- decode -------------------------------------------------------------------------------------------

// Decode one unit: for every step, the ARM of all its active latents, then each lane's symbols.
void decode_unit(const uint32_t* words, const int64_t* word_offsets, const Plan& plan, const latent::Unit& unit,
                 const latent::Geometry& geo, const latent::ArmWeights& arm, const laplace::Support& support,
                 const laplace::Tables& t, const Latents& lat, int32_t* latents, uint8_t* status) {
    const int32_t rows = geo.grid_row[geo.n_grids];
    std::vector<int32_t> mu(static_cast<size_t>(unit.image_count) * rows);
    std::vector<int32_t> ls(mu.size());
    std::vector<rans::LaneDecoder> dec(static_cast<size_t>(unit.lane_count));
    for (int32_t l = 0; l < unit.lane_count; ++l) {
        const int64_t lane = unit.lane_begin + l;
        dec[l] = rans::start_lane(words + word_offsets[lane], word_offsets[lane + 1] - word_offsets[lane]);
    }
    int32_t* slice_latents = latents + static_cast<int64_t>(unit.slice) * lat.images * lat.per_image;
    latent::ArmBatch batch(geo, arm);
    for (int32_t step = 0; step < geo.steps; ++step) {
        // The active latents of the step, enumerated as the GPU kernel's threads do.
        const int32_t active = latent::active_per_image(geo, step);
        const int64_t total = static_cast<int64_t>(active) * unit.image_count;
        for (int64_t p = 0; p < total; ++p) {
            const int32_t i = static_cast<int32_t>(p / active);
            int grid;
            int32_t r;
            latent::active_position(geo, step, static_cast<int32_t>(p % active), grid, r);
            const int32_t* image = slice_latents + static_cast<int64_t>(unit.image_begin + i) * lat.per_image;
            const int64_t k = static_cast<int64_t>(i) * rows + geo.grid_row[grid] + r;
            batch.add(image, grid, r, step - geo.shift * r, &mu[k], &ls[k]);
        }
        batch.flush();
        for (int32_t l = 0; l < unit.lane_count; ++l) {
            const int64_t lane = unit.lane_begin + l;
            latent::decode_lane_step(dec[l], words + word_offsets[lane], geo, unit, plan.lanes[lane], step, mu.data(),
                                     ls.data(), slice_latents, support, t);
        }
    }
    for (int32_t l = 0; l < unit.lane_count; ++l) status[unit.lane_begin + l] = rans::end_status(dec[l]);
}

// Decode every lane of the plan into latents [slices, images, M] (untouched positions stay 0);
// returns (latents int32, per-lane end status uint8).
py::tuple decode(const U32Array& words, const I64Array& lane_words, const I32Array& w, const I64Array& b,
                 int32_t depth, const I32Array& grid_shapes, const I32Array& offsets, int32_t shift,
                 const I32Array& units, const I32Array& lanes, const I32Array& support, int64_t slices,
                 int64_t images) {
    const latent::Geometry geo = make_geometry(grid_shapes, offsets, shift);
    require(slices >= 1 && images >= 1, "slices and images must be positive");
    require(slices * images * geo.image_latents < (1ll << 40), "too many latents");
    const Latents lat{slices, images, geo.image_latents};
    const SliceArms arms = make_arms(w, b, depth, geo, slices);
    const std::vector<laplace::Support> supports = make_supports(support, slices);
    const Plan plan = make_plan(units, lanes, lat, geo);
    const std::vector<int64_t> word_off =
        rans_py::offsets_of(lane_words, rans_py::length_1d(words, "words"), "lane_words");
    require(static_cast<int64_t>(word_off.size()) - 1 == static_cast<int64_t>(plan.lanes.size()),
            "lane_words has " + str(word_off.size() - 1) + " lanes, the plan " + str(plan.lanes.size()));
    I32Array out({slices, images, geo.image_latents});
    U8Array status(static_cast<int64_t>(plan.lanes.size()));
    int32_t* o = out.mutable_data();
    uint8_t* st = status.mutable_data();
    const uint32_t* wd = words.data();
    {
        py::gil_scoped_release nogil;
        std::fill(o, o + slices * images * geo.image_latents, 0);
        const laplace::Tables t = laplace::host_tables();
        const int64_t n_units = static_cast<int64_t>(plan.units.size());
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t u = 0; u < n_units; ++u) {
            const latent::Unit& unit = plan.units[u];
            decode_unit(wd, word_off.data(), plan, unit, geo, arms.arms[unit.slice], supports[unit.slice], t, lat, o,
                        st);
        }
    }
    return py::make_tuple(out, status);
}

}  // namespace
}  // namespace latent_py

void register_latent_codec(pybind11::module_& m) {
    using namespace latent_py;
    m.def("latent_arm", &arm, py::arg("latents"), py::arg("weights"), py::arg("biases"), py::arg("depth"),
          py::arg("grid_shapes"), py::arg("offsets"), py::arg("shift"), py::arg("blocked") = true,
          "Teacher-forced integer ARM: (MU, LS) int32 of every latent [S, N, M]; blocked=False runs the "
          "one-position-at-a-time code that the GPU decoder shares.");
    m.def("latent_bits", &bits, py::arg("latents"), py::arg("counts"), py::arg("weights"), py::arg("biases"),
          py::arg("depth"), py::arg("grid_shapes"), py::arg("offsets"), py::arg("shift"), py::arg("support"),
          "Exact model bits of each slice's first counts[s] images under the integer ARM.");
    m.def("latent_encode", &encode, py::arg("latents"), py::arg("weights"), py::arg("biases"), py::arg("depth"),
          py::arg("grid_shapes"), py::arg("offsets"), py::arg("shift"), py::arg("units"), py::arg("lanes"),
          py::arg("support"), "Encode the lanes of a plan; returns (words uint32, lane_words int64).");
    m.def("latent_decode", &decode, py::arg("words"), py::arg("lane_words"), py::arg("weights"), py::arg("biases"),
          py::arg("depth"), py::arg("grid_shapes"), py::arg("offsets"), py::arg("shift"), py::arg("units"),
          py::arg("lanes"), py::arg("support"), py::arg("slices"), py::arg("images"),
          "Wavefront decode of a plan; returns (latents int32 [S, N, M], lane status uint8).");
    m.attr("LATENT_MAX_ABS") = latent::kMaxAbsLatent;
    m.attr("LATENT_LS_MIN") = latent::kLsMin;
    m.attr("LATENT_LS_MAX") = latent::kLsMax;
    m.attr("LATENT_MU_LIMIT") = latent::kMuLimit;
    m.attr("LATENT_FREQUENCY_FLOOR") = latent::kFrequencyFloor;
}

}  // namespace ddfast
