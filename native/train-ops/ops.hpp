// maskacc training ops (NCHW): batch norm (+ReLU) with a channel keep-mask, max pooling and a
// fully connected layer.
#pragma once
#include <cstdint>

namespace maskacc_ops {

struct BatchNormArgs {
  const float* x;          // [N][C][HW]
  const float* gamma;      // [C]
  const float* beta;       // [C]
  const uint8_t* keep;     // [C]: 0 = pruned channel, its output (and gradients) are exactly 0
  int N, C;
  long HW;
  float eps;
  bool relu;               // fuse a ReLU after the affine transform
  int threads;
};

// training: computes the batch mean and 1/sqrt(var + eps) into mean/invstd; otherwise reads them
// (running statistics, for inference).
void batchNormReluForward(const BatchNormArgs& a, bool training, float* mean, float* invstd, float* y);
// Backward of the training forward: y is its output (for the ReLU mask).
void batchNormReluBackward(const BatchNormArgs& a, const float* mean, const float* invstd, const float* y,
                           const float* dy, float* dx, float* dgamma, float* dbeta);

struct PoolArgs {
  long planes;  // N * C
  int H, W, k, stride, P, Q;
  int threads;
};
void maxPoolForward(const PoolArgs& a, const float* x, float* y);
void maxPoolBackward(const PoolArgs& a, const float* x, const float* dy, float* dx);

// Fully connected layer: y[N][J] = x[N][F] w[F][J] + b[J].
struct LinearArgs {
  int N, F, J;
  int threads;
};
void linearForward(const LinearArgs& a, const float* x, const float* w, const float* b, float* y);
// dx = dy w^T, dw = x^T dy, db = column sums of dy.
void linearBackward(const LinearArgs& a, const float* x, const float* w, const float* dy, float* dx, float* dw, float* db);

// SGD with momentum, one fused pass: accum = momentum * accum + g; wOut = w - lr * accum.
void momentumStep(long n, float lr, float momentum, const float* w, const float* g, float* accum, float* wOut);

}  // namespace maskacc_ops
