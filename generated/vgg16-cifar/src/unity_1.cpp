// maskacc generated: these layer kernels compile as one translation unit (the headers they share
// parse once); each stays in its own file and namespace. Do not edit.
#include "u3_avx512.cpp"
#include "u4_avx512.cpp"
#include "u5_avx512.cpp"
