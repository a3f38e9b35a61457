// Entry point of the ddfast._cpu extension module.
// Each component registers its functions through a register_* hook declared in bindings.h.
#include <pybind11/pybind11.h>

#include "bindings.h"

namespace py = pybind11;

PYBIND11_MODULE(_cpu, m) {
    m.doc() = "ddfast native CPU kernels";
    m.def("build_info", []() {
        py::dict info;
        info["cxx_standard"] = static_cast<long>(__cplusplus);
#ifdef _OPENMP
        info["openmp"] = true;
#else
        info["openmp"] = false;
#endif
        return info;
    }, "Facts about how this module was compiled.");
    ddfast::register_all(m);
}
