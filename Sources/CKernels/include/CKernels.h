// The framework's CPU-dispatched float kernels: plain C compiled by SwiftPM's clang without special flags. On
// x86-64 each kernel has a baseline (SSE2) variant and AVX2+FMA and AVX-512 variants compiled with
// __attribute__((target(...))); the path is chosen once, at the first call, from the CPU's features
// (__builtin_cpu_supports), or forced with the environment variable GROUPCONV_KERNELS=baseline|avx2|avx512 (a path the
// CPU lacks falls back to the best it has). Other architectures build the baseline variant only.
//
// Every kernel gives the same result on every path: the elementwise ones compute each element with the same
// operations in the same order (no fused multiply-add); the sums use the same eight-lane partial sums. The exception
// is the narrow matrix products (`ck_gemm_nt_narrow`, `ck_gemm_tn_narrow`), which fuse multiply and add where the
// path has FMA, as BLAS does.
#ifndef GROUPCONV_CKERNELS_H
#define GROUPCONV_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kernel paths, from the baseline up.
typedef enum {
    CKPathBaseline = 0,
    CKPathAVX2 = 1,
    CKPathAVX512 = 2,
} CKPath;

/// The path the kernels run ("baseline", "avx2+fma" or "avx512f").
const char *ck_path_name(void);
/// The path the kernels run.
CKPath ck_path(void);
/// The best path this CPU supports.
CKPath ck_best_path(void);
/// Makes the kernels run `path` (or the best supported path below it); returns the path now in use. For tests.
CKPath ck_set_path(CKPath path);
/// The OpenBLAS x86-64 kernel set this CPU's features call for, by the rule OpenBLAS applies to CPUs it does not
/// recognise: "Cooperlake" (AVX-512 with BF16), "SkylakeX" (AVX-512), "Haswell" (AVX2 and FMA), "SandyBridge" (AVX);
/// NULL for older x86-64 CPUs and on other architectures.
const char *ck_blas_core(void);

/// The flat binary ops of `ck_binary`: out[i] = a[i] op b[i].
typedef enum {
    CKBinaryAdd = 0,
    CKBinarySub = 1,
    CKBinaryMul = 2,
    CKBinaryDiv = 3,
    CKBinaryMax = 4,
    CKBinaryMin = 5,
} CKBinaryOp;

/// out[i] = a[i] op b[i] for i < n (max and min as Swift's: NaN handling as `a > b ? a : b` etc., see the source).
void ck_binary(CKBinaryOp op, const float *a, const float *b, float *out, ptrdiff_t n);
/// dst[i] += src[i] for i < n.
void ck_accumulate(const float *src, float *dst, ptrdiff_t n);
/// A block of `planes` x `rows` rows of `width` floats, in the source and in the destination (rows that do not
/// overlap).
typedef struct {
    ptrdiff_t planes, rows, width, srcPlaneStride, srcRowStride, dstPlaneStride, dstRowStride;
} CKRowBlock;
/// dst[p * dstPlaneStride + r * dstRowStride + x] = src[p * srcPlaneStride + r * srcRowStride + x] over the block.
void ck_copy_rows(const float *src, const CKRowBlock *block, float *dst);
/// dst[p * dstPlaneStride + r * dstRowStride + x] += src[p * srcPlaneStride + r * srcRowStride + x] over the block.
void ck_add_rows(const float *src, const CKRowBlock *block, float *dst);
/// y[i] = x[i] > 0 ? x[i] : 0 (NaN gives 0).
void ck_relu(const float *x, float *y, ptrdiff_t n);
/// dx[i] = y[i] > 0 ? g[i] : 0.
void ck_relu_backward(const float *g, const float *y, float *dx, ptrdiff_t n);
/// y[i] = x[i] * s.
void ck_scale(const float *x, float s, float *y, ptrdiff_t n);
/// dst[i] = src[i] + shift for i < n (shift 0 copies).
void ck_shift_copy(const float *src, float shift, float *dst, ptrdiff_t n);
/// The tiles of one image in a Winograd F(3x3, 3x3) pass (the Swift `WinogradGeometry` and its side): tiles
/// `tilesHigh` x `tilesWide`, numbered from `firstTile` in the chunk, `positionStride` floats from one tile position
/// of V, M, dM or dV to the next; `groups` groups of 8 channel lanes, `lanes` = 8 * groups; the scratch image of
/// `rows` x `columns` cells of 8 lanes per group.
typedef struct {
    ptrdiff_t firstTile, positionStride, tilesHigh, tilesWide, groups, lanes, rows, columns;
} CKWinogradTiles;

/// V[xi][tile][lanes] = B^T d B of every tile of one image's padded scratch [group][row][column][8].
void ck_winograd_input_tiles3(const float *scratch, float *v, const CKWinogradTiles *tiles);
/// The output scratch [group][row][column][8] = A^T M A of every tile of one image, from M[xi][tile][lanes].
void ck_winograd_output_tiles3(const float *m, float *scratch, const CKWinogradTiles *tiles);
/// The adjoint of `ck_winograd_input_tiles3`: adds B dV B^T of every tile into the padded scratch (tile order).
void ck_winograd_input_tiles3_adjoint(const float *dv, float *scratch, const CKWinogradTiles *tiles);
/// The adjoint of `ck_winograd_output_tiles3`: dM[xi][tile][lanes] = A dY A^T from the output-gradient scratch.
void ck_winograd_output_tiles3_adjoint(const float *scratch, float *dm, const CKWinogradTiles *tiles);

/// The sizes of a Winograd filter transform: `outChannels` x `channels` 3x3 filters, output blocks of `block` (3 or 5,
/// tiles of 5 or 7), U's rows of `lanes` floats (`outChannels` rounded up to a multiple of 8), `positionStride`
/// floats from one position of U to the next (at least channels x lanes).
typedef struct {
    ptrdiff_t outChannels, channels, lanes, block, positionStride;
} CKWinogradFilters;

/// U[position][ci - firstChannel][lanes] (position at u + position * positionStride) = G g G^T of every filter
/// g = weight[k][ci] for the input channels firstChannel ..< endChannel; the lanes past `outChannels` are set to zero.
void ck_winograd_filters(const float *weight, float *u, const CKWinogradFilters *filters, ptrdiff_t firstChannel,
                         ptrdiff_t endChannel);

/// dst[x * 8 + l] = src[l * planeStride + x] for the whole blocks of 8 x in 0..<count; returns the x it stopped at.
/// With `sum` (8 floats), stores there the lane sums of the copied blocks, block by block, each block's eight values
/// summed pairwise ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)).
ptrdiff_t ck_interleave8(const float *src, ptrdiff_t planeStride, ptrdiff_t count, float *dst, float *sum);
/// The inverse of `ck_interleave8` over the whole blocks of 8 x, adding shift[l] to plane l when given; returns the x
/// it stopped at.
ptrdiff_t ck_deinterleave8(const float *src, ptrdiff_t count, float *dst, ptrdiff_t planeStride, const float *shift);

/// The sizes of one max-pooling plane (depth, height, width) as `ck_max_pool_plane` reads them.
typedef struct {
    ptrdiff_t depth, height, width;
    ptrdiff_t kernelDepth, kernelHeight, kernelWidth;
    ptrdiff_t strideDepth, strideHeight, strideWidth;
    ptrdiff_t padDepth, padHeight, padWidth;
    ptrdiff_t outDepth, outHeight, outWidth;
} CKPoolPlane;

/// Max pooling of one plane: out and idx (outDepth * outHeight * outWidth) get each window's largest value and its
/// plane-local flat index, the first in (depth, row, column) order among equal values; padding never wins.
/// `colValue` and `colIndex` hold width + 2 * padWidth entries that the caller sets to -inf and INT32_MAX before
/// the first call (the kernel overwrites only the middle `width`). Returns nonzero when the plane holds a NaN: the
/// results then do not follow the NaN rule of a scan (the last NaN wins) and the caller redoes the plane.
int ck_max_pool_plane(const float *src, float *out, int32_t *idx, const CKPoolPlane *plane, float *colValue,
                      int32_t *colIndex);

/// `ck_max_pool_plane` for windows of (1, 3, 3) at stride (1, 2, 2) with padding (0, 1, 1), over `planes`
/// consecutive planes of `depth` slices of height x width (each plane's indices local to it, its outputs after the
/// previous plane's), with the same results; `scratch` holds `ck_max_pool3s2_scratch(planes * depth, height, width)`
/// floats (the kernel sets it up itself). Blocks of output rows run across the slices and planes, so that small
/// planes share one pass. Returns nonzero when a plane holds a NaN, as `ck_max_pool_plane` (the caller redoes them).
int ck_max_pool3s2(const float *src, float *out, int32_t *idx, ptrdiff_t planes, ptrdiff_t depth, ptrdiff_t height,
                   ptrdiff_t width, float *scratch);
/// `ck_max_pool3s2` without the indices. Returns nonzero when a plane holds a NaN or a -0 (whose tie with +0 the
/// scan breaks by position): the caller then redoes the planes with indices.
int ck_max_pool3s2_values(const float *src, float *out, ptrdiff_t planes, ptrdiff_t depth, ptrdiff_t height,
                          ptrdiff_t width, float *scratch);
/// The output rows `ck_max_pool3s2` takes at a time for `slices` slices of height x width: blocks of about 2048
/// outputs (at least one row).
static inline ptrdiff_t ck_max_pool3s2_block_rows(ptrdiff_t slices, ptrdiff_t height, ptrdiff_t width) {
    const ptrdiff_t outRows = slices * ((height - 1) / 2 + 1), rowStride = (width - 1) / 2 + 2;
    const ptrdiff_t rows = rowStride >= 2048 ? 1 : 2048 / rowStride;
    return rows < outRows ? rows : outRows;
}
/// The floats of scratch `ck_max_pool3s2` needs for `slices` slices of height x width.
static inline ptrdiff_t ck_max_pool3s2_scratch(ptrdiff_t slices, ptrdiff_t height, ptrdiff_t width) {
    return 6 * ck_max_pool3s2_block_rows(slices, height, width) * ((width - 1) / 2 + 2);
}

/// C (m x n) = A (m x k) B^T for row-major A (lda), B (n x k, ldb) and C (ldc): n a multiple of 8 up to 64, k at most
/// 64. For the products of Winograd layers with few channels, where BLAS spends as long packing its operands as
/// multiplying them. Multiply and add are fused where the path has FMA, so the bits depend on the path (as BLAS's).
void ck_gemm_nt_narrow(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                       ptrdiff_t ldb, float *c, ptrdiff_t ldc);
/// C (m x n) = A^T B, or C + A^T B when `accumulate`, for row-major A (k x m, lda) and B (k x n, ldb): m a multiple
/// of 4, n of 16. As `ck_gemm_nt_narrow`.
void ck_gemm_tn_narrow(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                       ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate);

/// A block of `planes` x `rows` rows of `width` floats and its bit masks: row r of plane p starts at
/// src[p * srcPlaneStride + r * srcRowStride] and at bit first + r * bitRowStride of the plane's mask, which starts at
/// word p * bitPlaneWords.
typedef struct {
    ptrdiff_t planes, rows, width, srcPlaneStride, srcRowStride, first, bitRowStride, bitPlaneWords;
} CKNonzeroBlock;

/// Sets bit b + x of a plane's mask (bit b is bit b % 64 of word b / 64) for every x of a row starting at bit b
/// where the row's value is nonzero (NaN included, -0 not); the other bits are left as they are. The word after the
/// last bit written must exist.
void ck_mark_nonzero(const float *src, const CKNonzeroBlock *block, uint64_t *bits);

/// The largest |x[i]| for i < n, NaN skipped (0 for n = 0).
float ck_max_magnitude(const float *x, ptrdiff_t n);

#ifdef __cplusplus
}
#endif

#endif
