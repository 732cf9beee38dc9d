// oneDNN baselines: a dense convolution called from plain NCHW/OIHW buffers (reorders to the
// library's blocked layouts included), and a compacted variant that gathers kept channels first.
#pragma once

#include <dnnl.hpp>

#include <memory>
#include <vector>

#include "conv_common.hpp"

namespace baselines {

// One tensor as the caller holds it (plain layout, caller's pointer) and as a primitive
// wants it (layout chosen by oneDNN). The reorder between them is created once.
class LayoutBridge {
 public:
  LayoutBridge() = default;
  // toInner: reorder caller -> primitive (inputs); otherwise primitive -> caller (outputs).
  LayoutBridge(const dnnl::memory::desc& plain, const dnnl::memory::desc& inner,
               const dnnl::engine& eng, bool toInner);
  // Points the caller-side memory at `ptr`; for inputs also runs the reorder in.
  void bindInput(const float* ptr, dnnl::stream& strm);
  void bindOutput(float* ptr);
  // For outputs: reorder the primitive's result back into the caller's buffer.
  void flushOutput(dnnl::stream& strm);
  const dnnl::memory& inner() const { return inner_; }

 private:
  dnnl::memory user_, inner_;
  dnnl::reorder reorder_;
  bool needsReorder_ = false;
};

// Dense convolution on plain buffers; every call includes the reorders a NCHW user pays.
class DnnlConv {
 public:
  DnnlConv(const ConvSpec& spec, int threads);
  void forward(const float* x, const float* w, const float* bias, float* y);
  void backwardData(const float* dy, const float* w, float* dx);
  // dbias may be null (bias gradient is still computed when spec.bias, then dropped).
  void backwardWeights(const float* dy, const float* x, float* dw, float* dbias);

 private:
  ConvSpec spec_;
  int threads_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  dnnl::memory::desc biasMd_;

  dnnl::convolution_forward fwd_;
  LayoutBridge fwdSrc_, fwdWei_, fwdDst_;
  dnnl::memory fwdBias_;

  dnnl::convolution_backward_data bwdData_;
  LayoutBridge bdDiffDst_, bdWei_, bdDiffSrc_;

  dnnl::convolution_backward_weights bwdWeights_;
  LayoutBridge bwSrc_, bwDiffDst_, bwDiffWei_;
  dnnl::memory bwDiffBias_;
  std::vector<float> scratchBias_;  // dbias target when the caller passes null
};

// The best a user can assemble from stock parts: gather the kept channels into compact
// tensors, run dense oneDNN on the smaller shape, scatter back (zeros for pruned channels).
// With noCopies (the efficiency yardstick: oneDNN on the kept shapes as if the gather were free)
// only the first call of each pass gathers its inputs and scatters its output (that call is the
// one the benchmark checks); later calls run oneDNN alone on the operands gathered then.
class CompactDnnlConv {
 public:
  CompactDnnlConv(const ConvSpec& spec, ChannelSet ko, ChannelSet ci, int threads, bool noCopies = false);
  void forward(const float* x, const float* w, const float* bias, float* y);
  void backwardData(const float* dy, const float* w, float* dx);
  void backwardWeights(const float* dy, const float* x, float* dw, float* dbias);

 private:
  bool empty() const { return !conv_; }
  ConvSpec spec_;
  ChannelSet ko_, ci_;
  int threads_;
  std::unique_ptr<DnnlConv> conv_;  // null when K' or C' is 0: outputs are all zeros
  std::vector<float> xc_, wc_, yc_, bc_;  // compact x/dx, w/dw, y/dy, bias/dbias
  bool noCopies_;
  bool copied_[3] = {false, false, false};  // per pass: first call done (noCopies)
  std::vector<float> xg_, wg_, dyg_, bg_;   // noCopies: gathered inputs, apart from the outputs
  // Copy this call? Always without noCopies; else the first call of `pass` only.
  bool copies(int pass) { const bool c = !noCopies_ || !copied_[pass]; copied_[pass] = true; return c; }
  float* in(std::vector<float>& gathered, std::vector<float>& shared) { return (noCopies_ ? gathered : shared).data(); }
};

}  // namespace baselines
