// maskacc generated: these layer kernels compile as one translation unit (the headers they share
// parse once); each stays in its own file and namespace. Do not edit.
#include "u6_avx512.cpp"
#include "u7_avx512.cpp"
#include "u8_avx512.cpp"
