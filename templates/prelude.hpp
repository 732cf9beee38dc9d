// The system headers every layer kernel includes, first, before any code of its own: the JIT
// precompiles this file once per compiler and ISA flags (src/codegen/prelude.ts) and each kernel
// translation unit loads it with -include, instead of parsing immintrin.h and the std headers again
// (about 1.3 s of a 4 s one-layer compile). Without that precompiled copy it is an ordinary header.
#ifndef MASKACC_PRELUDE_HPP
#define MASKACC_PRELUDE_HPP

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#ifdef __AVX2__  // the AVX2 and AVX-512 kernels; the scalar ones use no intrinsics
#include <immintrin.h>
#endif

#endif  // MASKACC_PRELUDE_HPP
