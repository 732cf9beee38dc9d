// maskacc's Node binding of a kernel addon: the same source for every addon. It finds the layers
// through the table module.cpp defines (layer-abi.hpp), so the JIT compiles it once per compiler and
// flags and links that build into every addon; `maskacc build` compiles it with the model.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "layer-abi.hpp"

// One validated call of a pass: raw pointers into the caller's arrays plus the index lists, for n images.
struct Call {
  enum Pass { kForward, kBackwardData, kBackwardWeights } pass;
  int n = 0;
  const float *a = nullptr, *b = nullptr, *c = nullptr;  // inputs (and bias) in argument order
  float *out = nullptr, *out2 = nullptr;                  // outputs (dw and dbias for weights)
  const int32_t *i0 = nullptr, *i1 = nullptr;
  int n0 = 0, n1 = 0;
};

// new Kernel(layerName, threads): one kernel object with its own packing workspace. Arguments are
// checked again here (the TS runtime checks first) so native code never runs on bad input.
// Sync methods run on the calling thread; the *Async ones on the libuv pool and return Promises.
class Kernel : public Napi::ObjectWrap<Kernel> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("Kernel", DefineClass(env, "Kernel",
                                      {InstanceMethod("forward", &Kernel::Sync<Call::kForward>),
                                       InstanceMethod("backwardData", &Kernel::Sync<Call::kBackwardData>),
                                       InstanceMethod("backwardWeights", &Kernel::Sync<Call::kBackwardWeights>),
                                       InstanceMethod("forwardAsync", &Kernel::Async<Call::kForward>),
                                       InstanceMethod("backwardDataAsync", &Kernel::Async<Call::kBackwardData>),
                                       InstanceMethod("backwardWeightsAsync", &Kernel::Async<Call::kBackwardWeights>),
                                       InstanceMethod("dispose", &Kernel::Dispose)}));
  }

  explicit Kernel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Kernel>(info) {
    const std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    for (int i = 0; i < maskacc::ADDON_LAYER_COUNT; ++i)
      if (name == maskacc::ADDON_LAYERS[i]->name) layer_ = maskacc::ADDON_LAYERS[i];
    if (!layer_) throw Napi::Error::New(info.Env(), "no layer kernel named '" + name + "' in this addon");
    threads_ = info[1].IsNumber() ? std::max(1, info[1].As<Napi::Number>().Int32Value()) : 1;
    ws_ = layer_->createWorkspace();
  }
  ~Kernel() override { release(); }

 private:
  const maskacc::LayerKernel* layer_ = nullptr;
  void* ws_ = nullptr;
  int threads_ = 1;
  std::atomic<bool> busy_{false};

  void release() {
    if (ws_) layer_->destroyWorkspace(ws_);
    ws_ = nullptr;
  }
  // One call at a time per kernel object: its packing buffers are shared between calls.
  void acquire(Napi::Env env) {
    if (!ws_) throw Napi::Error::New(env, "kernel was disposed");
    if (busy_.exchange(true)) throw Napi::Error::New(env, "kernel is busy: one call at a time per MaskedConv");
  }

  void run(const Call& k) {
    const maskacc::LayerKernel& l = *layer_;
    switch (k.pass) {
      case Call::kForward: l.forward(ws_, threads_, k.n, k.a, k.b, k.c, k.out, k.i0, k.n0, k.i1, k.n1); break;
      case Call::kBackwardData: l.backwardData(ws_, threads_, k.n, k.a, k.b, k.out, k.i0, k.n0, k.i1, k.n1); break;
      case Call::kBackwardWeights:
        l.backwardWeights(ws_, threads_, k.n, k.a, k.b, k.out, k.out2, k.i0, k.n0, k.i1, k.n1);
        break;
    }
  }

  static float* floats(const Napi::CallbackInfo& info, size_t i, long n, const char* name, bool optional = false) {
    Napi::Value v = info[i];
    if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(info.Env(), std::string(name) + ": expected a Float32Array");
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    if ((long)a.ElementLength() != n)
      throw Napi::RangeError::New(info.Env(), std::string(name) + ": expected length " + std::to_string(n) + ", got " +
                                                  std::to_string(a.ElementLength()));
    return a.Data();
  }
  // The call's image count from its first tensor: a whole number of images, 1..N.
  static int images(const Napi::CallbackInfo& info, long image, int most, const char* name) {
    Napi::Value v = info[0];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(info.Env(), std::string(name) + ": expected a Float32Array");
    const long len = (long)v.As<Napi::TypedArray>().ElementLength();
    if (len == 0 || len % image != 0 || len / image > most)
      throw Napi::RangeError::New(info.Env(), std::string(name) + ": expected 1 to " + std::to_string(most) +
                                                  " images of " + std::to_string(image) + " floats, got length " +
                                                  std::to_string(len));
    return (int)(len / image);
  }
  static const int32_t* indices(const Napi::CallbackInfo& info, size_t i, int limit, const char* name, int& count) {
    Napi::Value v = info[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(info.Env(), std::string(name) + ": expected an Int32Array");
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    count = (int)a.ElementLength();
    for (int k = 0; k < count; ++k)
      if (a[k] < 0 || a[k] >= limit || (k > 0 && a[k] <= a[k - 1]))
        throw Napi::RangeError::New(info.Env(), std::string(name) + ": expected increasing indices below " + std::to_string(limit));
    return a.Data();
  }

  // forward(x, w, bias|null, y, ko, ci); backwardData(dy, w, dx, ko, ci);
  // backwardWeights(dy, x, dw, dbias|null, rows, ci)
  Call parse(const Napi::CallbackInfo& info, Call::Pass pass) const {
    const maskacc::LayerKernel& l = *layer_;
    Call k{pass};
    switch (pass) {
      case Call::kForward:
        k.n = images(info, l.xImage, l.N, "x");
        k.a = floats(info, 0, k.n * l.xImage, "x");
        k.b = floats(info, 1, l.wSize, "w");
        k.c = floats(info, 2, l.K, "bias", true);
        k.out = floats(info, 3, k.n * l.yImage, "y");
        k.i0 = indices(info, 4, l.K, "ko", k.n0);
        k.i1 = indices(info, 5, l.C, "ci", k.n1);
        break;
      case Call::kBackwardData:
        k.n = images(info, l.yImage, l.N, "dy");
        k.a = floats(info, 0, k.n * l.yImage, "dy");
        k.b = floats(info, 1, l.wSize, "w");
        k.out = floats(info, 2, k.n * l.xImage, "dx");
        k.i0 = indices(info, 3, l.K, "ko", k.n0);
        k.i1 = indices(info, 4, l.C, "ci", k.n1);
        break;
      case Call::kBackwardWeights:
        k.n = images(info, l.yImage, l.N, "dy");
        k.a = floats(info, 0, k.n * l.yImage, "dy");
        k.b = floats(info, 1, k.n * l.xImage, "x");
        k.out = floats(info, 2, l.wSize, "dw");
        k.out2 = floats(info, 3, l.K, "dbias", true);
        k.i0 = indices(info, 4, l.K, "rows", k.n0);
        k.i1 = indices(info, 5, l.C, "ci", k.n1);
        break;
    }
    return k;
  }

  template <Call::Pass P>
  Napi::Value Sync(const Napi::CallbackInfo& info) {
    const Call k = parse(info, P);
    acquire(info.Env());
    try {
      run(k);
    } catch (...) {
      busy_.store(false);
      throw;
    }
    busy_.store(false);
    return info.Env().Undefined();
  }

  // Runs one call on the libuv pool; holds references to the kernel object and every argument so
  // nothing it reads or writes is collected before it settles.
  class Worker : public Napi::AsyncWorker {
   public:
    Worker(Napi::Env env, Kernel* kernel, const Call& k, const Napi::CallbackInfo& info)
        : Napi::AsyncWorker(env, "maskacc.kernel"), kernel_(kernel), call_(k), deferred_(Napi::Promise::Deferred::New(env)) {
      self_ = Napi::Persistent(info.This().As<Napi::Object>());
      for (size_t i = 0; i < info.Length(); ++i)
        if (info[i].IsObject()) args_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    }
    Napi::Promise promise() const { return deferred_.Promise(); }
    void Execute() override {
      try {
        kernel_->run(call_);
      } catch (const std::exception& e) {
        SetError(e.what());
      }
    }
    void OnOK() override {
      kernel_->busy_.store(false);
      deferred_.Resolve(Env().Undefined());
    }
    void OnError(const Napi::Error& e) override {
      kernel_->busy_.store(false);
      deferred_.Reject(e.Value());
    }

   private:
    Kernel* kernel_;
    Call call_;
    Napi::Promise::Deferred deferred_;
    Napi::ObjectReference self_;
    std::vector<Napi::ObjectReference> args_;
  };

  template <Call::Pass P>
  Napi::Value Async(const Napi::CallbackInfo& info) {
    const Call k = parse(info, P);
    acquire(info.Env());
    Worker* w = new Worker(info.Env(), this, k, info);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  // Frees the packing workspace now instead of at garbage collection; later calls throw.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_.load()) throw Napi::Error::New(info.Env(), "kernel is busy: dispose after pending calls settle");
    release();
    return info.Env().Undefined();
  }
};

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Kernel::Init(env, exports);
  exports.Set("key", Napi::String::New(env, maskacc::ADDON_KEY));
  return exports;
}

NODE_API_MODULE(maskacc_addon, Init)
