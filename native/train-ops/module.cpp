// Node binding of the training ops. Every size is checked here, so the loops in ops.cpp can trust
// their arguments: (TS callers validate first; this is the second line).
#include <napi.h>

#include <string>

#include "ops.hpp"

using namespace maskacc_ops;

namespace {

float* floats(const Napi::CallbackInfo& info, size_t i, long n, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + ": expected a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  if ((long)a.ElementLength() != n)
    throw Napi::RangeError::New(info.Env(), std::string(name) + ": expected length " + std::to_string(n) + ", got " +
                                                std::to_string(a.ElementLength()));
  return a.Data();
}

uint8_t* bytes(const Napi::CallbackInfo& info, size_t i, long n, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      (long)v.As<Napi::Uint8Array>().ElementLength() != n)
    throw Napi::TypeError::New(info.Env(), std::string(name) + ": expected a Uint8Array of length " + std::to_string(n));
  return v.As<Napi::Uint8Array>().Data();
}

int integer(const Napi::CallbackInfo& info, size_t i, const char* name, int min) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + ": expected a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= 2147483647.0 && v == (double)(long)v))
    throw Napi::RangeError::New(info.Env(), std::string(name) + ": expected an integer >= " + std::to_string(min));
  return (int)v;
}

// (x, gamma, beta, keep: Uint8Array, N, C, HW, eps, relu, threads) -> BatchNormArgs; argument 10 on.
BatchNormArgs batchNormArgs(const Napi::CallbackInfo& info) {
  BatchNormArgs a{};
  a.N = integer(info, 4, "N", 1);
  a.C = integer(info, 5, "C", 1);
  a.HW = integer(info, 6, "HW", 1);
  a.x = floats(info, 0, (long)a.N * a.C * a.HW, "x");
  a.gamma = floats(info, 1, a.C, "gamma");
  a.beta = floats(info, 2, a.C, "beta");
  a.keep = bytes(info, 3, a.C, "keep");
  a.eps = info[7].As<Napi::Number>().FloatValue();
  a.relu = info[8].ToBoolean();
  a.threads = integer(info, 9, "threads", 1);
  return a;
}

// batchNormForward(x, gamma, beta, keep, N, C, HW, eps, relu, threads, training, mean, invstd, y)
Napi::Value BatchNormForward(const Napi::CallbackInfo& info) {
  const BatchNormArgs a = batchNormArgs(info);
  const bool training = info[10].ToBoolean();
  float* mean = floats(info, 11, a.C, "mean");
  float* invstd = floats(info, 12, a.C, "invstd");
  float* y = floats(info, 13, (long)a.N * a.C * a.HW, "y");
  batchNormReluForward(a, training, mean, invstd, y);
  return info.Env().Undefined();
}

// batchNormBackward(x, gamma, beta, keep, N, C, HW, eps, relu, threads, mean, invstd, y, dy, dx, dgamma, dbeta)
Napi::Value BatchNormBackward(const Napi::CallbackInfo& info) {
  const BatchNormArgs a = batchNormArgs(info);
  const long n = (long)a.N * a.C * a.HW;
  batchNormReluBackward(a, floats(info, 10, a.C, "mean"), floats(info, 11, a.C, "invstd"), floats(info, 12, n, "y"),
                        floats(info, 13, n, "dy"), floats(info, 14, n, "dx"), floats(info, 15, a.C, "dgamma"),
                        floats(info, 16, a.C, "dbeta"));
  return info.Env().Undefined();
}

// maxPool2dForward(N, C, H, W, kh, kw, sh, sw, padTop, padLeft, P, Q, channelsLast, threads, x, y)
// and maxPool2dBackward(..., threads, x, dy, dx): every window must hold at least one input tap.
Pool2dArgs pool2dArgs(const Napi::CallbackInfo& info) {
  Pool2dArgs a{};
  a.N = integer(info, 0, "N", 1);
  a.C = integer(info, 1, "C", 1);
  a.H = integer(info, 2, "H", 1);
  a.W = integer(info, 3, "W", 1);
  a.kh = integer(info, 4, "kh", 1);
  a.kw = integer(info, 5, "kw", 1);
  a.sh = integer(info, 6, "sh", 1);
  a.sw = integer(info, 7, "sw", 1);
  a.padTop = integer(info, 8, "padTop", 0);
  a.padLeft = integer(info, 9, "padLeft", 0);
  a.P = integer(info, 10, "P", 1);
  a.Q = integer(info, 11, "Q", 1);
  a.channelsLast = info[12].ToBoolean();
  a.threads = integer(info, 13, "threads", 1);
  if (a.padTop >= a.kh || a.padLeft >= a.kw || (long)(a.P - 1) * a.sh - a.padTop >= a.H ||
      (long)(a.Q - 1) * a.sw - a.padLeft >= a.W)
    throw Napi::RangeError::New(info.Env(), "P, Q, padTop, padLeft: a window holds no input element");
  return a;
}

Napi::Value MaxPool2dForward(const Napi::CallbackInfo& info) {
  const Pool2dArgs a = pool2dArgs(info);
  const long in = (long)a.N * a.C * a.H * a.W, out = (long)a.N * a.C * a.P * a.Q;
  uint8_t* argmax = nullptr;
  if (info.Length() > 16 && !info[16].IsUndefined()) {
    if (!a.channelsLast || a.kh * a.kw >= kNoTap)
      throw Napi::RangeError::New(info.Env(), "argmax: only channels-last windows of fewer than 255 taps");
    argmax = bytes(info, 16, out, "argmax");
  }
  maxPool2dForward(a, floats(info, 14, in, "x"), floats(info, 15, out, "y"), argmax);
  return info.Env().Undefined();
}

Napi::Value MaxPool2dBackward(const Napi::CallbackInfo& info) {
  const Pool2dArgs a = pool2dArgs(info);
  const long in = (long)a.N * a.C * a.H * a.W, out = (long)a.N * a.C * a.P * a.Q;
  maxPool2dBackward(a, floats(info, 14, in, "x"), floats(info, 15, out, "dy"), floats(info, 16, in, "dx"));
  return info.Env().Undefined();
}

// maxPool2dBackwardArgmax(N, C, H, W, kh, kw, sh, sw, padTop, padLeft, P, Q, channelsLast, threads, argmax, dy, dx)
Napi::Value MaxPool2dBackwardArgmax(const Napi::CallbackInfo& info) {
  const Pool2dArgs a = pool2dArgs(info);
  if (!a.channelsLast || a.kh * a.kw >= kNoTap)
    throw Napi::RangeError::New(info.Env(), "argmax: only channels-last windows of fewer than 255 taps");
  const long in = (long)a.N * a.C * a.H * a.W, out = (long)a.N * a.C * a.P * a.Q;
  maxPool2dBackwardArgmax(a, bytes(info, 14, out, "argmax"), floats(info, 15, out, "dy"), floats(info, 16, in, "dx"));
  return info.Env().Undefined();
}

long floatLength(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + ": expected a Float32Array");
  return (long)info[i].As<Napi::Float32Array>().ElementLength();
}

// reluForward(threads, x, y)
Napi::Value ReluForward(const Napi::CallbackInfo& info) {
  const long n = floatLength(info, 1, "x");
  reluForward(n, integer(info, 0, "threads", 1), floats(info, 1, n, "x"), floats(info, 2, n, "y"));
  return info.Env().Undefined();
}

// reluBackward(threads, y, dy, dx)
Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  const long n = floatLength(info, 1, "y");
  reluBackward(n, integer(info, 0, "threads", 1), floats(info, 1, n, "y"), floats(info, 2, n, "dy"),
               floats(info, 3, n, "dx"));
  return info.Env().Undefined();
}

// transposeImages(N, A, B, threads, src, dst): per image [A][B] -> [B][A].
Napi::Value TransposeImages(const Napi::CallbackInfo& info) {
  const int N = integer(info, 0, "N", 1), A = integer(info, 1, "A", 1), B = integer(info, 2, "B", 1);
  const long n = (long)N * A * B;
  transposeImages(N, A, B, integer(info, 3, "threads", 1), floats(info, 4, n, "src"), floats(info, 5, n, "dst"));
  return info.Env().Undefined();
}

long keptCount(const uint8_t* keep, int C) {
  long kept = 0;
  for (int c = 0; c < C; ++c) kept += keep[c] != 0;
  return kept;
}

// channelsToPlanes(N, HW, C, keep: Uint8Array, threads, src [N][HW][kept], dst [N][C][HW])
Napi::Value ChannelsToPlanes(const Napi::CallbackInfo& info) {
  const int N = integer(info, 0, "N", 1), HW = integer(info, 1, "HW", 1), C = integer(info, 2, "C", 1);
  const uint8_t* keep = bytes(info, 3, C, "keep");
  const long kept = keptCount(keep, C);
  channelsToPlanes(N, HW, C, keep, integer(info, 4, "threads", 1), floats(info, 5, N * kept * HW, "src"),
                   floats(info, 6, (long)N * C * HW, "dst"));
  return info.Env().Undefined();
}

// planesToChannels(N, C, HW, keep: Uint8Array, threads, src [N][C][HW], dst [N][HW][kept])
Napi::Value PlanesToChannels(const Napi::CallbackInfo& info) {
  const int N = integer(info, 0, "N", 1), C = integer(info, 1, "C", 1), HW = integer(info, 2, "HW", 1);
  const uint8_t* keep = bytes(info, 3, C, "keep");
  const long kept = keptCount(keep, C);
  planesToChannels(N, C, HW, keep, integer(info, 4, "threads", 1), floats(info, 5, (long)N * C * HW, "src"),
                   floats(info, 6, N * kept * HW, "dst"));
  return info.Env().Undefined();
}

// prunedPlanesZero(N, C, HW, keep: Uint8Array, x, threads) -> boolean
Napi::Value PrunedPlanesZero(const Napi::CallbackInfo& info) {
  const int N = integer(info, 0, "N", 1), C = integer(info, 1, "C", 1), HW = integer(info, 2, "HW", 1);
  const uint8_t* keep = bytes(info, 3, C, "keep");
  const float* x = floats(info, 4, (long)N * C * HW, "x");
  return Napi::Boolean::New(info.Env(), prunedPlanesZero(N, C, HW, keep, x,
                                                          integer(info, 5, "threads", 1)));
}

// (N, F, J, threads) -> LinearArgs.
LinearArgs linearArgs(const Napi::CallbackInfo& info) {
  return LinearArgs{integer(info, 0, "N", 1), integer(info, 1, "F", 1), integer(info, 2, "J", 1), integer(info, 3, "threads", 1)};
}

// linearForward(N, F, J, threads, x, w, b, y)
Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  const LinearArgs a = linearArgs(info);
  linearForward(a, floats(info, 4, (long)a.N * a.F, "x"), floats(info, 5, (long)a.F * a.J, "w"), floats(info, 6, a.J, "b"),
                floats(info, 7, (long)a.N * a.J, "y"));
  return info.Env().Undefined();
}

// linearBackward(N, F, J, threads, x, w, dy, dx, dw, db)
Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  const LinearArgs a = linearArgs(info);
  linearBackward(a, floats(info, 4, (long)a.N * a.F, "x"), floats(info, 5, (long)a.F * a.J, "w"), floats(info, 6, (long)a.N * a.J, "dy"),
                 floats(info, 7, (long)a.N * a.F, "dx"), floats(info, 8, (long)a.F * a.J, "dw"), floats(info, 9, a.J, "db"));
  return info.Env().Undefined();
}

// momentumStep(lr, momentum, w, g, accum, wOut): all of w's length.
Napi::Value MomentumStep(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "lr, momentum: expected numbers");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), "w: expected a Float32Array");
  const long n = (long)info[2].As<Napi::Float32Array>().ElementLength();
  momentumStep(n, info[0].As<Napi::Number>().FloatValue(), info[1].As<Napi::Number>().FloatValue(), floats(info, 2, n, "w"),
               floats(info, 3, n, "g"), floats(info, 4, n, "accum"), floats(info, 5, n, "wOut"));
  return info.Env().Undefined();
}

}  // namespace

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormForward", Napi::Function::New(env, BatchNormForward));
  exports.Set("batchNormBackward", Napi::Function::New(env, BatchNormBackward));
  exports.Set("maxPool2dForward", Napi::Function::New(env, MaxPool2dForward));
  exports.Set("maxPool2dBackward", Napi::Function::New(env, MaxPool2dBackward));
  exports.Set("maxPool2dBackwardArgmax", Napi::Function::New(env, MaxPool2dBackwardArgmax));
  exports.Set("reluForward", Napi::Function::New(env, ReluForward));
  exports.Set("reluBackward", Napi::Function::New(env, ReluBackward));
  exports.Set("transposeImages", Napi::Function::New(env, TransposeImages));
  exports.Set("channelsToPlanes", Napi::Function::New(env, ChannelsToPlanes));
  exports.Set("planesToChannels", Napi::Function::New(env, PlanesToChannels));
  exports.Set("prunedPlanesZero", Napi::Function::New(env, PrunedPlanesZero));
  exports.Set("linearForward", Napi::Function::New(env, LinearForward));
  exports.Set("linearBackward", Napi::Function::New(env, LinearBackward));
  exports.Set("momentumStep", Napi::Function::New(env, MomentumStep));
  return exports;
}

NODE_API_MODULE(maskacc_train_ops, Init)
