// Measures this machine's FP32 FMA peak (GFLOP/s) with independent AVX-512 FMA chains on
// `threads` std::threads, so benchmark results can be reported as a fraction of peak.
#include "peak.hpp"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace baselines {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kAccumulators = 16;   // enough independent chains to cover 2 FMA ports x 4-cycle latency
constexpr int64_t kInnerIters = 1 << 14;  // FMAs per accumulator between clock checks

// Runs FMA chunks until `deadline`; returns the number of chunks done.
__attribute__((target("avx512f"), noinline)) int64_t fmaLoop(Clock::time_point deadline,
                                                              float* sink) {
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  int64_t chunks = 0;
  do {
    for (int64_t it = 0; it < kInnerIters; ++it) {
#pragma GCC unroll 16
      for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    ++chunks;
  } while (Clock::now() < deadline);
  // Keep the result observable so the loop is not optimized away.
  __m512 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  *sink = lanes[0] + lanes[15];
  return chunks;
}

double oneTrial(int threads, double seconds) {
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
      chunks[t] = fmaLoop(deadline, &sinks[t]);
    });
  while (ready.load() < threads) std::this_thread::yield();
  start = Clock::now();
  deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  double flops = 0;
  // 16 lanes x 2 flops per FMA.
  for (int64_t c : chunks) flops += (double)c * kInnerIters * kAccumulators * 16 * 2;
  return flops / elapsed / 1e9;
}

}  // namespace

double measurePeakGflops(int threads, double seconds) {
  // Short trials; the best one is the least disturbed by other load and clock ramp-up.
  const int trials = 4;
  double best = 0;
  oneTrial(threads, std::min(0.05, seconds / trials));  // warm-up: wake cores, raise clocks
  for (int i = 0; i < trials; ++i) best = std::max(best, oneTrial(threads, seconds / trials));
  return best;
}

}  // namespace baselines
