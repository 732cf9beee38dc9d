// im2col + OpenBLAS sgemm convolution over the kept channels only, one GEMM per image, as in
// the MaskACC paper's baseline. Images are spread over OpenMP threads, each GEMM single-threaded.
#include "im2col_blas.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

namespace baselines {

// Why images-per-thread instead of a threaded BLAS per image: Debian's OpenBLAS runs its own
// pthread pool, whose spinning workers fight the OpenMP threads of im2col (measured 7x slower
// on 2 threads). One threading runtime, shared with oneDNN, keeps the comparison clean.

Im2colBlasConv::Im2colBlasConv(const ConvSpec& s, ChannelSet ko, ChannelSet ci, int threads)
    : spec_(s), ko_(std::move(ko)), ci_(std::move(ci)), threads_(threads) {
  P_ = s.P();
  Q_ = s.Q();
  CRS_ = ci_.count() * s.R * s.S;
  const int64_t Kc = ko_.count(), PQ = P_ * Q_;
  kpos_.assign(s.K, -1);
  for (int64_t j = 0; j < Kc; ++j) kpos_[ko_.idx[j]] = j;
  wc_.resize(Kc * CRS_);
  col_.resize(threads * CRS_ * PQ);
  yc_.resize(threads * Kc * PQ);
  dwc_.resize(threads * Kc * CRS_);
}

void Im2colBlasConv::im2col(const float* xn, float* col) const {
  const ConvSpec& s = spec_;
  const int64_t PQ = P_ * Q_;
  for (int64_t row = 0; row < CRS_; ++row) {
    const int64_t c = ci_.idx[row / (s.R * s.S)];
    const int64_t r = (row / s.S) % s.R, sk = row % s.S;
    const float* plane = xn + c * s.H * s.W;
    float* out = col + row * PQ;
    for (int64_t p = 0; p < P_; ++p) {
      const int64_t ih = p * s.strideH - s.padH + r * s.dilH;
      float* o = out + p * Q_;
      if (ih < 0 || ih >= s.H) {
        std::fill_n(o, Q_, 0.0f);
        continue;
      }
      const float* in = plane + ih * s.W;
      for (int64_t q = 0; q < Q_; ++q) {
        const int64_t iw = q * s.strideW - s.padW + sk * s.dilW;
        o[q] = (iw >= 0 && iw < s.W) ? in[iw] : 0.0f;
      }
    }
  }
}

void Im2colBlasConv::col2im(const float* col, float* dxn) const {
  const ConvSpec& s = spec_;
  const int64_t PQ = P_ * Q_, Cc = ci_.count();
  for (int64_t j = 0; j < Cc; ++j) {
    float* plane = dxn + ci_.idx[j] * s.H * s.W;
    std::fill_n(plane, s.H * s.W, 0.0f);
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t sk = 0; sk < s.S; ++sk) {
        const float* in = col + ((j * s.R + r) * s.S + sk) * PQ;
        for (int64_t p = 0; p < P_; ++p) {
          const int64_t ih = p * s.strideH - s.padH + r * s.dilH;
          if (ih < 0 || ih >= s.H) continue;
          for (int64_t q = 0; q < Q_; ++q) {
            const int64_t iw = q * s.strideW - s.padW + sk * s.dilW;
            if (iw >= 0 && iw < s.W) plane[ih * s.W + iw] += in[p * Q_ + q];
          }
        }
      }
  }
}

void Im2colBlasConv::gatherRows(const float* ynFull, float* yc) const {
  const int64_t PQ = P_ * Q_;
  for (int64_t j = 0; j < ko_.count(); ++j)
    std::memcpy(yc + j * PQ, ynFull + ko_.idx[j] * PQ, PQ * sizeof(float));
}

void Im2colBlasConv::forward(const float* x, const float* w, const float* bias, float* y) {
  const ConvSpec& s = spec_;
  const int64_t Kc = ko_.count(), PQ = P_ * Q_;
  omp_set_num_threads(threads_);
  openblas_set_num_threads(1);
  if (Kc > 0 && CRS_ > 0) gatherWeights(w, ko_, ci_, s.R * s.S, wc_.data());
#pragma omp parallel num_threads(threads_)
  {
    const int t = omp_get_thread_num();
    float* col = col_.data() + t * CRS_ * PQ;
    float* yc = yc_.data() + t * Kc * PQ;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.N; ++n) {
      if (Kc > 0 && CRS_ > 0) {
        im2col(x + n * s.C * s.H * s.W, col);
        // Y'(K' x PQ) = W'(K' x C'RS) * col(C'RS x PQ)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Kc, PQ, CRS_, 1.0f, wc_.data(),
                    CRS_, col, PQ, 0.0f, yc, PQ);
      } else {
        std::fill_n(yc, Kc * PQ, 0.0f);
      }
      // Scatter kept rows (plus bias), zero the pruned output channels.
      float* yn = y + n * s.K * PQ;
      for (int64_t k = 0; k < s.K; ++k) {
        float* out = yn + k * PQ;
        if (kpos_[k] < 0) {
          std::fill_n(out, PQ, 0.0f);
          continue;
        }
        const float* src = yc + kpos_[k] * PQ;
        const float b = s.bias ? bias[k] : 0.0f;
        for (int64_t i = 0; i < PQ; ++i) out[i] = src[i] + b;
      }
    }
  }
}

void Im2colBlasConv::backwardData(const float* dy, const float* w, float* dx) {
  const ConvSpec& s = spec_;
  const int64_t Kc = ko_.count(), PQ = P_ * Q_, HW = s.H * s.W;
  omp_set_num_threads(threads_);
  openblas_set_num_threads(1);
  if (Kc > 0 && CRS_ > 0) gatherWeights(w, ko_, ci_, s.R * s.S, wc_.data());
#pragma omp parallel num_threads(threads_)
  {
    const int t = omp_get_thread_num();
    float* col = col_.data() + t * CRS_ * PQ;
    float* yc = yc_.data() + t * Kc * PQ;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.N; ++n) {
      float* dxn = dx + n * s.C * HW;
      if (Kc > 0 && CRS_ > 0) {
        gatherRows(dy + n * s.K * PQ, yc);
        // col(C'RS x PQ) = W'^T * dY'(K' x PQ), then fold the patches back onto the image.
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CRS_, PQ, Kc, 1.0f, wc_.data(), CRS_,
                    yc, PQ, 0.0f, col, PQ);
        col2im(col, dxn);
      } else {
        for (int64_t j = 0; j < ci_.count(); ++j) std::fill_n(dxn + ci_.idx[j] * HW, HW, 0.0f);
      }
      // Pruned input channels get no gradient.
      for (int64_t c = 0; c < s.C; ++c)
        if (!ci_.kept[c]) std::fill_n(dxn + c * HW, HW, 0.0f);
    }
  }
}

void Im2colBlasConv::backwardWeights(const float* dy, const float* x, float* dw, float* dbias) {
  const ConvSpec& s = spec_;
  const int64_t Kc = ko_.count(), PQ = P_ * Q_, wcSize = Kc * CRS_;
  omp_set_num_threads(threads_);
  openblas_set_num_threads(1);
  // Per-thread partial sums of dW' and dbias', reduced after the image loop.
  std::vector<double> biasAcc(threads_ * Kc, 0.0);
  std::vector<uint8_t> touched(threads_, 0);
#pragma omp parallel num_threads(threads_)
  {
    const int t = omp_get_thread_num();
    float* col = col_.data() + t * CRS_ * PQ;
    float* yc = yc_.data() + t * Kc * PQ;
    float* dwc = dwc_.data() + t * wcSize;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.N; ++n) {
      if (Kc == 0) continue;
      gatherRows(dy + n * s.K * PQ, yc);
      if (CRS_ > 0) {
        im2col(x + n * s.C * s.H * s.W, col);
        // dW'(K' x C'RS) += dY'(K' x PQ) * col^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Kc, CRS_, PQ, 1.0f, yc, PQ, col, PQ,
                    touched[t] ? 1.0f : 0.0f, dwc, CRS_);
      }
      touched[t] = 1;
      if (dbias)
        for (int64_t k = 0; k < Kc; ++k) {
          const float* row = yc + k * PQ;
          double acc = 0;
          for (int64_t i = 0; i < PQ; ++i) acc += row[i];
          biasAcc[t * Kc + k] += acc;
        }
    }
  }
  // Reduce the per-thread partials into wc_, then scatter into the full-size gradient.
  std::fill(wc_.begin(), wc_.end(), 0.0f);
  for (int t = 0; t < threads_; ++t) {
    if (!touched[t]) continue;
    const float* part = dwc_.data() + t * wcSize;
    for (int64_t i = 0; i < wcSize; ++i) wc_[i] += part[i];
  }
  if (wcSize > 0)
    scatterWeights(wc_.data(), ko_, ci_, s.R * s.S, dw);
  else
    std::memset(dw, 0, s.wSize() * sizeof(float));
  if (dbias) {
    std::fill_n(dbias, s.K, 0.0f);
    for (int64_t k = 0; k < Kc; ++k) {
      double acc = 0;
      for (int t = 0; t < threads_; ++t) acc += biasAcc[t * Kc + k];
      dbias[ko_.idx[k]] = (float)acc;
    }
  }
}

}  // namespace baselines
