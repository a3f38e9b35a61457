// DDFAST_MULTIVERSION: compile a hot CPU function for AVX-512, AVX2 and baseline x86-64 and pick
// the best at run time (GCC target_clones). Mark the function that runs the hot loop itself: the
// body of an OpenMP region is outlined and would not be cloned.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define DDFAST_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DDFAST_MULTIVERSION
#endif
