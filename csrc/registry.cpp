// Calls the registration function of every component compiled into ddfast._cpu.
#include "bindings.h"

namespace ddfast {

void register_rans(pybind11::module_& m);           // rans_register.cpp
void register_pointwise_mlp(pybind11::module_& m);  // pointwise_mlp.cpp
void register_latent_codec(pybind11::module_& m);   // latent_codec.cpp
void register_weight_codec(pybind11::module_& m);   // weight_codec.cpp
void register_cpu_ops(pybind11::module_& m);        // cpu_ops.cpp
void register_cpu_image_ops(pybind11::module_& m);  // cpu_image_ops.cpp

void register_all(pybind11::module_& m) {
    // components add their register_* calls here
    register_rans(m);
    register_pointwise_mlp(m);
    register_latent_codec(m);
    register_weight_codec(m);
    register_cpu_ops(m);
    register_cpu_image_ops(m);
}

}  // namespace ddfast
