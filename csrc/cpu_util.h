// Small helpers shared by the pybind11 glue of the native CPU training kernels.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace ddfast {
namespace cpu {

inline void require(bool ok, const std::string& message) {
    if (!ok) throw pybind11::value_error(message);
}

inline int thread_count() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Flushes denormal results to zero and reads denormal inputs as zero on this thread while it lives.
// Gradients of the rate term reach 1e-27 and their products underflow; on x86 every denormal
// operand costs a microcode assist (measured: the ARM backward ran 2.7x slower). Training loses
// nothing by treating values below 1e-38 as zero. Put one at the top of every parallel region.
class FlushDenormals {
public:
#if defined(__SSE__)
    FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ | DAZ
    ~FlushDenormals() { _mm_setcsr(saved_); }
    FlushDenormals(const FlushDenormals&) = delete;
    FlushDenormals& operator=(const FlushDenormals&) = delete;

private:
    unsigned int saved_;
#endif
};

// body(job) for job in [0, jobs), split statically over the OpenMP threads, denormals flushed.
template <class Body>
void parallel_jobs(int64_t jobs, const Body& body) {
#pragma omp parallel
    {
        const FlushDenormals flush;
#pragma omp for schedule(static)
        for (int64_t job = 0; job < jobs; ++job) body(job);
    }
}

// Per-thread accumulators of `per_slice` floats for each of `slices` slices; summed over threads by reduce().
struct Partials {
    int64_t slices, per_slice;
    std::vector<float> data;

    Partials(int64_t slices_, int64_t per_slice_)
        : slices(slices_), per_slice(per_slice_),
          data(static_cast<size_t>(thread_count()) * slices_ * per_slice_, 0.0f) {}

    // The calling thread's accumulator for slice s.
    float* mine(int64_t s) { return data.data() + (static_cast<int64_t>(thread_index()) * slices + s) * per_slice; }

    // Slice s summed over threads.
    std::vector<float> reduce(int64_t s) const {
        std::vector<float> sum(per_slice, 0.0f);
        const int64_t threads = static_cast<int64_t>(data.size()) / (slices * per_slice);
        for (int64_t t = 0; t < threads; ++t) {
            const float* acc = data.data() + (t * slices + s) * per_slice;
            for (int64_t e = 0; e < per_slice; ++e) sum[e] += acc[e];
        }
        return sum;
    }
};

// Output buffers of the training kernels. Every step allocates the same outputs again (tens of
// MB), and fresh memory costs a page fault and zeroing per 4 kB page (numpy's own allocator is
// worse: it advises transparent huge pages from 4 MB on, zeroing whole 2 MB pages -- about an
// eighth of a training step on a 2-core machine). Freed buffers are kept by size and handed out
// again, up to CAPACITY bytes in all; beyond that they go back to the system.
class BufferCache {
public:
    static constexpr size_t HEADER = 64, CAPACITY = size_t{1} << 30;

    static BufferCache& instance() {
        static BufferCache* cache = new BufferCache();  // never destroyed: capsules may outlive statics
        return *cache;
    }

    // 64-byte aligned memory for `bytes` bytes (uninitialized).
    float* acquire(size_t bytes) {
        bytes = (bytes + HEADER - 1) / HEADER * HEADER;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = free_.find(bytes);
            if (it != free_.end()) {
                char* base = it->second;
                free_.erase(it);
                cached_ -= bytes;
                return reinterpret_cast<float*>(base + HEADER);
            }
        }
        char* base = static_cast<char*>(std::aligned_alloc(HEADER, bytes + HEADER));
        if (base == nullptr) throw std::bad_alloc();
        *reinterpret_cast<size_t*>(base) = bytes;
        return reinterpret_cast<float*>(base + HEADER);
    }

    void release(void* data) {
        char* base = static_cast<char*>(data) - HEADER;
        const size_t bytes = *reinterpret_cast<size_t*>(base);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (cached_ + bytes <= CAPACITY) {
                free_.emplace(bytes, base);
                cached_ += bytes;
                return;
            }
        }
        std::free(base);
    }

private:
    std::mutex mutex_;
    std::unordered_multimap<size_t, char*> free_;
    size_t cached_ = 0;
};

// A new C-contiguous float32 array (uninitialized) whose memory comes from the BufferCache.
inline pybind11::array_t<float, pybind11::array::c_style> float_array(const std::vector<int64_t>& shape) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    float* data = BufferCache::instance().acquire(static_cast<size_t>(count) * sizeof(float));
    pybind11::capsule owner(data, [](void* p) { BufferCache::instance().release(p); });
    return pybind11::array_t<float, pybind11::array::c_style>(shape, data, owner);
}

}  // namespace cpu
}  // namespace ddfast
