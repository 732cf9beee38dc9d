// The MaskACC paper's conventional baseline: gather kept filters, im2col of kept input
// channels per image, one cblas_sgemm per image, scatter back (col2im for the data gradient).
#pragma once

#include <vector>

#include "conv_common.hpp"

namespace baselines {

class Im2colBlasConv {
 public:
  Im2colBlasConv(const ConvSpec& spec, ChannelSet ko, ChannelSet ci, int threads);
  void forward(const float* x, const float* w, const float* bias, float* y);
  void backwardData(const float* dy, const float* w, float* dx);
  void backwardWeights(const float* dy, const float* x, float* dw, float* dbias);

 private:
  // col[(c'*R + r)*S + s][p*Q + q] for one image `xn` (all C channels, kept ones read).
  void im2col(const float* xn, float* col) const;
  // dxn[ci[c']] = sum of the col entries landing on each pixel; pruned channels untouched.
  void col2im(const float* col, float* dxn) const;
  // yc[k'] = ynFull[ko[k']]: kept rows of one image's output (gradient).
  void gatherRows(const float* ynFull, float* yc) const;

  ConvSpec spec_;
  ChannelSet ko_, ci_;
  int threads_;
  int64_t P_, Q_, CRS_;    // output size, GEMM inner dimension C'*R*S
  std::vector<int64_t> kpos_;  // row of each output channel in Y', -1 if pruned
  std::vector<float> wc_;  // K' x C'RS kept weights (or the reduced weight gradient)
  // Per-thread scratch: each thread owns whole images.
  std::vector<float> col_;  // threads x (C'RS x PQ) patch matrices
  std::vector<float> yc_;   // threads x (K' x PQ) kept output rows
  std::vector<float> dwc_;  // threads x (K' x C'RS) partial weight gradients
};

}  // namespace baselines
