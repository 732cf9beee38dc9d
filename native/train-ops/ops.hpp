// maskacc training ops: batch norm (+ReLU) with a channel keep-mask, ReLU, max pooling, a fully
// connected layer, the momentum update and the NHWC <-> NCHW transposes.
#pragma once
#include <cstdint>

namespace maskacc_ops {

// Any channel axis: x is viewed as [N][C][HW] (NCHW: N images, HW positions; channels-last: N =
// every position, HW = 1, which takes a channel-vectorized path).
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

// training: computes every channel's batch mean and 1/sqrt(var + eps) (pruned ones too, for
// moving averages) into mean/invstd; otherwise reads them
// (running statistics, for inference).
void batchNormReluForward(const BatchNormArgs& a, bool training, float* mean, float* invstd, float* y);
// Backward of the training forward: y is its output (for the ReLU mask).
void batchNormReluBackward(const BatchNormArgs& a, const float* mean, const float* invstd, const float* y,
                           const float* dy, float* dx, float* dgamma, float* dbeta);

// Max pooling of either layout, 'valid' or with padding ('same' windows): out-of-range taps are
// skipped.
// The gradient goes to each window's first maximum in row-major order, as TF.js's.
struct Pool2dArgs {
  int N, C, H, W, kh, kw, sh, sw, padTop, padLeft, P, Q;
  bool channelsLast;
  int threads;
};
// argmax (channels-last only, else null): each output's window tap r * kw + s, kNoTap where no tap
// beat -inf; maxPool2dBackwardArgmax then scatters dy without re-reading x.
constexpr uint8_t kNoTap = 255;
void maxPool2dForward(const Pool2dArgs& a, const float* x, float* y, uint8_t* argmax);
void maxPool2dBackward(const Pool2dArgs& a, const float* x, const float* dy, float* dx);
void maxPool2dBackwardArgmax(const Pool2dArgs& a, const uint8_t* argmax, const float* dy, float* dx);

// y = max(x, 0); dx = dy where y > 0, else 0.
void reluForward(long n, int threads, const float* x, float* y);
void reluBackward(long n, int threads, const float* y, const float* dy, float* dx);

// Whether every plane of a pruned channel (keep[c] == 0) is all zeros, x NCHW [N][C][HW]: a soft
// (SFP) weight gradient then needs no rows for the pruned filters (theirs are exactly zero).
bool prunedPlanesZero(int N, int C, long HW, const uint8_t* keep, const float* x, int threads);

// Per image, a [A][B] matrix to [B][A]: NHWC -> NCHW is (A, B) = (HW, C), NCHW -> NHWC (C, HW).
void transposeImages(int N, long A, long B, int threads, const float* src, float* dst);

// The conversions between a compact channels-last tensor, which holds only the kept channels
// (keep[c] != 0) in channel order, [N][HW][kept], and a full NCHW one, [N][C][HW].
// channelsToPlanes writes the kept planes only: the conv kernels never read a pruned channel's
// planes of x, nor (masked weight gradients included) a pruned filter's planes of dy (the fuzzer
// checks it with NaN there), so the compact tensors' conversions skip them both ways.
void channelsToPlanes(int N, long HW, int C, const uint8_t* keep, int threads, const float* src, float* dst);
// planesToChannels reads only the kept planes.
void planesToChannels(int N, int C, long HW, const uint8_t* keep, int threads, const float* src, float* dst);

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
