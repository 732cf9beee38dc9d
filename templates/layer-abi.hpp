// The interface between one compiled layer (kernel.cpp) and the addon's Node binding
// (binding.cpp): sizes for argument checks and plain function pointers, no Node headers.
#pragma once
#include <cstdint>

namespace maskacc {
struct LayerKernel {
  const char* name;
  int N;                      // most images per call (the compiled batch); a call runs n of them, 1 <= n <= N
  long xImage, wSize, yImage;  // elements of one image of x, of w, of one image of y
  int K, C;                    // filters and input channels (mask lengths)
  void* (*createWorkspace)();
  void (*destroyWorkspace)(void*);
  void (*forward)(void* ws, int threads, int n, const float* x, const float* w, const float* bias, float* y,
                  const int32_t* ko, int nko, const int32_t* ci, int nci);
  void (*backwardData)(void* ws, int threads, int n, const float* dy, const float* w, float* dx, const int32_t* ko,
                       int nko, const int32_t* ci, int nci);
  void (*backwardWeights)(void* ws, int threads, int n, const float* dy, const float* x, float* dw, float* dbias,
                          const int32_t* rows, int nrows, const int32_t* ci, int nci);
};

// The addon's layers, defined by its generated module.cpp: the binding looks kernels up here by name.
extern const LayerKernel* const ADDON_LAYERS[];
extern const int ADDON_LAYER_COUNT;
extern const char ADDON_KEY[];
}  // namespace maskacc
