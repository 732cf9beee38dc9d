// ISA: AVX-512F, 16 floats per vector, 32 vector registers.
// Header included by a generated kernel.cpp inside its layer namespace; needs <immintrin.h> (AVX-512F enabled) included
// before it. The engine headers call the vector operations through simd::.

namespace simd {
constexpr int VW = 16;
using vec = __m512;
inline vec zero() { return _mm512_setzero_ps(); }
inline vec broadcast(float a) { return _mm512_set1_ps(a); }
inline vec loadu(const float* p) { return _mm512_loadu_ps(p); }
inline void storeu(float* p, vec v) { _mm512_storeu_ps(p, v); }
inline vec fmadd(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
inline float hsum(vec v) { return _mm512_reduce_add_ps(v); }
// Pin a loaded value in a register: stops g++ from folding the load into every FMA that uses it
// (which would repeat the load once per use and make the loop load-bound).
inline void keep(vec& v) { asm("" : "+v"(v)); }
inline void spill(float* out, vec v) { _mm512_storeu_ps(out, v); }
}  // namespace simd
