// maskacc generated: these layer kernels compile as one translation unit (the headers they share
// parse once); each stays in its own file and namespace. Do not edit.
#include "u0_avx2.cpp"
#include "u1_avx2.cpp"
#include "u2_avx2.cpp"
