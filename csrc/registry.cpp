// Calls the registration function of every component compiled into ddfast._cpu.
#include "bindings.h"

namespace ddfast {

void register_all(pybind11::module_& m) {
    (void)m;  // components add their register_* calls here
}

}  // namespace ddfast
