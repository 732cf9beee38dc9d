// maskacc generated: these layer kernels compile as one translation unit (the headers they share
// parse once); each stays in its own file and namespace. Do not edit.
#include "u3_scalar.cpp"
#include "u4_scalar.cpp"
#include "u5_scalar.cpp"
