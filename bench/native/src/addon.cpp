// Node-API surface of the baselines addon: validates every JS argument (TypeError/RangeError
// naming it) and forwards to the C++ cores. Exports OneDnnConv, CompactOneDnnConv,
// Im2colBlasConv, measurePeakGflops, setThreads.
#include <cblas.h>
#include <napi.h>
#include <omp.h>

#include <cmath>
#include <memory>
#include <string>

#include "im2col_blas.hpp"
#include "onednn_conv.hpp"
#include "peak.hpp"

namespace {

using baselines::ChannelSet;
using baselines::ConvSpec;

// ---- argument checking -------------------------------------------------------------------

[[noreturn]] void throwType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}
[[noreturn]] void throwRange(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

int64_t intValue(Napi::Env env, Napi::Value v, const std::string& name, int64_t min,
                 int64_t max = int64_t(1) << 40) {
  if (!v.IsNumber()) throwType(env, name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d)) throwType(env, name + " must be an integer");
  if (d < (double)min || d > (double)max)
    throwRange(env, name + " must be in [" + std::to_string(min) + ", " + std::to_string(max) +
                        "], got " + std::to_string((int64_t)d));
  return (int64_t)d;
}

int threadsArg(const Napi::CallbackInfo& info, size_t i) {
  return (int)intValue(info.Env(), info[i], "threads", 1, 1024);
}

// Native spec: {N,C,K,H,W,R,S,strideH,strideW,padH,padW,dilH,dilW,bias}.
ConvSpec specArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (!info[i].IsObject()) throwType(env, "spec must be an object");
  Napi::Object o = info[i].As<Napi::Object>();
  auto field = [&](const char* key, int64_t min) {
    return intValue(env, o.Get(key), std::string("spec.") + key, min);
  };
  ConvSpec s;
  s.N = field("N", 1);
  s.C = field("C", 1);
  s.K = field("K", 1);
  s.H = field("H", 1);
  s.W = field("W", 1);
  s.R = field("R", 1);
  s.S = field("S", 1);
  s.strideH = field("strideH", 1);
  s.strideW = field("strideW", 1);
  s.padH = field("padH", 0);
  s.padW = field("padW", 0);
  s.dilH = field("dilH", 1);
  s.dilW = field("dilW", 1);
  Napi::Value bias = o.Get("bias");
  if (!bias.IsBoolean()) throwType(env, "spec.bias must be a boolean");
  s.bias = bias.As<Napi::Boolean>().Value();
  if (s.P() < 1 || s.Q() < 1)
    throwRange(env, "spec gives an empty output (kernel larger than padded input)");
  if (s.xSize() > (int64_t(1) << 32) || s.wSize() > (int64_t(1) << 32) ||
      s.ySize() > (int64_t(1) << 32))
    throwRange(env, "spec tensors are too large");
  return s;
}

// A Float32Array of exactly `len` elements; null/undefined allowed when `nullable`.
float* f32Arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t len,
              bool nullable = false) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throwType(env, std::string(name) + " must be a Float32Array" + (nullable ? " or null" : ""));
  auto arr = v.As<Napi::Float32Array>();
  if ((int64_t)arr.ElementLength() != len)
    throwRange(env, std::string(name) + " must have length " + std::to_string(len) + ", got " +
                        std::to_string(arr.ElementLength()));
  return arr.Data();
}

// Kept-channel indices: Int32Array of distinct values in [0, full).
ChannelSet channelArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t full) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throwType(env, std::string(name) + " must be an Int32Array");
  auto arr = v.As<Napi::Int32Array>();
  ChannelSet set;
  set.kept.assign(full, 0);
  for (size_t j = 0; j < arr.ElementLength(); ++j) {
    const int32_t c = arr[j];
    if (c < 0 || c >= full)
      throwRange(env, std::string(name) + "[" + std::to_string(j) + "] = " + std::to_string(c) +
                          " is outside [0, " + std::to_string(full) + ")");
    if (set.kept[c])
      throwRange(env, std::string(name) + " contains " + std::to_string(c) + " twice");
    set.kept[c] = 1;
    set.idx.push_back(c);
  }
  return set;
}

void checkArgCount(const Napi::CallbackInfo& info, size_t n, const char* what) {
  if (info.Length() < n)
    throwType(info.Env(), std::string(what) + " expects " + std::to_string(n) + " arguments");
}

// Library failures (oneDNN errors, allocation) become JS Errors instead of aborting node.
template <typename F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const dnnl::error& e) {
    throw Napi::Error::New(env, std::string("oneDNN error: ") + e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("baselines: ") + e.what());
  }
}

// ---- the three convolution classes share one JS shape -------------------------------------

// Wraps a core with forward/backwardData/backwardWeights taking full-size plain arrays.
template <typename Self, typename Core>
class ConvWrap : public Napi::ObjectWrap<Self> {
 public:
  static Napi::Function Define(Napi::Env env, const char* name) {
    return Napi::ObjectWrap<Self>::DefineClass(
        env, name,
        {Napi::ObjectWrap<Self>::InstanceMethod("forward", &ConvWrap::Forward),
         Napi::ObjectWrap<Self>::InstanceMethod("backwardData", &ConvWrap::BackwardData),
         Napi::ObjectWrap<Self>::InstanceMethod("backwardWeights", &ConvWrap::BackwardWeights)});
  }

  explicit ConvWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Self>(info) {}

 protected:
  ConvSpec spec_{};
  std::unique_ptr<Core> core_;

 private:
  // forward(x, w, bias|null, y)
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    checkArgCount(info, 4, "forward(x, w, bias, y)");
    const float* x = f32Arg(info, 0, "x", spec_.xSize());
    const float* w = f32Arg(info, 1, "w", spec_.wSize());
    const float* b = biasArg(info, 2, "bias", true);
    float* y = f32Arg(info, 3, "y", spec_.ySize());
    guarded(info.Env(), [&] { core_->forward(x, w, b, y); });
    return info.Env().Undefined();
  }

  // backwardData(dy, w, dx)
  Napi::Value BackwardData(const Napi::CallbackInfo& info) {
    checkArgCount(info, 3, "backwardData(dy, w, dx)");
    const float* dy = f32Arg(info, 0, "dy", spec_.ySize());
    const float* w = f32Arg(info, 1, "w", spec_.wSize());
    float* dx = f32Arg(info, 2, "dx", spec_.xSize());
    guarded(info.Env(), [&] { core_->backwardData(dy, w, dx); });
    return info.Env().Undefined();
  }

  // backwardWeights(dy, x, dw, dbias|null)
  Napi::Value BackwardWeights(const Napi::CallbackInfo& info) {
    checkArgCount(info, 3, "backwardWeights(dy, x, dw, dbias)");
    const float* dy = f32Arg(info, 0, "dy", spec_.ySize());
    const float* x = f32Arg(info, 1, "x", spec_.xSize());
    float* dw = f32Arg(info, 2, "dw", spec_.wSize());
    float* db = biasArg(info, 3, "dbias", false);
    guarded(info.Env(), [&] { core_->backwardWeights(dy, x, dw, db); });
    return info.Env().Undefined();
  }

  // With spec.bias the forward bias is required and dbias optional; without it both must be null.
  float* biasArg(const Napi::CallbackInfo& info, size_t i, const char* name, bool required) {
    if (!spec_.bias) {
      if (!(info[i].IsNull() || info[i].IsUndefined()))
        throwType(info.Env(), std::string(name) + " must be null because spec.bias is false");
      return nullptr;
    }
    return f32Arg(info, i, name, spec_.K, !required);
  }
};

class OneDnnConvWrap : public ConvWrap<OneDnnConvWrap, baselines::DnnlConv> {
 public:
  // new OneDnnConv(spec, threads)
  explicit OneDnnConvWrap(const Napi::CallbackInfo& info) : ConvWrap(info) {
    checkArgCount(info, 2, "OneDnnConv(spec, threads)");
    spec_ = specArg(info, 0);
    const int threads = threadsArg(info, 1);
    core_ = guarded(info.Env(), [&] { return std::make_unique<baselines::DnnlConv>(spec_, threads); });
  }
};

class CompactOneDnnConvWrap : public ConvWrap<CompactOneDnnConvWrap, baselines::CompactDnnlConv> {
 public:
  // new CompactOneDnnConv(spec, ko, ci, threads, noCopies = false)
  explicit CompactOneDnnConvWrap(const Napi::CallbackInfo& info) : ConvWrap(info) {
    checkArgCount(info, 4, "CompactOneDnnConv(spec, ko, ci, threads, noCopies?)");
    spec_ = specArg(info, 0);
    ChannelSet ko = channelArg(info, 1, "ko", spec_.K);
    ChannelSet ci = channelArg(info, 2, "ci", spec_.C);
    const int threads = threadsArg(info, 3);
    const bool noCopies = info.Length() > 4 && info[4].ToBoolean();
    core_ = guarded(info.Env(), [&] {
      return std::make_unique<baselines::CompactDnnlConv>(spec_, std::move(ko), std::move(ci),
                                                           threads, noCopies);
    });
  }
};

class Im2colBlasConvWrap : public ConvWrap<Im2colBlasConvWrap, baselines::Im2colBlasConv> {
 public:
  // new Im2colBlasConv(spec, ko, ci, threads)
  explicit Im2colBlasConvWrap(const Napi::CallbackInfo& info) : ConvWrap(info) {
    checkArgCount(info, 4, "Im2colBlasConv(spec, ko, ci, threads)");
    spec_ = specArg(info, 0);
    ChannelSet ko = channelArg(info, 1, "ko", spec_.K);
    ChannelSet ci = channelArg(info, 2, "ci", spec_.C);
    const int threads = threadsArg(info, 3);
    core_ = guarded(info.Env(), [&] {
      return std::make_unique<baselines::Im2colBlasConv>(spec_, std::move(ko), std::move(ci),
                                                          threads);
    });
  }
};

// ---- free functions ---------------------------------------------------------------------

// measurePeakGflops(threads, seconds = 1)
Napi::Value MeasurePeakGflops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgCount(info, 1, "measurePeakGflops(threads, seconds?)");
  const int threads = threadsArg(info, 0);
  double seconds = 1.0;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsNumber()) throwType(env, "seconds must be a number");
    seconds = info[1].As<Napi::Number>().DoubleValue();
    if (!(seconds > 0 && seconds <= 60)) throwRange(env, "seconds must be in (0, 60]");
  }
  return Napi::Number::New(env, guarded(env, [&] { return baselines::measurePeakGflops(threads, seconds); }));
}

// setThreads(n): default thread count for OpenMP (oneDNN, copies) and OpenBLAS.
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  checkArgCount(info, 1, "setThreads(n)");
  const int n = (int)intValue(info.Env(), info[0], "n", 1, 1024);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("OneDnnConv", OneDnnConvWrap::Define(env, "OneDnnConv"));
  exports.Set("CompactOneDnnConv", CompactOneDnnConvWrap::Define(env, "CompactOneDnnConv"));
  exports.Set("Im2colBlasConv", Im2colBlasConvWrap::Define(env, "Im2colBlasConv"));
  exports.Set("measurePeakGflops", Napi::Function::New(env, MeasurePeakGflops, "measurePeakGflops"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  return exports;
}

}  // namespace

NODE_API_MODULE(baselines, Init)
