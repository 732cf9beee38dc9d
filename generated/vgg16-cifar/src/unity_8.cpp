// maskacc generated: these layer kernels compile as one translation unit (the headers they share
// parse once); each stays in its own file and namespace. Do not edit.
#include "u6_scalar.cpp"
#include "u7_scalar.cpp"
#include "u8_scalar.cpp"
