// maskacc generated addon entry: the table of its 27 layer kernel(s) for the Node binding
// (binding.cpp, the same for every addon). Each layer is its own translation unit (compiled with its
// own ISA flags) behind LayerKernel.
#include "layer-abi.hpp"

extern const maskacc::LayerKernel u0_avx512_kernel;
extern const maskacc::LayerKernel u0_avx2_kernel;
extern const maskacc::LayerKernel u0_scalar_kernel;
extern const maskacc::LayerKernel u1_avx512_kernel;
extern const maskacc::LayerKernel u1_avx2_kernel;
extern const maskacc::LayerKernel u1_scalar_kernel;
extern const maskacc::LayerKernel u2_avx512_kernel;
extern const maskacc::LayerKernel u2_avx2_kernel;
extern const maskacc::LayerKernel u2_scalar_kernel;
extern const maskacc::LayerKernel u3_avx512_kernel;
extern const maskacc::LayerKernel u3_avx2_kernel;
extern const maskacc::LayerKernel u3_scalar_kernel;
extern const maskacc::LayerKernel u4_avx512_kernel;
extern const maskacc::LayerKernel u4_avx2_kernel;
extern const maskacc::LayerKernel u4_scalar_kernel;
extern const maskacc::LayerKernel u5_avx512_kernel;
extern const maskacc::LayerKernel u5_avx2_kernel;
extern const maskacc::LayerKernel u5_scalar_kernel;
extern const maskacc::LayerKernel u6_avx512_kernel;
extern const maskacc::LayerKernel u6_avx2_kernel;
extern const maskacc::LayerKernel u6_scalar_kernel;
extern const maskacc::LayerKernel u7_avx512_kernel;
extern const maskacc::LayerKernel u7_avx2_kernel;
extern const maskacc::LayerKernel u7_scalar_kernel;
extern const maskacc::LayerKernel u8_avx512_kernel;
extern const maskacc::LayerKernel u8_avx2_kernel;
extern const maskacc::LayerKernel u8_scalar_kernel;

namespace maskacc {
const LayerKernel* const ADDON_LAYERS[] = {
    &u0_avx512_kernel,
    &u0_avx2_kernel,
    &u0_scalar_kernel,
    &u1_avx512_kernel,
    &u1_avx2_kernel,
    &u1_scalar_kernel,
    &u2_avx512_kernel,
    &u2_avx2_kernel,
    &u2_scalar_kernel,
    &u3_avx512_kernel,
    &u3_avx2_kernel,
    &u3_scalar_kernel,
    &u4_avx512_kernel,
    &u4_avx2_kernel,
    &u4_scalar_kernel,
    &u5_avx512_kernel,
    &u5_avx2_kernel,
    &u5_scalar_kernel,
    &u6_avx512_kernel,
    &u6_avx2_kernel,
    &u6_scalar_kernel,
    &u7_avx512_kernel,
    &u7_avx2_kernel,
    &u7_scalar_kernel,
    &u8_avx512_kernel,
    &u8_avx2_kernel,
    &u8_scalar_kernel,
};
const int ADDON_LAYER_COUNT = 27;
const char ADDON_KEY[] = "42201f8f85f89f18b2928f607ec195048aebba56dd15fd82c8224b49ec7af7b1";
}  // namespace maskacc
