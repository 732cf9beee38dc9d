// FP32 FMA peak measurement used to normalize benchmark results.
#pragma once

namespace baselines {
// Total GFLOP/s of `threads` threads doing back-to-back AVX-512 FMAs for about `seconds`.
double measurePeakGflops(int threads, double seconds);
}  // namespace baselines
