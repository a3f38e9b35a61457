// Incremental lane decoder for autoregressive decoding, exposed as ddfast._cpu.RansLaneDecoder:
// it holds every lane's words and state; each step decodes one symbol for each of a given set
// of lanes from the (MU, LS) integers supplied for them.
#include <algorithm>
#include <vector>

#include "laplace_host_tables.h"
#include "rans_coder.h"
#include "rans_pyutil.h"

namespace ddfast {
namespace rans_py {
namespace {

constexpr int64_t kParallelMinLanes = 1 << 12;

class RansLaneDecoder {
public:
    RansLaneDecoder(const U32Array& words, const I64Array& lane_words, int64_t lo, int64_t hi, int64_t floor)
        : support_(checked_support(lo, hi, floor)),
          offsets_(offsets_of(lane_words, length_1d(words, "words"), "lane_words")),
          words_(words.data(), words.data() + words.shape(0)) {
        const int64_t lanes = num_lanes();
        lanes_.resize(static_cast<size_t>(lanes));
        stamp_.assign(static_cast<size_t>(lanes), 0);
        for (int64_t l = 0; l < lanes; ++l) {
            lanes_[l] = rans::start_lane(words_.data() + offsets_[l], offsets_[l + 1] - offsets_[l]);
        }
    }

    int64_t num_lanes() const { return static_cast<int64_t>(offsets_.size()) - 1; }

    // Decode one symbol for each lane in lane_ids (distinct, in range; checked first).
    I32Array step(const py::array& lane_ids, const py::array& mu, const py::array& ls) {
        int64_t n, n_mu, n_ls;
        const int64_t* ids = exact_1d<int64_t>(lane_ids, "lane_ids", n);
        const int32_t* m = exact_1d<int32_t>(mu, "mu_q", n_mu);
        const int32_t* s = exact_1d<int32_t>(ls, "logscale_q", n_ls);
        require(n_mu == n && n_ls == n, "lane_ids, mu_q and logscale_q must have the same length");
        const int64_t lanes = num_lanes();
        if (++epoch_ == 0) {  // wrapped: old stamps could collide with the new epoch
            std::fill(stamp_.begin(), stamp_.end(), 0);
            epoch_ = 1;
        }
        for (int64_t i = 0; i < n; ++i) {
            const int64_t l = ids[i];
            if (l < 0 || l >= lanes) {
                throw py::value_error("lane id " + std::to_string(l) + " at index " + std::to_string(i) +
                                      " is outside [0, " + std::to_string(lanes) + ")");
            }
            if (stamp_[l] == epoch_) throw py::value_error("lane id " + std::to_string(l) + " appears twice in one step");
            stamp_[l] = epoch_;
        }
        I32Array out(n);
        int32_t* o = out.mutable_data();
        // The GIL stays held: it serializes steps on this object from several Python threads.
        const laplace::Tables t = laplace::host_tables();
#pragma omp parallel for schedule(static) if (n >= kParallelMinLanes)
        for (int64_t i = 0; i < n; ++i) {
            const int64_t l = ids[i];
            o[i] = rans::decode_symbol(lanes_[l], words_.data() + offsets_[l], m[i], s[i], support_, t);
        }
        return out;
    }

    // Per-lane status so far: kOk, kZeroLastWord or kDamaged.
    U8Array status() const { return per_lane<U8Array>([](const rans::LaneDecoder& d) { return d.status; }); }

    // Per-lane end check (rans::end_status) as if every lane were finished now.
    U8Array end_status() const { return per_lane<U8Array>(rans::end_status); }

    // Words each lane has not read yet.
    I64Array remaining_words() const {
        return per_lane<I64Array>([](const rans::LaneDecoder& d) { return d.pos; });
    }

private:
    template <typename A, typename F>
    A per_lane(F f) const {
        A out(num_lanes());
        auto* o = out.mutable_data();
        for (int64_t l = 0; l < num_lanes(); ++l) o[l] = f(lanes_[l]);
        return out;
    }

    laplace::Support support_;
    std::vector<int64_t> offsets_;
    std::vector<uint32_t> words_;
    std::vector<rans::LaneDecoder> lanes_;
    std::vector<uint32_t> stamp_;
    uint32_t epoch_ = 0;
};

}  // namespace

void register_rans_incremental(py::module_& m) {
    py::class_<RansLaneDecoder>(m, "RansLaneDecoder",
                                "Lane states of an incremental rANS decoder (one symbol per lane per step).")
        .def(py::init<const U32Array&, const I64Array&, int64_t, int64_t, int64_t>(), py::arg("words"),
             py::arg("lane_words"), py::arg("lo"), py::arg("hi"), py::arg("floor") = 1)
        .def_property_readonly("num_lanes", &RansLaneDecoder::num_lanes)
        .def("step", &RansLaneDecoder::step, py::arg("lane_ids"), py::arg("mu_q"), py::arg("logscale_q"),
             "Decode one symbol for each given lane; returns int32 symbols.")
        .def("status", &RansLaneDecoder::status, "Per-lane status so far (uint8).")
        .def("end_status", &RansLaneDecoder::end_status, "Per-lane end check (uint8).")
        .def("remaining_words", &RansLaneDecoder::remaining_words, "Unread words per lane (int64).");
}

}  // namespace rans_py
}  // namespace ddfast
