// Compiles KERNEL_HEADER once for each instruction set the kernels use, with KERNEL(name) naming
// its functions name_vnni (AVX-512 VNNI) and name_avx2 (AVX2 with FMA and F16C), and VNNI 1 or 0;
// and defines cpu_isa(), the best of them this CPU has. Included by head.c and matmul.c.
#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")
#define KERNEL(name) name##_vnni
#define VNNI 1
#include "shared_kernel.h"
#include KERNEL_HEADER
#undef KERNEL
#undef VNNI
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define KERNEL(name) name##_avx2
#define VNNI 0
#include "shared_kernel.h"
#include KERNEL_HEADER
#undef KERNEL
#undef VNNI
#pragma GCC pop_options

// 2 AVX-512 VNNI, 1 AVX2 (with FMA and F16C), 0 neither.
static int cpu_isa(void) {
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni") ? 2 : 1;
}
#else
static int cpu_isa(void) { return 0; }
#endif
