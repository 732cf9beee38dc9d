// maskacc runtime addon: the process-wide pool of output arrays. Every output maskacc allocates
// (kernel outputs the caller omitted, the TF.js adapter's tensors) is a Float32Array over a block
// from here: 64-byte aligned, blocks of 2 MiB and more mmap'ed 2 MiB-aligned and advised for
// transparent huge pages (MADV_HUGEPAGE; MADV_NOHUGEPAGE when huge pages are turned off), so a
// fresh 50 MB output faults in ~25 huge pages instead of ~12,500 small ones.
//
// A block returns to the pool only after V8 collected the ArrayBuffer over it: nothing handed
// out is reused while JavaScript can still reach it. Two ways to learn of that collection:
//  - leased (take(n, true), when pool.ts runs collections itself): the buffer's backing store has
//    no deleter, so V8 does not count it as external memory, and a weak handle on the buffer gives
//    the block back from inside the collection that found it dead (young-generation ones
//    included). The buffer gets a detach key nobody has, so it cannot be transferred away from
//    the object whose collection returns it. Blocks still leased when a worker's environment ends
//    come back then (no JavaScript runs there any more).
//  - counted (take(n, false)): V8 owns the backing store, counts it as external memory (a full
//    collection every ~64 MB), and its deleter returns the block, possibly on a background thread.
// Both are made through the V8 API, not N-API: Node defers N-API finalizers to a later event-loop
// turn, so a synchronous loop `y = conv.forward(x, w)` would never get a block back.
//
// Free blocks are kept per size class up to a byte bound (maxKeptBytes). A block coming back when
// the bound is reached makes room by releasing free blocks of the size classes used longest ago
// (a model's other layer sizes, a previous model's): dropping the returning block instead left
// the pool full of sizes nobody asked for, and every output of the loop now running was fresh
// memory (the obvious loop after a ResNet-50 step: 2.5x slower than with reused outputs). A block
// that does not fit even then is unmapped; trim() releases every free block (the last kernel's dispose()).
//
// A take that finds no free block of its size class (2 MiB and up) recycles free blocks of other
// classes instead of mapping fresh memory: first touch is the slow part of a fresh block (51 MB in
// 45-110 ms on this kind of VM once the host backs new guest memory lazily). A larger block is
// split (its tail stays in the pool); else smaller blocks are moved side by side into one range
// (mremap moves their pages, huge ones whole), and only what they leave uncovered is fresh.
#include <dlfcn.h>
#include <napi.h>
#include <v8.h>
#include <sys/mman.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <unordered_set>
#include <vector>

namespace {

constexpr size_t kHuge = size_t(2) << 20;

struct FreeList {
  std::vector<void*> blocks;
  uint64_t lastUse = 0;  // Pool::clock at the last take or return of this size class
};

struct Pool {
  std::mutex mu;
  std::map<size_t, FreeList> free;  // size class (bytes) -> free blocks
  uint64_t clock = 0;
  size_t keptBytes = 0, liveBytes = 0, maxKeptBytes = size_t(1) << 30;
  bool hugePages = true, poison = false;
  double hits = 0, misses = 0, recycled = 0, dropped = 0;
};

// Never destroyed: V8 may free backing stores while the process exits.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

// Size classes: multiples of 2 MiB from 2 MiB on (the huge-page size), else 4 classes per power
// of two (at most 25% slack), multiples of 64 bytes.
size_t sizeClass(size_t bytes) {
  if (bytes <= 64) return 64;
  if (bytes >= kHuge) return (bytes + kHuge - 1) / kHuge * kHuge;
  size_t p = 64;
  while (p < bytes) p <<= 1;
  const size_t step = p / 8 > 64 ? p / 8 : 64;
  return (bytes + step - 1) / step * step;
}

void rawFree(void* p, size_t cls) {
  if (cls < kHuge) std::free(p);
  else munmap(p, cls);
}

using Blocks = std::vector<std::pair<void*, size_t>>;

// One block of `cls` bytes made of `pieces` (free blocks of huge-page classes, together at most cls
// bytes), their pages moved side by side into a 2 MiB-aligned range reserved first (mremap alone
// may place a block at any page boundary, where its huge pages would split into small ones); the
// rest of the range is fresh memory. A piece that is itself made of pieces spans several mappings,
// which mremap moves one at a time: such a piece moves in 2 MiB steps (its seams lie on them); what
// the system refuses to move is unmapped instead. nullptr if not even the range can be had (the
// pieces are then unmapped).
void* assembleBlock(const Blocks& pieces, size_t cls, bool huge) {
  const auto move = [](char* from, size_t size, char* to) -> size_t {  // bytes moved to `to`
    if (mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED) return size;
    for (size_t off = 0; off < size; off += kHuge)
      if (mremap(from + off, kHuge, kHuge, MREMAP_MAYMOVE | MREMAP_FIXED, to + off) == MAP_FAILED) {
        munmap(from + off, size - off);
        return off;
      }
    return size;
  };
  const size_t len = cls + kHuge;
  char* r = static_cast<char*>(mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (r == MAP_FAILED) {
    for (const auto& [p, size] : pieces) rawFree(p, size);
    return nullptr;
  }
  char* a = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(r) + kHuge - 1) & ~(uintptr_t)(kHuge - 1));
  size_t filled = 0;
  for (const auto& [p, size] : pieces) filled += move(static_cast<char*>(p), size, a + filled);
  if (filled < cls && mmap(a + filled, cls - filled, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                           -1, 0) == MAP_FAILED) {
    munmap(r, len);  // the pieces moved in go with it
    return nullptr;
  }
  if (a > r) munmap(r, a - r);
  if (r + len > a + cls) munmap(a + cls, (r + len) - (a + cls));
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
  madvise(a, cls, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);  // EINVAL where THP is not offered: harmless
#endif
  return a;
}

// A fresh block: heap memory under 2 MiB, else a 2 MiB-aligned mapping advised for huge pages.
void* rawAlloc(size_t cls, bool huge) {
  if (cls < kHuge) return std::aligned_alloc(64, cls);
  return assembleBlock({}, cls, huge);
}

// Take free blocks of the least recently used classes other than `keep` out of the pool until
// `need` more bytes fit under the bound; the caller releases them after unlocking.
void evictLocked(Pool& pl, size_t need, size_t keep, Blocks& out) {
  while (pl.keptBytes + need > pl.maxKeptBytes) {
    auto oldest = pl.free.end();
    for (auto it = pl.free.begin(); it != pl.free.end(); ++it)
      if (it->first != keep && !it->second.blocks.empty() &&
          (oldest == pl.free.end() || it->second.lastUse < oldest->second.lastUse))
        oldest = it;
    if (oldest == pl.free.end()) return;
    out.emplace_back(oldest->second.blocks.back(), oldest->first);
    oldest->second.blocks.pop_back();
    pl.keptBytes -= oldest->first;
  }
}

// For a take of huge-page class `cls` that found no free block of its own: free blocks of other
// classes out of the pool. A larger one if there is one (of the least recently used such class),
// split here: its head serves the take, its tail stays free as a block of the difference. Else
// smaller ones, least recently used class first, while they fit in cls together. Empty: none.
Blocks recycleLocked(Pool& pl, size_t cls) {
  const auto oldest = [&](size_t lo, size_t hi) {  // least recently used class in [lo, hi) with a free block
    auto pick = pl.free.end();
    for (auto it = pl.free.lower_bound(lo); it != pl.free.end() && it->first < hi; ++it)
      if (!it->second.blocks.empty() && (pick == pl.free.end() || it->second.lastUse < pick->second.lastUse)) pick = it;
    return pick;
  };
  const auto takeFrom = [&](std::map<size_t, FreeList>::iterator it) {
    void* block = it->second.blocks.back();
    it->second.blocks.pop_back();
    pl.keptBytes -= it->first;
    return block;
  };
  Blocks pieces;
  if (auto it = oldest(cls + 1, SIZE_MAX); it != pl.free.end()) {
    const size_t size = it->first;
    char* block = static_cast<char*>(takeFrom(it));
    pl.free[size - cls].blocks.push_back(block + cls);
    pl.keptBytes += size - cls;
    pieces.emplace_back(block, cls);
    return pieces;
  }
  for (size_t covered = 0;;) {
    const auto it = oldest(kHuge, cls - covered + 1);
    if (it == pl.free.end()) return pieces;
    const size_t size = it->first;
    pieces.emplace_back(takeFrom(it), size);
    covered += size;
  }
}

// The array is gone: its block may serve the next output.
void giveBack(void* data, size_t cls) {
  Pool& pl = pool();
  Blocks released;
  bool kept = false;
  {
    std::lock_guard<std::mutex> lock(pl.mu);
    pl.liveBytes -= cls;
    FreeList& list = pl.free[cls];
    list.lastUse = ++pl.clock;
    if (cls <= pl.maxKeptBytes) evictLocked(pl, cls, cls, released);
    if (pl.keptBytes + cls <= pl.maxKeptBytes) {
      list.blocks.push_back(data);
      pl.keptBytes += cls;
      kept = true;
    } else {
      pl.dropped += 1;
    }
  }
  for (const auto& [block, blockCls] : released) rawFree(block, blockCls);
  if (!kept) rawFree(data, cls);
}

// V8's backing-store deleter for counted blocks.
void freedByV8(void* data, size_t, void* cls) {
  giveBack(data, reinterpret_cast<size_t>(cls));
}

// Leased blocks of one environment (its JavaScript thread only: no lock).
struct Lease;
struct EnvLeases {
  std::unordered_set<Lease*> live;
  v8::Global<v8::Symbol> detachKey;  // never handed to JavaScript
};

struct Lease {
  void* data;
  size_t cls;
  EnvLeases* env;
  v8::Global<v8::ArrayBuffer> buffer;
};

void endLease(Lease* lease) {
  lease->buffer.Reset();
  lease->env->live.erase(lease);
  giveBack(lease->data, lease->cls);
  delete lease;
}

// First-pass weak callback, inside the collection that found the buffer dead.
void leaseCollected(const v8::WeakCallbackInfo<Lease>& info) {
  endLease(info.GetParameter());
}

// The environment is ending: no JavaScript can reach its buffers any more.
void endEnvLeases(Napi::Env, EnvLeases* env) {
  while (!env->live.empty()) endLease(*env->live.begin());
  env->detachKey.Reset();
  delete env;
}

EnvLeases& envLeases(Napi::Env env, v8::Isolate* isolate) {
  EnvLeases* e = env.GetInstanceData<EnvLeases>();
  if (!e) {
    e = new EnvLeases();
    e->detachKey.Reset(isolate, v8::Symbol::New(isolate));
    env.SetInstanceData<EnvLeases, endEnvLeases>(e);
  }
  return *e;
}

void trimLocked(Pool& pl, size_t target) {
  for (auto it = pl.free.begin(); it != pl.free.end() && pl.keptBytes > target;) {
    auto& blocks = it->second.blocks;
    while (!blocks.empty() && pl.keptBytes > target) {
      rawFree(blocks.back(), it->first);
      blocks.pop_back();
      pl.keptBytes -= it->first;
    }
    it = blocks.empty() ? pl.free.erase(it) : std::next(it);
  }
}

// take(length, leased, noFresh) -> Float32Array of `length` floats over a pooled block (contents
// arbitrary, NaN with poison on), leased or counted (see the top of this file); with noFresh, a
// miss returns undefined instead of fresh memory (the caller collects first).
Napi::Value Take(const Napi::CallbackInfo& info) {
  const double len = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(len >= 1 && len <= (double)(std::numeric_limits<int32_t>::max() / 4) && len == std::floor(len)))
    throw Napi::RangeError::New(info.Env(), "length: expected an integer >= 1");
  const bool leased = info[1].ToBoolean(), noFresh = info[2].ToBoolean();
  const size_t bytes = (size_t)len * sizeof(float), cls = sizeClass(bytes);
  Pool& pl = pool();
  void* data = nullptr;
  Blocks pieces;  // recycled free blocks of other classes
  bool hit = false, huge, poison;
  {
    std::lock_guard<std::mutex> lock(pl.mu);
    FreeList& list = pl.free[cls];
    list.lastUse = ++pl.clock;
    if (!list.blocks.empty()) {
      data = list.blocks.back();
      list.blocks.pop_back();
      pl.keptBytes -= cls;
      pl.hits += 1;
      hit = true;
    } else {
      if (noFresh) return info.Env().Undefined();
      if (cls >= kHuge) pieces = recycleLocked(pl, cls);
    }
    pl.liveBytes += cls;
    huge = pl.hugePages;
    poison = pl.poison;
  }
  if (pieces.size() == 1 && pieces[0].second == cls) data = pieces[0].first;  // split from a larger one
  else if (!pieces.empty()) data = assembleBlock(pieces, cls, huge);
  if (!hit) {
    std::lock_guard<std::mutex> lock(pl.mu);
    (data ? pl.recycled : pl.misses) += 1;
  }
  if (!data) data = rawAlloc(cls, huge);
  if (!data) {
    std::lock_guard<std::mutex> lock(pl.mu);
    pl.liveBytes -= cls;
    throw Napi::Error::New(info.Env(), "maskacc pool: out of memory for " + std::to_string(bytes) + " bytes");
  }
  if (poison) std::fill_n(static_cast<float*>(data), bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::ArrayBuffer> buffer;
  if (leased) {
    EnvLeases& env = envLeases(info.Env(), isolate);
    buffer = v8::ArrayBuffer::New(
        isolate, v8::ArrayBuffer::NewBackingStore(data, bytes, v8::BackingStore::EmptyDeleter, nullptr));
    buffer->SetDetachKey(env.detachKey.Get(isolate));
    Lease* lease = new Lease{data, cls, &env, v8::Global<v8::ArrayBuffer>(isolate, buffer)};
    lease->buffer.SetWeak(lease, leaseCollected, v8::WeakCallbackType::kParameter);
    env.live.insert(lease);
  } else {
    buffer = v8::ArrayBuffer::New(
        isolate, v8::ArrayBuffer::NewBackingStore(data, bytes, freedByV8, reinterpret_cast<void*>(cls)));
  }
  v8::Local<v8::Float32Array> array = v8::Float32Array::New(buffer, 0, (size_t)len);
  v8::Local<v8::Value> value = array;
  return Napi::Value(info.Env(), reinterpret_cast<napi_value>(*value));
}

// stats() -> { keptBytes, liveBytes, maxKeptBytes, hugePages, poison, hits, recycled, misses, dropped }
Napi::Value Stats(const Napi::CallbackInfo& info) {
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mu);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("keptBytes", (double)pl.keptBytes);
  o.Set("liveBytes", (double)pl.liveBytes);
  o.Set("maxKeptBytes", (double)pl.maxKeptBytes);
  o.Set("hugePages", pl.hugePages);
  o.Set("poison", pl.poison);
  o.Set("hits", pl.hits);
  o.Set("recycled", pl.recycled);
  o.Set("misses", pl.misses);
  o.Set("dropped", pl.dropped);
  return o;
}

// configure({ maxKeptBytes?, hugePages?, poison? }): lowering the bound trims at once.
Napi::Value Configure(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "configure: expected an object");
  Napi::Object o = info[0].As<Napi::Object>();
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mu);
  if (o.Has("maxKeptBytes")) {
    const double v = o.Get("maxKeptBytes").ToNumber().DoubleValue();
    if (!(v >= 0)) throw Napi::RangeError::New(info.Env(), "maxKeptBytes: expected a number >= 0");
    pl.maxKeptBytes = v >= 9e18 ? std::numeric_limits<size_t>::max() : (size_t)v;
    trimLocked(pl, pl.maxKeptBytes);
  }
  if (o.Has("hugePages")) pl.hugePages = o.Get("hugePages").ToBoolean();
  if (o.Has("poison")) pl.poison = o.Get("poison").ToBoolean();
  return info.Env().Undefined();
}

// trim(): release every free block to the system.
Napi::Value Trim(const Napi::CallbackInfo& info) {
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mu);
  trimLocked(pl, 0);
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Node unloads addons when a worker thread's environment ends, but V8 frees that isolate's
  // counted array buffers afterwards and calls freedByV8: pin this library so it stays mapped.
  Dl_info self;
  if (dladdr(reinterpret_cast<void*>(&freedByV8), &self) && self.dli_fname)
    dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  exports.Set("take", Napi::Function::New(env, Take));
  exports.Set("stats", Napi::Function::New(env, Stats));
  exports.Set("configure", Napi::Function::New(env, Configure));
  exports.Set("trim", Napi::Function::New(env, Trim));
  return exports;
}

}  // namespace

NODE_API_MODULE(maskacc_runtime, Init)
