// Registration hooks of the ddfast._cpu module: one per component source file.
#pragma once
#include <pybind11/pybind11.h>

namespace ddfast {

// Defined in registry.cpp; calls every component's register function.
void register_all(pybind11::module_& m);

}  // namespace ddfast
