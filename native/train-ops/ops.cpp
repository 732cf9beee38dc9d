// maskacc training ops: the non-convolution layers of a CNN training step, in NCHW, so a masked
// network never leaves the conv kernels' layout. Memory-bound loops: one pass where the math
// allows, OpenMP over channels (or planes), float32 data with float64 statistics.
#include "ops.hpp"

#include <algorithm>
#include <cmath>

namespace maskacc_ops {

// Below this many elements a parallel region costs more than it saves (and, on a loaded
// machine, a thread wakeup can cost a whole scheduler tick).
static constexpr long kParallelMin = 1L << 15;

// Batch statistics per channel over N x HW, in double (a channel sums up to ~10^6 values).
// The per-plane sums are float SIMD reductions (omp simd allows the reassociation -O3 alone
// would not: a serial float sum runs at one add per FP latency).
static void channelStats(const float* x, int N, int C, long HW, int c, double& mean, double& var) {
  double s = 0, ss = 0;
  for (int n = 0; n < N; ++n) {
    const float* p = x + ((long)n * C + c) * HW;
    float fs = 0, fss = 0;  // one plane in float, accumulated in double
#pragma omp simd reduction(+ : fs, fss)
    for (long i = 0; i < HW; ++i) {
      fs += p[i];
      fss += p[i] * p[i];
    }
    s += fs;
    ss += fss;
  }
  const double M = (double)N * HW;
  mean = s / M;
  var = std::max(0.0, ss / M - mean * mean);
}

void batchNormReluForward(const BatchNormArgs& a, bool training, float* mean, float* invstd, float* y) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.N * a.C * a.HW >= kParallelMin)
  for (int c = 0; c < a.C; ++c) {
    if (!a.keep[c]) {  // pruned channel: exactly zero, whatever its input
      for (int n = 0; n < a.N; ++n) std::fill_n(y + ((long)n * a.C + c) * a.HW, a.HW, 0.0f);
      if (training) mean[c] = invstd[c] = 0;
      continue;
    }
    if (training) {
      double m, v;
      channelStats(a.x, a.N, a.C, a.HW, c, m, v);
      mean[c] = (float)m;
      invstd[c] = (float)(1.0 / std::sqrt(v + a.eps));
    }
    const float scale = a.gamma[c] * invstd[c], shift = a.beta[c] - mean[c] * scale;
    for (int n = 0; n < a.N; ++n) {
      const long o = ((long)n * a.C + c) * a.HW;
      for (long i = 0; i < a.HW; ++i) {
        const float v = a.x[o + i] * scale + shift;
        y[o + i] = a.relu ? std::max(v, 0.0f) : v;
      }
    }
  }
}

void batchNormReluBackward(const BatchNormArgs& a, const float* mean, const float* invstd, const float* y,
                           const float* dy, float* dx, float* dgamma, float* dbeta) {
  const bool relu = a.relu;
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.N * a.C * a.HW >= kParallelMin)
  for (int c = 0; c < a.C; ++c) {
    if (!a.keep[c]) {
      for (int n = 0; n < a.N; ++n) std::fill_n(dx + ((long)n * a.C + c) * a.HW, a.HW, 0.0f);
      dgamma[c] = dbeta[c] = 0;
      continue;
    }
    const float m = mean[c], is = invstd[c];
    // g = dy masked by the ReLU (y > 0); sums of g and g * (x - mean) give dbeta and dgamma.
    double sg = 0, sgx = 0;
    for (int n = 0; n < a.N; ++n) {
      const long o = ((long)n * a.C + c) * a.HW;
      const float *xp = a.x + o, *yp = y + o, *dyp = dy + o;
      float fg = 0, fgx = 0;
#pragma omp simd reduction(+ : fg, fgx)
      for (long i = 0; i < a.HW; ++i) {
        const float g = (!relu || yp[i] > 0.0f) ? dyp[i] : 0.0f;
        fg += g;
        fgx += g * (xp[i] - m);
      }
      sg += fg;
      sgx += fgx;
    }
    dbeta[c] = (float)sg;
    dgamma[c] = (float)(sgx * is);
    // dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)), as k * g - (u * x + v).
    const double M = (double)a.N * a.HW;
    const float k = a.gamma[c] * is, meanG = (float)(sg / M), meanGx = (float)(sgx * is * is / M);
    const float u = k * meanGx, v = k * (meanG - m * meanGx);
    for (int n = 0; n < a.N; ++n) {
      const long o = ((long)n * a.C + c) * a.HW;
      const float *xp = a.x + o, *yp = y + o, *dyp = dy + o;
      float* dxp = dx + o;
#pragma omp simd
      for (long i = 0; i < a.HW; ++i) {
        const float g = (!relu || yp[i] > 0.0f) ? dyp[i] : 0.0f;
        dxp[i] = k * g - (u * xp[i] + v);
      }
    }
  }
}

// 2x2 windows with stride 2 (the common case) get straight-line code the compiler vectorizes;
// other windows take the general loops.
static void maxPool2x2Forward(const PoolArgs& a, const float* xp, float* yp) {
  for (int p = 0; p < a.P; ++p) {
    const float *r0 = xp + 2 * p * a.W, *r1 = r0 + a.W;
    float* out = yp + p * a.Q;
#pragma omp simd
    for (int q = 0; q < a.Q; ++q) out[q] = std::max(std::max(r0[2 * q], r0[2 * q + 1]), std::max(r1[2 * q], r1[2 * q + 1]));
  }
}

void maxPoolForward(const PoolArgs& a, const float* x, float* y) {
  const bool fast = a.k == 2 && a.stride == 2;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.planes * a.H * a.W >= kParallelMin)
  for (long pl = 0; pl < a.planes; ++pl) {
    const float* xp = x + pl * a.H * a.W;
    float* yp = y + pl * a.P * a.Q;
    if (fast) {
      maxPool2x2Forward(a, xp, yp);
      continue;
    }
    for (int p = 0; p < a.P; ++p)
      for (int q = 0; q < a.Q; ++q) {
        float best = -INFINITY;
        for (int r = 0; r < a.k; ++r)
          for (int s = 0; s < a.k; ++s) best = std::max(best, xp[(p * a.stride + r) * a.W + q * a.stride + s]);
        yp[p * a.Q + q] = best;
      }
  }
}

// The gradient goes to the first maximum of each window in row-major order (where the forward's
// value came from); windows may overlap when stride < k, so contributions add.
static void maxPool2x2Backward(const PoolArgs& a, const float* xp, const float* dyp, float* dxp) {
  for (int p = 0; p < a.P; ++p) {
    const float *r0 = xp + 2 * p * a.W, *r1 = r0 + a.W;
    float *d0 = dxp + 2 * p * a.W, *d1 = d0 + a.W;
    const float* g = dyp + p * a.Q;
#pragma omp simd
    for (int q = 0; q < a.Q; ++q) {
      const float v0 = r0[2 * q], v1 = r0[2 * q + 1], v2 = r1[2 * q], v3 = r1[2 * q + 1];
      const float m = std::max(std::max(v0, v1), std::max(v2, v3));
      const bool s0 = v0 == m, s1 = !s0 && v1 == m, s2 = !s0 && !s1 && v2 == m, s3 = !s0 && !s1 && !s2;
      d0[2 * q] = s0 ? g[q] : 0.0f;
      d0[2 * q + 1] = s1 ? g[q] : 0.0f;
      d1[2 * q] = s2 ? g[q] : 0.0f;
      d1[2 * q + 1] = s3 ? g[q] : 0.0f;
    }
    if (a.W & 1) d0[a.W - 1] = d1[a.W - 1] = 0.0f;  // an odd last column is in no window
  }
  if (a.H & 1) std::fill_n(dxp + (long)(a.H - 1) * a.W, a.W, 0.0f);
}

void maxPoolBackward(const PoolArgs& a, const float* x, const float* dy, float* dx) {
  const bool fast = a.k == 2 && a.stride == 2;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.planes * a.H * a.W >= kParallelMin)
  for (long pl = 0; pl < a.planes; ++pl) {
    const float* xp = x + pl * a.H * a.W;
    const float* dyp = dy + pl * a.P * a.Q;
    float* dxp = dx + pl * a.H * a.W;
    if (fast) {
      maxPool2x2Backward(a, xp, dyp, dxp);
      continue;
    }
    std::fill_n(dxp, (long)a.H * a.W, 0.0f);
    for (int p = 0; p < a.P; ++p)
      for (int q = 0; q < a.Q; ++q) {
        int at = (p * a.stride) * a.W + q * a.stride;
        for (int r = 0; r < a.k; ++r)
          for (int s = 0; s < a.k; ++s) {
            const int i = (p * a.stride + r) * a.W + q * a.stride + s;
            if (xp[i] > xp[at]) at = i;
          }
        dxp[at] += dyp[p * a.Q + q];
      }
  }
}

// A classifier head is small (N x F x J ~ 10^6 multiply-adds): plain loops over contiguous rows,
// images in parallel; the weight gradient splits the F rows instead (no reduction across threads).
void linearForward(const LinearArgs& a, const float* x, const float* w, const float* b, float* y) {
#pragma omp parallel for schedule(static) num_threads(a.threads) if ((long)a.N * a.F * a.J >= kParallelMin)
  for (int n = 0; n < a.N; ++n) {
    float* yn = y + (long)n * a.J;
    for (int j = 0; j < a.J; ++j) yn[j] = b[j];
    for (int f = 0; f < a.F; ++f) {
      const float xv = x[(long)n * a.F + f];
      const float* wf = w + (long)f * a.J;
      for (int j = 0; j < a.J; ++j) yn[j] += xv * wf[j];
    }
  }
}

void linearBackward(const LinearArgs& a, const float* x, const float* w, const float* dy, float* dx, float* dw, float* db) {
  const bool parallel = (long)a.N * a.F * a.J >= kParallelMin;
#pragma omp parallel num_threads(a.threads) if (parallel)
  {
#pragma omp for schedule(static) nowait
    for (int n = 0; n < a.N; ++n) {
      const float* dyn = dy + (long)n * a.J;
      for (int f = 0; f < a.F; ++f) {
        const float* wf = w + (long)f * a.J;
        float s = 0;
        for (int j = 0; j < a.J; ++j) s += dyn[j] * wf[j];
        dx[(long)n * a.F + f] = s;
      }
    }
#pragma omp for schedule(static)
    for (int f = 0; f < a.F; ++f) {
      float* dwf = dw + (long)f * a.J;
      for (int j = 0; j < a.J; ++j) dwf[j] = 0;
      for (int n = 0; n < a.N; ++n) {
        const float xv = x[(long)n * a.F + f];
        const float* dyn = dy + (long)n * a.J;
        for (int j = 0; j < a.J; ++j) dwf[j] += xv * dyn[j];
      }
    }
  }
  for (int j = 0; j < a.J; ++j) db[j] = 0;
  for (int n = 0; n < a.N; ++n)
    for (int j = 0; j < a.J; ++j) db[j] += dy[(long)n * a.J + j];
}

void momentumStep(long n, float lr, float momentum, const float* w, const float* g, float* accum, float* wOut) {
#pragma omp simd
  for (long i = 0; i < n; ++i) {
    accum[i] = momentum * accum[i] + g[i];
    wOut[i] = w[i] - lr * accum[i];
  }
}

}  // namespace maskacc_ops
