// Shared pieces of the baseline convolutions: the layer shape (ConvSpec), kept-channel
// index sets, and the gather/scatter copies a user pays to run a pruned layer compactly.
#pragma once

#include <omp.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace baselines {

// NCHW input, OIHW weights, NKPQ output. Dilation is 1-based (1 = dense kernel).
struct ConvSpec {
  int64_t N, C, K, H, W, R, S;
  int64_t strideH, strideW, padH, padW, dilH, dilW;
  bool bias;

  int64_t P() const { return (H + 2 * padH - dilH * (R - 1) - 1) / strideH + 1; }
  int64_t Q() const { return (W + 2 * padW - dilW * (S - 1) - 1) / strideW + 1; }
  int64_t xSize() const { return N * C * H * W; }
  int64_t wSize() const { return K * C * R * S; }
  int64_t ySize() const { return N * K * P() * Q(); }

  // Same layer with only `k` output and `c` input channels (the compacted problem).
  ConvSpec compacted(int64_t k, int64_t c) const {
    ConvSpec s = *this;
    s.K = k;
    s.C = c;
    return s;
  }
};

// The kept channels of one dimension: ordered indices plus a dense kept flag per channel.
struct ChannelSet {
  std::vector<int32_t> idx;
  std::vector<uint8_t> kept;
  int64_t count() const { return (int64_t)idx.size(); }
  int64_t full() const { return (int64_t)kept.size(); }
};

// dst[n][j] = src[n][set.idx[j]]: planes of `plane` floats, src has set.full() channels.
inline void gatherPlanes(const float* src, int64_t N, const ChannelSet& set, int64_t plane,
                         float* dst) {
  const int64_t full = set.full(), kept = set.count();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < kept; ++j)
      std::memcpy(dst + (n * kept + j) * plane, src + (n * full + set.idx[j]) * plane,
                  plane * sizeof(float));
}

// Inverse of gatherPlanes; channels not in `set` are zero-filled so dst is fully written.
inline void scatterPlanes(const float* src, int64_t N, const ChannelSet& set, int64_t plane,
                          float* dst) {
  const int64_t full = set.full(), kept = set.count();
  // Position of each full channel inside the compact tensor, -1 if pruned.
  std::vector<int64_t> pos(full, -1);
  for (int64_t j = 0; j < kept; ++j) pos[set.idx[j]] = j;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < full; ++c) {
      float* out = dst + (n * full + c) * plane;
      if (pos[c] < 0)
        std::memset(out, 0, plane * sizeof(float));
      else
        std::memcpy(out, src + (n * kept + pos[c]) * plane, plane * sizeof(float));
    }
}

// wc[k'][c'] = w[ko[k']][ci[c']], each entry an RS-float kernel.
inline void gatherWeights(const float* w, const ChannelSet& ko, const ChannelSet& ci, int64_t RS,
                          float* wc) {
  const int64_t C = ci.full(), Kc = ko.count(), Cc = ci.count();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t k = 0; k < Kc; ++k)
    for (int64_t c = 0; c < Cc; ++c)
      std::memcpy(wc + (k * Cc + c) * RS, w + (ko.idx[k] * C + ci.idx[c]) * RS, RS * sizeof(float));
}

// dw[ko[k']][ci[c']] = wc[k'][c'], zeros for every pruned (k, c) pair.
inline void scatterWeights(const float* wc, const ChannelSet& ko, const ChannelSet& ci, int64_t RS,
                           float* dw) {
  const int64_t K = ko.full(), C = ci.full(), Cc = ci.count();
  std::vector<int64_t> kpos(K, -1), cpos(C, -1);
  for (int64_t j = 0; j < ko.count(); ++j) kpos[ko.idx[j]] = j;
  for (int64_t j = 0; j < Cc; ++j) cpos[ci.idx[j]] = j;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c) {
      float* out = dw + (k * C + c) * RS;
      if (kpos[k] < 0 || cpos[c] < 0)
        std::memset(out, 0, RS * sizeof(float));
      else
        std::memcpy(out, wc + (kpos[k] * Cc + cpos[c]) * RS, RS * sizeof(float));
    }
}

// Bias vector of the kept outputs, and its inverse with zeros for pruned outputs.
inline void gatherVector(const float* v, const ChannelSet& set, float* vc) {
  for (int64_t j = 0; j < set.count(); ++j) vc[j] = v[set.idx[j]];
}
inline void scatterVector(const float* vc, const ChannelSet& set, float* v) {
  std::memset(v, 0, set.full() * sizeof(float));
  for (int64_t j = 0; j < set.count(); ++j) v[set.idx[j]] = vc[j];
}

}  // namespace baselines
