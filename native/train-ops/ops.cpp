// maskacc training ops: the non-convolution layers of a CNN training step, in NCHW (the conv
// kernels' layout) and channels-last (TF.js's). Memory-bound loops: one pass where the math
// allows, OpenMP over channels, planes or rows, float32 data with float64 statistics.
#include "ops.hpp"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace maskacc_ops {
// The kernels' vector primitives for the build's ISA (templates/isa/<isa>.hpp, copied in as simd.hpp).
#include "simd.hpp"
}  // namespace maskacc_ops

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

static void batchNormRowsForward(const BatchNormArgs& a, bool training, float* mean, float* invstd, float* y);
static void batchNormRowsBackward(const BatchNormArgs& a, const float* mean, const float* invstd, const float* y,
                                  const float* dy, float* dx, float* dgamma, float* dbeta);

void batchNormReluForward(const BatchNormArgs& a, bool training, float* mean, float* invstd, float* y) {
  if (a.HW == 1) return batchNormRowsForward(a, training, mean, invstd, y);
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.N * a.C * a.HW >= kParallelMin)
  for (int c = 0; c < a.C; ++c) {
    if (training) {  // every channel's statistics, as TF.js keeps them (for moving averages)
      double m, v;
      channelStats(a.x, a.N, a.C, a.HW, c, m, v);
      mean[c] = (float)m;
      invstd[c] = (float)(1.0 / std::sqrt(v + a.eps));
    }
    if (!a.keep[c]) {  // pruned channel: exactly zero, whatever its input
      for (int n = 0; n < a.N; ++n) std::fill_n(y + ((long)n * a.C + c) * a.HW, a.HW, 0.0f);
      continue;
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
  if (a.HW == 1) return batchNormRowsBackward(a, mean, invstd, y, dy, dx, dgamma, dbeta);
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

// Channels-last batch norm: x is [M][C] (M = a.N rows of C contiguous channels), so the loops run
// along the channels, a vector at a time. Each thread sums a contiguous range of rows, in float
// over blocks of kRowBlock rows and in double across blocks; the per-thread partials are added in
// thread order, so the result does not depend on timing.
static constexpr long kRowBlock = 64;

// Per channel, sums of f0(m, c) and f1(m, c) over all rows into s0, s1 (double).
template <class F>
static void rowSums(const BatchNormArgs& a, F&& f, std::vector<double>& s0, std::vector<double>& s1) {
  const int C = a.C;
  const long M = a.N;
  const int T = (long)M * C >= kParallelMin ? a.threads : 1;
  std::vector<double> part((size_t)T * 2 * C, 0.0);
#pragma omp parallel num_threads(T)
  {
    double* p0 = part.data() + (size_t)omp_get_thread_num() * 2 * C;
    double* p1 = p0 + C;
    std::vector<float> f0(C), f1(C);
    const long blocks = (M + kRowBlock - 1) / kRowBlock;
#pragma omp for schedule(static)
    for (long b = 0; b < blocks; ++b) {
      std::fill(f0.begin(), f0.end(), 0.0f);
      std::fill(f1.begin(), f1.end(), 0.0f);
      for (long m = b * kRowBlock; m < std::min(M, (b + 1) * kRowBlock); ++m) f(m, f0.data(), f1.data());
      for (int c = 0; c < C; ++c) {
        p0[c] += f0[c];
        p1[c] += f1[c];
      }
    }
  }
  s0.assign(C, 0.0);
  s1.assign(C, 0.0);
  for (int t = 0; t < T; ++t)
    for (int c = 0; c < C; ++c) {
      s0[c] += part[(size_t)t * 2 * C + c];
      s1[c] += part[(size_t)t * 2 * C + C + c];
    }
}

static void batchNormRowsForward(const BatchNormArgs& a, bool training, float* mean, float* invstd, float* y) {
  const int C = a.C;
  const long M = a.N;
  if (training) {
    std::vector<double> s, ss;
    rowSums(
        a,
        [&](long m, float* f0, float* f1) {
          const float* xr = a.x + m * C;
#pragma omp simd
          for (int c = 0; c < C; ++c) {
            f0[c] += xr[c];
            f1[c] += xr[c] * xr[c];
          }
        },
        s, ss);
    for (int c = 0; c < C; ++c) {
      const double mu = s[c] / M, var = std::max(0.0, ss[c] / M - mu * mu);
      mean[c] = (float)mu;
      invstd[c] = (float)(1.0 / std::sqrt(var + a.eps));
    }
  }
  std::vector<float> scale(C), shift(C), kept(C);
  for (int c = 0; c < C; ++c) {
    kept[c] = a.keep[c] ? 1.0f : 0.0f;
    scale[c] = a.keep[c] ? a.gamma[c] * invstd[c] : 0.0f;
    shift[c] = a.keep[c] ? a.beta[c] - mean[c] * scale[c] : 0.0f;
  }
  const bool relu = a.relu;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (M * C >= kParallelMin)
  for (long m = 0; m < M; ++m) {
    const float* xr = a.x + m * C;
    float* yr = y + m * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      float v = xr[c] * scale[c] + shift[c];
      yr[c] = kept[c] != 0.0f && (!relu || v > 0.0f) ? v : 0.0f;  // pruned: +0 even where x is not finite
    }
  }
}

static void batchNormRowsBackward(const BatchNormArgs& a, const float* mean, const float* invstd, const float* y,
                                  const float* dy, float* dx, float* dgamma, float* dbeta) {
  const int C = a.C;
  const long M = a.N;
  const bool relu = a.relu;
  std::vector<double> sg, sgx;
  rowSums(
      a,
      [&](long m, float* f0, float* f1) {
        const float *xr = a.x + m * C, *yr = y + m * C, *dyr = dy + m * C;
#pragma omp simd
        for (int c = 0; c < C; ++c) {
          const float g = (!relu || yr[c] > 0.0f) ? dyr[c] : 0.0f;
          f0[c] += g;
          f1[c] += g * (xr[c] - mean[c]);
        }
      },
      sg, sgx);
  // dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)), as k * g - (u * x + v).
  std::vector<float> k(C), u(C), v(C), kept(C);
  for (int c = 0; c < C; ++c) {
    kept[c] = a.keep[c] ? 1.0f : 0.0f;
    if (!a.keep[c]) {
      dgamma[c] = dbeta[c] = k[c] = u[c] = v[c] = 0.0f;
      continue;
    }
    const float is = invstd[c];
    dbeta[c] = (float)sg[c];
    dgamma[c] = (float)(sgx[c] * is);
    k[c] = a.gamma[c] * is;
    const float meanG = (float)(sg[c] / M), meanGx = (float)(sgx[c] * is * is / M);
    u[c] = k[c] * meanGx;
    v[c] = k[c] * (meanG - mean[c] * meanGx);
  }
#pragma omp parallel for schedule(static) num_threads(a.threads) if (M * C >= kParallelMin)
  for (long m = 0; m < M; ++m) {
    const float *xr = a.x + m * C, *yr = y + m * C, *dyr = dy + m * C;
    float* dxr = dx + m * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      const float g = (!relu || yr[c] > 0.0f) ? dyr[c] : 0.0f;
      const float d = k[c] * g - (u[c] * xr[c] + v[c]);
      dxr[c] = kept[c] != 0.0f ? d : 0.0f;
    }
  }
}

// 2x2 windows with stride 2 (the common case) get straight-line code the compiler vectorizes;
// other windows take the general loops.
static void maxPool2x2Forward(const Pool2dArgs& a, const float* xp, float* yp) {
  for (int p = 0; p < a.P; ++p) {
    const float *r0 = xp + 2 * p * a.W, *r1 = r0 + a.W;
    float* out = yp + p * a.Q;
#pragma omp simd
    for (int q = 0; q < a.Q; ++q) out[q] = std::max(std::max(r0[2 * q], r0[2 * q + 1]), std::max(r1[2 * q], r1[2 * q + 1]));
  }
}

// The gradient goes to the first maximum of each window in row-major order (where the forward's
// value came from); windows may overlap when stride < k, so contributions add.
static void maxPool2x2Backward(const Pool2dArgs& a, const float* xp, const float* dyp, float* dxp) {
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

// The window of output (p, q) clipped to the input: taps [r0, r1) x [s0, s1) at rows h0 + r.
struct Window {
  int h0, w0, r0, r1, s0, s1;
};
static inline Window windowAt(const Pool2dArgs& a, int p, int q) {
  Window w;
  w.h0 = p * a.sh - a.padTop;
  w.w0 = q * a.sw - a.padLeft;
  w.r0 = std::max(0, -w.h0);
  w.r1 = std::min(a.kh, a.H - w.h0);
  w.s0 = std::max(0, -w.w0);
  w.s1 = std::min(a.kw, a.W - w.w0);
  return w;
}

// 2x2 windows, stride 2, every window inside the input: the NCHW fast path.
static bool fitsValid2x2(const Pool2dArgs& a) {
  return a.kh == 2 && a.kw == 2 && a.sh == 2 && a.sw == 2 && a.padTop == 0 && a.padLeft == 0 && 2 * a.P <= a.H &&
         2 * a.Q <= a.W;
}

static constexpr int kTapChunk = 64;

void maxPool2dForward(const Pool2dArgs& a, const float* x, float* y, uint8_t* argmax) {
  const bool par = (long)a.N * a.C * a.P * a.Q * a.kh * a.kw >= kParallelMin;
  if (!a.channelsLast) {
    if (fitsValid2x2(a)) {
#pragma omp parallel for schedule(static) num_threads(a.threads) if (par)
      for (long pl = 0; pl < (long)a.N * a.C; ++pl) maxPool2x2Forward(a, x + pl * a.H * a.W, y + pl * a.P * a.Q);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(a.threads) if (par)
    for (long pl = 0; pl < (long)a.N * a.C; ++pl) {
      const float* xp = x + pl * a.H * a.W;
      float* yp = y + pl * a.P * a.Q;
      for (int p = 0; p < a.P; ++p)
        for (int q = 0; q < a.Q; ++q) {
          const Window w = windowAt(a, p, q);
          float best = -INFINITY;
          for (int r = w.r0; r < w.r1; ++r)
            for (int s = w.s0; s < w.s1; ++s) best = std::max(best, xp[(w.h0 + r) * a.W + w.w0 + s]);
          yp[p * a.Q + q] = best;
        }
    }
    return;
  }
  // Channels-last: one vector of channels per tap.
  const int C = a.C;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (par)
  for (long np = 0; np < (long)a.N * a.P; ++np) {
    const long n = np / a.P;
    const int p = (int)(np % a.P);
    for (int q = 0; q < a.Q; ++q) {
      float* yo = y + (np * a.Q + q) * C;
      std::fill_n(yo, C, -INFINITY);
      const Window w = windowAt(a, p, q);
      if (!argmax) {
        for (int r = w.r0; r < w.r1; ++r)
          for (int s = w.s0; s < w.s1; ++s) {
            const float* xi = x + ((n * a.H + w.h0 + r) * a.W + w.w0 + s) * C;
#pragma omp simd
            for (int c = 0; c < C; ++c) yo[c] = xi[c] > yo[c] ? xi[c] : yo[c];
          }
        continue;
      }
      uint8_t* ao = argmax + (np * a.Q + q) * C;
      if (C % 32 == 0) {  // whole byte vectors: the loop runs at the byte width
        std::fill_n(ao, C, kNoTap);
        for (int r = w.r0; r < w.r1; ++r)
          for (int s = w.s0; s < w.s1; ++s) {
            const float* xi = x + ((n * a.H + w.h0 + r) * a.W + w.w0 + s) * C;
            const uint8_t tap = (uint8_t)(r * a.kw + s);
#pragma omp simd
            for (int c = 0; c < C; ++c) {
              const bool more = xi[c] > yo[c];
              yo[c] = more ? xi[c] : yo[c];
              ao[c] = more ? tap : ao[c];
            }
          }
        continue;
      }
      // Other channel counts (16, a compact 20) would leave the byte loop to its scalar remainder:
      // the taps are tracked as floats, at the float vector width, and converted once per output.
      for (int c0 = 0; c0 < C; c0 += kTapChunk) {
        const int cn = std::min(kTapChunk, C - c0);
        float taps[kTapChunk];
        std::fill_n(taps, cn, (float)kNoTap);
        for (int r = w.r0; r < w.r1; ++r)
          for (int s = w.s0; s < w.s1; ++s) {
            const float* xi = x + ((n * a.H + w.h0 + r) * a.W + w.w0 + s) * C + c0;
            const float tap = (float)(r * a.kw + s);
            float* yc = yo + c0;
#pragma omp simd
            for (int c = 0; c < cn; ++c) {
              const bool more = xi[c] > yc[c];
              yc[c] = more ? xi[c] : yc[c];
              taps[c] = more ? tap : taps[c];
            }
          }
#pragma omp simd
        for (int c = 0; c < cn; ++c) ao[c0 + c] = (uint8_t)(int)taps[c];
      }
    }
  }
}

void maxPool2dBackwardArgmax(const Pool2dArgs& a, const uint8_t* argmax, const float* dy, float* dx) {
  const int C = a.C;
#pragma omp parallel for schedule(static) num_threads(a.threads) if ((long)a.N * a.C * a.H * a.W >= kParallelMin)
  for (long n = 0; n < a.N; ++n) {
    float* dxn = dx + n * a.H * a.W * C;
    std::fill_n(dxn, (long)a.H * a.W * C, 0.0f);
    for (int p = 0; p < a.P; ++p)
      for (int q = 0; q < a.Q; ++q) {
        const Window w = windowAt(a, p, q);
        const long o = ((n * a.P + p) * a.Q + q) * C;
        for (int c = 0; c < C; ++c) {
          const int tap = argmax[o + c];
          if (tap == kNoTap) continue;
          dxn[((long)(w.h0 + tap / a.kw) * a.W + w.w0 + tap % a.kw) * C + c] += dy[o + c];
        }
      }
  }
}

// The gradient of each window goes to its first strict maximum (row-major), as TF.js's
// maxPoolPositions pick it; overlapping windows add. Images run in parallel (no two threads
// write one dx image).
void maxPool2dBackward(const Pool2dArgs& a, const float* x, const float* dy, float* dx) {
  const bool par = (long)a.N * a.C * a.H * a.W >= kParallelMin;
  if (!a.channelsLast) {
    if (fitsValid2x2(a)) {
#pragma omp parallel for schedule(static) num_threads(a.threads) if (par)
      for (long pl = 0; pl < (long)a.N * a.C; ++pl)
        maxPool2x2Backward(a, x + pl * a.H * a.W, dy + pl * a.P * a.Q, dx + pl * a.H * a.W);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(a.threads) if (par)
    for (long pl = 0; pl < (long)a.N * a.C; ++pl) {
      const float* xp = x + pl * a.H * a.W;
      const float* dyp = dy + pl * a.P * a.Q;
      float* dxp = dx + pl * a.H * a.W;
      std::fill_n(dxp, (long)a.H * a.W, 0.0f);
      for (int p = 0; p < a.P; ++p)
        for (int q = 0; q < a.Q; ++q) {
          const Window w = windowAt(a, p, q);
          float best = -INFINITY;
          long at = -1;
          for (int r = w.r0; r < w.r1; ++r)
            for (int s = w.s0; s < w.s1; ++s) {
              const long i = (long)(w.h0 + r) * a.W + w.w0 + s;
              if (xp[i] > best) best = xp[i], at = i;
            }
          if (at >= 0) dxp[at] += dyp[p * a.Q + q];
        }
    }
    return;
  }
  const int C = a.C;
#pragma omp parallel num_threads(a.threads) if (par)
  {
    std::vector<float> best(C);
    std::vector<long> at(C);
#pragma omp for schedule(static)
    for (long n = 0; n < a.N; ++n) {
      const float* xn = x + n * a.H * a.W * C;
      float* dxn = dx + n * a.H * a.W * C;
      std::fill_n(dxn, (long)a.H * a.W * C, 0.0f);
      for (int p = 0; p < a.P; ++p)
        for (int q = 0; q < a.Q; ++q) {
          std::fill(best.begin(), best.end(), -INFINITY);
          std::fill(at.begin(), at.end(), -1L);
          const Window w = windowAt(a, p, q);
          for (int r = w.r0; r < w.r1; ++r)
            for (int s = w.s0; s < w.s1; ++s) {
              const long o = ((long)(w.h0 + r) * a.W + w.w0 + s) * C;
              for (int c = 0; c < C; ++c)
                if (xn[o + c] > best[c]) best[c] = xn[o + c], at[c] = o + c;
            }
          const float* g = dy + ((n * a.P + p) * a.Q + q) * C;
          for (int c = 0; c < C; ++c)
            if (at[c] >= 0) dxn[at[c]] += g[c];
        }
    }
  }
}

void reluForward(long n, int threads, const float* x, float* y) {
#pragma omp parallel for simd schedule(static) num_threads(threads) if (n >= kParallelMin)
  for (long i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;  // (std::max compiled to a branch here)
}

void reluBackward(long n, int threads, const float* y, const float* dy, float* dx) {
#pragma omp parallel for simd schedule(static) num_threads(threads) if (n >= kParallelMin)
  for (long i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// Whether every plane of a channel with keep[c] == 0 is all zeros (NCHW, N images of C planes).
// A full scan on both threads (the planes are zero in the case that matters; no early exit).
bool prunedPlanesZero(int N, int C, long HW, const uint8_t* keep, const float* x, int threads) {
  int nonzero = 0;
#pragma omp parallel for collapse(2) schedule(static) reduction(| : nonzero) num_threads(threads) if ((long)N * C * HW >= kParallelMin)
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      if (keep[c]) continue;
      const float* p = x + ((long)n * C + c) * HW;
      int any = 0;
#pragma omp simd reduction(| : any)
      for (long i = 0; i < HW; ++i) any |= p[i] != 0.0f;
      nonzero |= any;
    }
  return !nonzero;
}

// Per image, dst[dstRow[b] + a] = src[srcRow[a] + b] for a < A, b < B: a transpose whose rows sit
// at arbitrary offsets (the kept channels' planes), by VW x VW blocks through a register transpose
// (simd::transpose); a ragged edge moves element by element. dstStride > 0 says dstRow[b] is
// b * dstStride (the blocks then skip a copy through the stack: 25% of a 784 x 32 transpose).
static void transposeRows(int N, long A, long B, long srcImage, long dstImage, const long* srcRow,
                          const long* dstRow, long dstStride, int threads, const float* src, float* dst) {
  constexpr int V = simd::VW;
  const long blocks = (A + V - 1) / V;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if ((long)N * A * B >= kParallelMin)
  for (int n = 0; n < N; ++n)
    for (long t = 0; t < blocks; ++t) {
      const float* s = src + n * srcImage;
      float* d = dst + n * dstImage;
      const long a0 = t * V;
      if (a0 + V > A) {
        for (long b = 0; b < B; ++b)
          for (long a = a0; a < A; ++a) d[dstRow[b] + a] = s[srcRow[a] + b];
        continue;
      }
      alignas(64) float block[V * V];
      const float* rows[V];
      long b = 0;
      for (; b + V <= B; b += V) {
        for (int i = 0; i < V; ++i) rows[i] = s + srcRow[a0 + i] + b;
        if (dstStride > 0) {  // evenly spaced destination rows: straight from the registers
          simd::transpose(rows, d + dstRow[b] + a0, dstStride);
          continue;
        }
        simd::transpose(rows, block, V);
        for (int j = 0; j < V; ++j) simd::storeu(d + dstRow[b + j] + a0, simd::loadu(block + j * V));
      }
      for (; b < B; ++b)
        for (int i = 0; i < V; ++i) d[dstRow[b] + a0 + i] = s[srcRow[a0 + i] + b];
    }
}

// The full transpose: the row tables of a plain [A][B] -> [B][A].
void transposeImages(int N, long A, long B, int threads, const float* src, float* dst) {
  std::vector<long> srcRow(A), dstRow(B);
  for (long a = 0; a < A; ++a) srcRow[a] = a * B;
  for (long b = 0; b < B; ++b) dstRow[b] = b * A;
  transposeRows(N, A, B, A * B, A * B, srcRow.data(), dstRow.data(), A, threads, src, dst);
}

// The kept channels' indices.
static std::vector<long> keptChannels(int C, const uint8_t* keep) {
  std::vector<long> kept;
  for (int c = 0; c < C; ++c)
    if (keep[c]) kept.push_back(c);
  return kept;
}

void channelsToPlanes(int N, long HW, int C, const uint8_t* keep, int threads, const float* src, float* dst) {
  const std::vector<long> kept = keptChannels(C, keep);
  const long K = (long)kept.size();
  if (K == 0) return;
  std::vector<long> srcRow(HW), dstRow(K);
  for (long p = 0; p < HW; ++p) srcRow[p] = p * K;
  for (long k = 0; k < K; ++k) dstRow[k] = kept[k] * HW;
  transposeRows(N, HW, K, HW * K, (long)C * HW, srcRow.data(), dstRow.data(), 0, threads, src, dst);
}

void planesToChannels(int N, int C, long HW, const uint8_t* keep, int threads, const float* src, float* dst) {
  const std::vector<long> kept = keptChannels(C, keep);
  const long K = (long)kept.size();
  if (K == 0) return;
  std::vector<long> srcRow(K), dstRow(HW);
  for (long k = 0; k < K; ++k) srcRow[k] = kept[k] * HW;
  for (long p = 0; p < HW; ++p) dstRow[p] = p * K;
  transposeRows(N, K, HW, (long)C * HW, HW * K, srcRow.data(), dstRow.data(), K, threads, src, dst);
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
