// Measures this machine's FP32 FMA peak (GFLOP/s) with independent FMA chains on `threads`
// std::threads, so benchmark results can be reported as a fraction of peak. It uses the widest
// vectors the CPU runs (AVX-512, else AVX2 + FMA), which is the ISA the kernels pick by default.
#include "peak.hpp"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace baselines {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kInnerIters = 1 << 14;  // FMAs per accumulator between clock checks

// Enough independent chains to cover 2 FMA ports x 4-5 cycles of latency, leaving room in the
// register file for the two operands: 16 of AVX-512's 32 registers, 12 of AVX2's 16.
constexpr int kAcc512 = 16;
constexpr int kAcc256 = 12;

// Each loop runs FMA chunks until `deadline` and returns the number of chunks done.
__attribute__((target("avx512f"), noinline)) int64_t fmaLoop512(Clock::time_point deadline, float* sink) {
  __m512 acc[kAcc512];
  for (int i = 0; i < kAcc512; ++i) acc[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  int64_t chunks = 0;
  do {
    for (int64_t it = 0; it < kInnerIters; ++it) {
#pragma GCC unroll 16
      for (int i = 0; i < kAcc512; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    ++chunks;
  } while (Clock::now() < deadline);
  // Keep the result observable so the loop is not optimized away.
  __m512 sum = acc[0];
  for (int i = 1; i < kAcc512; ++i) sum = _mm512_add_ps(sum, acc[i]);
  *sink = _mm512_reduce_add_ps(sum);
  return chunks;
}

__attribute__((target("avx2,fma"), noinline)) int64_t fmaLoop256(Clock::time_point deadline, float* sink) {
  __m256 acc[kAcc256];
  for (int i = 0; i < kAcc256; ++i) acc[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  int64_t chunks = 0;
  do {
    for (int64_t it = 0; it < kInnerIters; ++it) {
#pragma GCC unroll 12
      for (int i = 0; i < kAcc256; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    ++chunks;
  } while (Clock::now() < deadline);
  __m256 sum = acc[0];
  for (int i = 1; i < kAcc256; ++i) sum = _mm256_add_ps(sum, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  *sink = lanes[0] + lanes[7];
  return chunks;
}

struct FmaKernel {
  int64_t (*loop)(Clock::time_point, float*);
  double flopsPerChunk;  // accumulators x lanes x 2 flops per FMA, per inner loop
};

FmaKernel widestFmaKernel() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {fmaLoop512, (double)kInnerIters * kAcc512 * 16 * 2};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {fmaLoop256, (double)kInnerIters * kAcc256 * 8 * 2};
  throw std::runtime_error("measurePeakGflops: this CPU has neither AVX-512 nor AVX2 + FMA");
}

double oneTrial(const FmaKernel& kernel, int threads, double seconds) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<int64_t> chunks(threads, 0);
  std::vector<float> sinks(threads, 0.0f);
  Clock::time_point start, deadline;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      chunks[t] = kernel.loop(deadline, &sinks[t]);
    });
  while (ready.load() < threads) std::this_thread::yield();
  start = Clock::now();
  deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  double flops = 0;
  for (int64_t c : chunks) flops += (double)c * kernel.flopsPerChunk;
  return flops / elapsed / 1e9;
}

}  // namespace

double measurePeakGflops(int threads, double seconds) {
  const FmaKernel kernel = widestFmaKernel();
  // Short trials; the best one is the least disturbed by other load and clock ramp-up.
  const int trials = 4;
  double best = 0;
  oneTrial(kernel, threads, std::min(0.05, seconds / trials));  // warm-up: wake cores, raise clocks
  for (int i = 0; i < trials; ++i) best = std::max(best, oneTrial(kernel, threads, seconds / trials));
  return best;
}

}  // namespace baselines
