// oneDNN (v2.x API) dense and compacted convolution baselines; primitives and memories are
// created once per layer, each call runs one pass including the plain<->blocked reorders.
#include "onednn_conv.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace baselines {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

LayoutBridge::LayoutBridge(const memory::desc& plain, const memory::desc& inner,
                           const dnnl::engine& eng, bool toInner) {
  // Caller's buffer is attached per call, so no handle yet.
  user_ = memory(plain, eng, DNNL_MEMORY_NONE);
  needsReorder_ = plain != inner;
  if (needsReorder_) {
    inner_ = memory(inner, eng);  // library-allocated blocked buffer
    reorder_ = toInner ? dnnl::reorder(user_, inner_) : dnnl::reorder(inner_, user_);
  } else {
    inner_ = user_;  // same object: the primitive reads/writes the caller's buffer directly
  }
}

void LayoutBridge::bindInput(const float* ptr, dnnl::stream& strm) {
  user_.set_data_handle(const_cast<float*>(ptr));
  if (needsReorder_) reorder_.execute(strm, user_, inner_);
}

void LayoutBridge::bindOutput(float* ptr) { user_.set_data_handle(ptr); }

void LayoutBridge::flushOutput(dnnl::stream& strm) {
  if (needsReorder_) reorder_.execute(strm, inner_, user_);
}

DnnlConv::DnnlConv(const ConvSpec& s, int threads)
    : spec_(s), threads_(threads), eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {
  // oneDNN sizes its parallel decomposition from the OpenMP thread count at creation time.
  omp_set_num_threads(threads_);

  const memory::dims src = {s.N, s.C, s.H, s.W}, wei = {s.K, s.C, s.R, s.S},
                     dst = {s.N, s.K, s.P(), s.Q()}, bias = {s.K};
  const memory::dims strides = {s.strideH, s.strideW}, dil = {s.dilH - 1, s.dilW - 1},
                     padL = {s.padH, s.padW};
  // Right padding that makes oneDNN's output size match floor((H+2p-dil*(R-1)-1)/stride)+1.
  const memory::dims padR = {
      (s.P() - 1) * s.strideH + s.dilH * (s.R - 1) + 1 - s.H - s.padH,
      (s.Q() - 1) * s.strideW + s.dilW * (s.S - 1) + 1 - s.W - s.padW};

  const memory::desc srcPlain(src, dt::f32, tag::nchw), weiPlain(wei, dt::f32, tag::oihw),
      dstPlain(dst, dt::f32, tag::nchw);
  const memory::desc srcAny(src, dt::f32, tag::any), weiAny(wei, dt::f32, tag::any),
      dstAny(dst, dt::f32, tag::any);
  biasMd_ = s.bias ? memory::desc(bias, dt::f32, tag::x) : memory::desc();

  // forward_training, so the pd can serve as the hint for both backward passes.
  auto fwdDesc = s.bias ? dnnl::convolution_forward::desc(
                              dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                              srcAny, weiAny, biasMd_, dstAny, strides, dil, padL, padR)
                        : dnnl::convolution_forward::desc(
                              dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                              srcAny, weiAny, dstAny, strides, dil, padL, padR);
  dnnl::convolution_forward::primitive_desc fwdPd(fwdDesc, eng_);
  fwd_ = dnnl::convolution_forward(fwdPd);
  fwdSrc_ = LayoutBridge(srcPlain, fwdPd.src_desc(), eng_, true);
  fwdWei_ = LayoutBridge(weiPlain, fwdPd.weights_desc(), eng_, true);
  fwdDst_ = LayoutBridge(dstPlain, fwdPd.dst_desc(), eng_, false);
  if (s.bias) fwdBias_ = memory(biasMd_, eng_, DNNL_MEMORY_NONE);

  dnnl::convolution_backward_data::desc bdDesc(dnnl::algorithm::convolution_direct, srcAny, weiAny,
                                               dstAny, strides, dil, padL, padR);
  dnnl::convolution_backward_data::primitive_desc bdPd(bdDesc, eng_, fwdPd);
  bwdData_ = dnnl::convolution_backward_data(bdPd);
  bdDiffDst_ = LayoutBridge(dstPlain, bdPd.diff_dst_desc(), eng_, true);
  bdWei_ = LayoutBridge(weiPlain, bdPd.weights_desc(), eng_, true);
  bdDiffSrc_ = LayoutBridge(srcPlain, bdPd.diff_src_desc(), eng_, false);

  auto bwDesc = s.bias ? dnnl::convolution_backward_weights::desc(
                             dnnl::algorithm::convolution_direct, srcAny, weiAny, biasMd_, dstAny,
                             strides, dil, padL, padR)
                       : dnnl::convolution_backward_weights::desc(
                             dnnl::algorithm::convolution_direct, srcAny, weiAny, dstAny, strides,
                             dil, padL, padR);
  dnnl::convolution_backward_weights::primitive_desc bwPd(bwDesc, eng_, fwdPd);
  bwdWeights_ = dnnl::convolution_backward_weights(bwPd);
  bwSrc_ = LayoutBridge(srcPlain, bwPd.src_desc(), eng_, true);
  bwDiffDst_ = LayoutBridge(dstPlain, bwPd.diff_dst_desc(), eng_, true);
  bwDiffWei_ = LayoutBridge(weiPlain, bwPd.diff_weights_desc(), eng_, false);
  if (s.bias) {
    bwDiffBias_ = memory(biasMd_, eng_, DNNL_MEMORY_NONE);
    scratchBias_.resize(s.K);
  }
}

void DnnlConv::forward(const float* x, const float* w, const float* bias, float* y) {
  omp_set_num_threads(threads_);
  fwdSrc_.bindInput(x, strm_);
  fwdWei_.bindInput(w, strm_);
  fwdDst_.bindOutput(y);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, fwdSrc_.inner()},
                                          {DNNL_ARG_WEIGHTS, fwdWei_.inner()},
                                          {DNNL_ARG_DST, fwdDst_.inner()}};
  if (spec_.bias) {
    fwdBias_.set_data_handle(const_cast<float*>(bias));
    args[DNNL_ARG_BIAS] = fwdBias_;
  }
  fwd_.execute(strm_, args);
  fwdDst_.flushOutput(strm_);
  strm_.wait();
}

void DnnlConv::backwardData(const float* dy, const float* w, float* dx) {
  omp_set_num_threads(threads_);
  bdDiffDst_.bindInput(dy, strm_);
  bdWei_.bindInput(w, strm_);
  bdDiffSrc_.bindOutput(dx);
  bwdData_.execute(strm_, {{DNNL_ARG_DIFF_DST, bdDiffDst_.inner()},
                           {DNNL_ARG_WEIGHTS, bdWei_.inner()},
                           {DNNL_ARG_DIFF_SRC, bdDiffSrc_.inner()}});
  bdDiffSrc_.flushOutput(strm_);
  strm_.wait();
}

void DnnlConv::backwardWeights(const float* dy, const float* x, float* dw, float* dbias) {
  omp_set_num_threads(threads_);
  bwSrc_.bindInput(x, strm_);
  bwDiffDst_.bindInput(dy, strm_);
  bwDiffWei_.bindOutput(dw);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, bwSrc_.inner()},
                                          {DNNL_ARG_DIFF_DST, bwDiffDst_.inner()},
                                          {DNNL_ARG_DIFF_WEIGHTS, bwDiffWei_.inner()}};
  if (spec_.bias) {
    bwDiffBias_.set_data_handle(dbias ? dbias : scratchBias_.data());
    args[DNNL_ARG_DIFF_BIAS] = bwDiffBias_;
  }
  bwdWeights_.execute(strm_, args);
  bwDiffWei_.flushOutput(strm_);
  strm_.wait();
}

CompactDnnlConv::CompactDnnlConv(const ConvSpec& s, ChannelSet ko, ChannelSet ci, int threads, bool noCopies)
    : spec_(s), ko_(std::move(ko)), ci_(std::move(ci)), threads_(threads), noCopies_(noCopies) {
  const int64_t Kc = ko_.count(), Cc = ci_.count();
  if (Kc == 0 || Cc == 0) return;
  const ConvSpec cs = s.compacted(Kc, Cc);
  conv_ = std::make_unique<DnnlConv>(cs, threads);
  xc_.resize(cs.xSize());
  wc_.resize(cs.wSize());
  yc_.resize(cs.ySize());
  bc_.resize(Kc);
  if (noCopies_) {
    xg_.resize(cs.xSize());
    wg_.resize(cs.wSize());
    dyg_.resize(cs.ySize());
    bg_.resize(Kc);
  }
}

void CompactDnnlConv::forward(const float* x, const float* w, const float* bias, float* y) {
  omp_set_num_threads(threads_);
  const ConvSpec& s = spec_;
  if (empty()) {
    // No kept input channel still leaves the bias on kept outputs.
    const int64_t PQ = s.P() * s.Q();
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.K; ++k) {
        const float v = (s.bias && ko_.kept[k]) ? bias[k] : 0.0f;
        std::fill_n(y + (n * s.K + k) * PQ, PQ, v);
      }
    return;
  }
  float *xi = in(xg_, xc_), *wi = in(wg_, wc_), *bi = in(bg_, bc_);
  const bool copy = copies(0);
  if (copy) {
    gatherPlanes(x, s.N, ci_, s.H * s.W, xi);
    gatherWeights(w, ko_, ci_, s.R * s.S, wi);
    if (s.bias) gatherVector(bias, ko_, bi);
  }
  conv_->forward(xi, wi, s.bias ? bi : nullptr, yc_.data());
  if (copy) scatterPlanes(yc_.data(), s.N, ko_, s.P() * s.Q(), y);
}

void CompactDnnlConv::backwardData(const float* dy, const float* w, float* dx) {
  omp_set_num_threads(threads_);
  const ConvSpec& s = spec_;
  if (empty()) {
    std::memset(dx, 0, s.xSize() * sizeof(float));
    return;
  }
  float *dyi = in(dyg_, yc_), *wi = in(wg_, wc_);
  const bool copy = copies(1);
  if (copy) {
    gatherPlanes(dy, s.N, ko_, s.P() * s.Q(), dyi);
    gatherWeights(w, ko_, ci_, s.R * s.S, wi);
  }
  conv_->backwardData(dyi, wi, xc_.data());
  if (copy) scatterPlanes(xc_.data(), s.N, ci_, s.H * s.W, dx);
}

void CompactDnnlConv::backwardWeights(const float* dy, const float* x, float* dw, float* dbias) {
  omp_set_num_threads(threads_);
  const ConvSpec& s = spec_;
  if (empty()) {
    std::memset(dw, 0, s.wSize() * sizeof(float));
    if (dbias) {
      // dbias only depends on dy, so kept outputs still get their sums when C' is 0.
      const int64_t PQ = s.P() * s.Q();
      for (int64_t k = 0; k < s.K; ++k) {
        double acc = 0;
        if (ko_.kept[k])
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t i = 0; i < PQ; ++i) acc += dy[(n * s.K + k) * PQ + i];
        dbias[k] = (float)acc;
      }
    }
    return;
  }
  float *dyi = in(dyg_, yc_), *xi = in(xg_, xc_);
  const bool copy = copies(2);
  if (copy) {
    gatherPlanes(dy, s.N, ko_, s.P() * s.Q(), dyi);
    gatherPlanes(x, s.N, ci_, s.H * s.W, xi);
  }
  conv_->backwardWeights(dyi, xi, wc_.data(), s.bias ? bc_.data() : nullptr);
  if (!copy) return;
  scatterWeights(wc_.data(), ko_, ci_, s.R * s.S, dw);
  if (dbias) scatterVector(bc_.data(), ko_, dbias);
}

}  // namespace baselines
