// Run-time choice among the kernel variants of Variants.inc (see CKernels.h).
#include "CKernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Eight floats as one vector (clang's vector extension), loaded and stored unaligned through memcpy.
typedef float CKV8 __attribute__((vector_size(32)));
#define CK_LOAD(p) ({ CKV8 ck_v_; __builtin_memcpy(&ck_v_, (p), sizeof(CKV8)); ck_v_; })
// Eight lane flags, one bit each (clang's boolean vectors): stored as one byte.
typedef _Bool CKB8 __attribute__((ext_vector_type(8)));
#define CK_STORE(p, v) do { CKV8 ck_v_ = (v); __builtin_memcpy((p), &ck_v_, sizeof(CKV8)); } while (0)
// Four and two floats, the same way (short rows).
typedef float CKV4 __attribute__((vector_size(16)));
typedef float CKV2 __attribute__((vector_size(8)));
#define CK_LOAD4(p) ({ CKV4 ck_v_; __builtin_memcpy(&ck_v_, (p), sizeof(CKV4)); ck_v_; })
#define CK_STORE4(p, v) do { CKV4 ck_v_ = (v); __builtin_memcpy((p), &ck_v_, sizeof(CKV4)); } while (0)
#define CK_LOAD2(p) ({ CKV2 ck_v_; __builtin_memcpy(&ck_v_, (p), sizeof(CKV2)); ck_v_; })
#define CK_STORE2(p, v) do { CKV2 ck_v_ = (v); __builtin_memcpy((p), &ck_v_, sizeof(CKV2)); } while (0)

// Masked vector tails (row copies, the general max pooling's column loops) only where masked stores cost what plain
// ones do (AVX-512).
#define CK_MASKED_TAILS 0
#define CK_NAME(name) ck_##name##_baseline
#define CK_TARGET
#define CK_FMA 0
#include "Variants.inc"
#include "WinogradVariants.inc"
#undef CK_NAME
#undef CK_TARGET

#if defined(__x86_64__) || defined(_M_X64)
#define CK_X86 1
#define CK_NAME(name) ck_##name##_avx2
#define CK_TARGET __attribute__((target("avx2,fma")))
#undef CK_FMA
#define CK_FMA 1
#include "Variants.inc"
#include "WinogradVariants.inc"
#undef CK_NAME
#undef CK_TARGET
#define CK_NAME(name) ck_##name##_avx512
#define CK_TARGET __attribute__((target("avx512f,avx512vl,avx2,fma")))
#undef CK_MASKED_TAILS
#define CK_MASKED_TAILS 1
#include "Variants.inc"
#include "WinogradVariants.inc"
#undef CK_NAME
#undef CK_TARGET
#endif

// MARK: - The table

typedef struct {
    void (*binary)(CKBinaryOp, const float *, const float *, float *, ptrdiff_t);
    void (*accumulate)(const float *, float *, ptrdiff_t);
    void (*relu)(const float *, float *, ptrdiff_t);
    void (*relu_backward)(const float *, const float *, float *, ptrdiff_t);
    void (*scale)(const float *, float, float *, ptrdiff_t);
    void (*shift_copy)(const float *, float, float *, ptrdiff_t);
    void (*winograd_input_tiles3)(const float *, float *, const CKWinogradTiles *);
    void (*winograd_output_tiles3)(const float *, float *, const CKWinogradTiles *);
    void (*winograd_input_tiles3_adjoint)(const float *, float *, const CKWinogradTiles *);
    void (*winograd_output_tiles3_adjoint)(const float *, float *, const CKWinogradTiles *);
    void (*winograd_filters)(const float *, float *, const CKWinogradFilters *, ptrdiff_t, ptrdiff_t);
    ptrdiff_t (*interleave8)(const float *, ptrdiff_t, ptrdiff_t, float *, float *);
    ptrdiff_t (*deinterleave8)(const float *, ptrdiff_t, float *, ptrdiff_t, const float *);
    int (*max_pool_plane)(const float *, float *, int32_t *, const CKPoolPlane *, float *, int32_t *);
    int (*max_pool3s2)(const float *, float *, int32_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);
    int (*max_pool3s2_values)(const float *, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);
    void (*mark_nonzero)(const float *, const CKNonzeroBlock *, uint64_t *);
    float (*max_magnitude)(const float *, ptrdiff_t);
    void (*copy_rows)(const float *, const CKRowBlock *, float *);
    void (*add_rows)(const float *, const CKRowBlock *, float *);
    void (*gemm_nt_narrow)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, const float *, ptrdiff_t, float *,
                           ptrdiff_t);
    void (*gemm_tn_narrow)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, const float *, ptrdiff_t, float *,
                           ptrdiff_t, int);
} CKTable;

#define CK_TABLE(suffix) {                                                                                        \
    ck_binary_##suffix, ck_accumulate_##suffix, ck_relu_##suffix, ck_relu_backward_##suffix, ck_scale_##suffix, \
    ck_shift_copy_##suffix, ck_winograd_input_tiles3_##suffix, ck_winograd_output_tiles3_##suffix,                  \
    ck_winograd_input_tiles3_adjoint_##suffix, ck_winograd_output_tiles3_adjoint_##suffix,                        \
    ck_winograd_filters_##suffix, ck_interleave8_##suffix, ck_deinterleave8_##suffix, ck_max_pool_plane_##suffix, \
    ck_max_pool3s2_##suffix, ck_max_pool3s2_values_##suffix, ck_mark_nonzero_##suffix, ck_max_magnitude_##suffix,  \
    ck_copy_rows_##suffix, ck_add_rows_##suffix, ck_gemm_nt_narrow_##suffix, ck_gemm_tn_narrow_##suffix }

static const CKTable tables[] = {
    CK_TABLE(baseline),
#ifdef CK_X86
    CK_TABLE(avx2),
    CK_TABLE(avx512),
#endif
};

static const char *const names[] = {"baseline", "avx2+fma", "avx512f"};

// The table in use: chosen at the first call (a race between threads there only stores the same choice twice).
static const CKTable *_Atomic current = NULL;
static _Atomic int currentPath = -1;

CKPath ck_best_path(void) {
#ifdef CK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return CKPathAVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CKPathAVX2;
#endif
    return CKPathBaseline;
}

const char *ck_blas_core(void) {
#ifdef CK_X86
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512cd");
    if (avx512 && __builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (avx512) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "SandyBridge";
#endif
    return NULL;
}

CKPath ck_set_path(CKPath path) {
    CKPath best = ck_best_path();
    if ((int)path > (int)best) path = best;
    if ((int)path < 0) path = CKPathBaseline;
    currentPath = (int)path;
    current = &tables[path];
    return path;
}

static const CKTable *table(void) {
    const CKTable *t = current;
    if (t) return t;
    CKPath path = ck_best_path();
    const char *forced = getenv("GROUPCONV_KERNELS");
    if (forced) {
        if (strcmp(forced, "baseline") == 0) path = CKPathBaseline;
        else if (strcmp(forced, "avx2") == 0) path = CKPathAVX2;
        else if (strcmp(forced, "avx512") == 0) path = CKPathAVX512;
    }
    ck_set_path(path);
    return current;
}

CKPath ck_path(void) {
    (void)table();
    return (CKPath)currentPath;
}

const char *ck_path_name(void) { return names[ck_path()]; }

// MARK: - Entry points

void ck_binary(CKBinaryOp op, const float *a, const float *b, float *out, ptrdiff_t n) {
    table()->binary(op, a, b, out, n);
}
void ck_accumulate(const float *src, float *dst, ptrdiff_t n) { table()->accumulate(src, dst, n); }
void ck_relu(const float *x, float *y, ptrdiff_t n) { table()->relu(x, y, n); }
void ck_relu_backward(const float *g, const float *y, float *dx, ptrdiff_t n) {
    table()->relu_backward(g, y, dx, n);
}
void ck_scale(const float *x, float s, float *y, ptrdiff_t n) { table()->scale(x, s, y, n); }
void ck_shift_copy(const float *src, float shift, float *dst, ptrdiff_t n) { table()->shift_copy(src, shift, dst, n); }
void ck_winograd_input_tiles3(const float *scratch, float *v, const CKWinogradTiles *tiles) {
    table()->winograd_input_tiles3(scratch, v, tiles);
}
void ck_winograd_output_tiles3(const float *m, float *scratch, const CKWinogradTiles *tiles) {
    table()->winograd_output_tiles3(m, scratch, tiles);
}
void ck_winograd_input_tiles3_adjoint(const float *dv, float *scratch, const CKWinogradTiles *tiles) {
    table()->winograd_input_tiles3_adjoint(dv, scratch, tiles);
}
void ck_winograd_output_tiles3_adjoint(const float *scratch, float *dm, const CKWinogradTiles *tiles) {
    table()->winograd_output_tiles3_adjoint(scratch, dm, tiles);
}
void ck_winograd_filters(const float *weight, float *u, const CKWinogradFilters *filters, ptrdiff_t firstChannel,
                         ptrdiff_t endChannel) {
    table()->winograd_filters(weight, u, filters, firstChannel, endChannel);
}
ptrdiff_t ck_interleave8(const float *src, ptrdiff_t planeStride, ptrdiff_t count, float *dst, float *sum) {
    return table()->interleave8(src, planeStride, count, dst, sum);
}
ptrdiff_t ck_deinterleave8(const float *src, ptrdiff_t count, float *dst, ptrdiff_t planeStride, const float *shift) {
    return table()->deinterleave8(src, count, dst, planeStride, shift);
}
int ck_max_pool_plane(const float *src, float *out, int32_t *idx, const CKPoolPlane *plane, float *colValue,
                      int32_t *colIndex) {
    return table()->max_pool_plane(src, out, idx, plane, colValue, colIndex);
}
int ck_max_pool3s2(const float *src, float *out, int32_t *idx, ptrdiff_t planes, ptrdiff_t depth, ptrdiff_t height,
                   ptrdiff_t width, float *scratch) {
    return table()->max_pool3s2(src, out, idx, planes, depth, height, width, scratch);
}
int ck_max_pool3s2_values(const float *src, float *out, ptrdiff_t planes, ptrdiff_t depth, ptrdiff_t height,
                          ptrdiff_t width, float *scratch) {
    return table()->max_pool3s2_values(src, out, planes, depth, height, width, scratch);
}
void ck_mark_nonzero(const float *src, const CKNonzeroBlock *block, uint64_t *bits) {
    table()->mark_nonzero(src, block, bits);
}
float ck_max_magnitude(const float *x, ptrdiff_t n) { return table()->max_magnitude(x, n); }
void ck_copy_rows(const float *src, const CKRowBlock *block, float *dst) { table()->copy_rows(src, block, dst); }
void ck_gemm_nt_narrow(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                       ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    table()->gemm_nt_narrow(m, n, k, a, lda, b, ldb, c, ldc);
}
void ck_gemm_tn_narrow(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                       ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate) {
    table()->gemm_tn_narrow(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}
void ck_add_rows(const float *src, const CKRowBlock *block, float *dst) { table()->add_rows(src, block, dst); }
