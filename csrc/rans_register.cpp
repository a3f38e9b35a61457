// register_rans: adds the rANS coder (batch and incremental) to ddfast._cpu.
#include "rans_pyutil.h"

namespace ddfast {

void register_rans(pybind11::module_& m) {
    rans_py::register_rans_batch(m);
    rans_py::register_rans_incremental(m);
}

}  // namespace ddfast
