import CBLAS
import CKernels
import Foundation

/// The element types a `Tensor` can hold: `Float` (the framework's working precision) and `Double` (for gradient
/// checks). The framework provides both conformances; the set is closed.
///
/// Ops are written once, generically; every loop over elements lives in a kernel (`Kernels/`). Each element type
/// hands out one table of its kernels, `TensorKernels`, built from code the compiler has specialised for that type:
/// generic op code reaches fast kernels through one indirect call per kernel call, also when it runs from other
/// modules. The table's members are internal: kernels are no part of the public API.
public protocol TensorScalar: BinaryFloatingPoint, SIMDScalar, Codable, Sendable, CustomStringConvertible
where Self.RawSignificand: FixedWidthInteger {
    /// Name used in messages and files: "F32" or "F64".
    static var dtypeName: String { get }

    /// The framework's kernels for this element type (internal members; not for calling).
    static var _kernels: TensorKernels<Self> { get }
}

/// The kernels of one element type (see `TensorScalar`); created by the framework only, its members are internal.
public final class TensorKernels<Scalar: TensorScalar>: @unchecked Sendable {
    typealias In = UnsafePointer<Scalar>
    typealias Out = UnsafeMutablePointer<Scalar>

    let prefersWinograd: Bool
    let gemm: (Bool, Bool, Int, Int, Int, Scalar, In, Int, In, Int, Scalar, Out, Int) -> Void
    let map: (UnaryOp<Scalar>, UnsafeBufferPointer<Scalar>, UnsafeMutableBufferPointer<Scalar>) -> Void
    let accumulate: (In, Out, Int) -> Void
    let reluBackward: (In, In, Out, Int) -> Void
    let gather: (In, UnsafePointer<Int32>, Out, Int) -> Void
    let scatterAdd: (In, UnsafePointer<Int32>, Out, Int, Int) -> Void
    let zip: (BinaryOp, In, [Int], In, [Int], Out, [Int]) -> Void
    let stridedCopy: (In, Int, [Int], Out, Int, [Int], [Int], Bool) -> Void
    let reduce: (ReduceOp, In, [Int], [Bool], Out) -> Void
    let im2col: (In, Out, ConvolutionGeometry) -> Void
    let col2im: (In, Out, ConvolutionGeometry) -> Void
    let convolutionForward: (In, In, In?, Out, Int, ConvolutionGeometry) -> Void
    let convolutionBackward: (In, In?, In?, Out?, Out?, Out?, Int, ConvolutionGeometry) -> Void
    let winogradFilters: (In, Out, WinogradGeometry) -> Void
    let winogradForward: (In, In, In?, Out, WinogradGeometry) -> Void
    let winogradBackward: (In, In?, In?, Out?, Out?, Out?, WinogradGeometry) -> Void
    let swapLeadingAxes: (In, Out, Int, Int, Int, In?) -> Void
    let maxPool: (In, Out, UnsafeMutablePointer<Int32>?, PoolingGeometry) -> Void
    let maxPoolBackward: (In, UnsafePointer<Int32>, Out, PoolingGeometry) -> Void
    let markNonzero: (In, CKNonzeroBlock, UnsafeMutablePointer<UInt64>) -> Void
    let copyRows: (In, RowBlock, Out) -> Void
    let addRows: (In, RowBlock, Out) -> Void
    let logSoftmax: (In, Out, Int, Int, Int) -> Void
    let logSoftmaxBackward: (In, In, Out, Int, Int, Int) -> Void
    let crossEntropy: (In, UnsafePointer<Int>, Int, Int, Out) -> Scalar
    let crossEntropyBackward: (In, UnsafePointer<Int>, Int, Int, Scalar, Out) -> Void

    /// The generic kernels (`Kernels/`) as specialised for `Scalar`, with `gemm` from BLAS and the given
    /// replacements for the few kernels that have a type-specific version.
    init(prefersWinograd: Bool,
         gemm: @escaping (Bool, Bool, Int, Int, Int, Scalar, In, Int, In, Int, Scalar, Out, Int) -> Void,
         map: @escaping (UnaryOp<Scalar>, UnsafeBufferPointer<Scalar>, UnsafeMutableBufferPointer<Scalar>) -> Void
             = { Scalar.mapKernel($0, $1, $2) },
         reluBackward: @escaping (In, In, Out, Int) -> Void = { Scalar.reluBackwardKernel($0, $1, $2, count: $3) },
         maxPool: @escaping (In, Out, UnsafeMutablePointer<Int32>?, PoolingGeometry) -> Void
             = { Scalar.maxPoolKernel($0, $1, $2, geometry: $3) },
         accumulate: @escaping (In, Out, Int) -> Void = { Scalar.accumulateKernel($0, into: $1, count: $2) },
         zip: @escaping (BinaryOp, In, [Int], In, [Int], Out, [Int]) -> Void
             = { Scalar.zipKernel($0, $1, $2, $3, $4, $5, shape: $6) },
         swapLeadingAxes: @escaping (In, Out, Int, Int, Int, In?) -> Void
             = { Scalar.swapLeadingAxesKernel($0, $1, outer: $2, middle: $3, inner: $4, bias: $5) },
         markNonzero: @escaping (In, CKNonzeroBlock, UnsafeMutablePointer<UInt64>) -> Void
             = { Scalar.markNonzeroKernel($0, $1, $2) },
         copyRows: @escaping (In, RowBlock, Out) -> Void = { Scalar.copyRowsKernel($0, $1, $2) },
         addRows: @escaping (In, RowBlock, Out) -> Void = { Scalar.addRowsKernel($0, $1, $2) }) {
        self.prefersWinograd = prefersWinograd
        self.gemm = gemm
        self.map = map
        self.reluBackward = reluBackward
        self.maxPool = maxPool
        self.accumulate = accumulate
        gather = { Scalar.gatherKernel($0, $1, $2, count: $3) }
        scatterAdd = { Scalar.scatterAddKernel($0, $1, $2, count: $3, destinationCount: $4) }
        self.zip = zip
        stridedCopy = {
            Scalar.stridedCopyKernel($0, srcOffset: $1, srcStrides: $2, $3, dstOffset: $4, dstStrides: $5,
                                     shape: $6, accumulate: $7)
        }
        reduce = { Scalar.reduceKernel($0, $1, shape: $2, reduced: $3, $4) }
        im2col = { Scalar.im2colKernel($0, $1, geometry: $2) }
        col2im = { Scalar.col2imKernel($0, $1, geometry: $2) }
        convolutionForward = {
            Scalar.convolutionForwardKernel($0, weight: $1, bias: $2, $3, outChannels: $4, geometry: $5)
        }
        convolutionBackward = {
            Scalar.convolutionBackwardKernel($0, input: $1, weight: $2, gradInput: $3, gradWeight: $4, gradBias: $5,
                                             outChannels: $6, geometry: $7)
        }
        winogradFilters = { Scalar.winogradFiltersKernel($0, $1, geometry: $2) }
        winogradForward = { Scalar.winogradForwardKernel($0, filters: $1, bias: $2, $3, geometry: $4) }
        winogradBackward = {
            Scalar.winogradBackwardKernel($0, filters: $1, input: $2, gradInput: $3, gradWeight: $4, gradBias: $5,
                                          geometry: $6)
        }
        self.swapLeadingAxes = swapLeadingAxes
        maxPoolBackward = { Scalar.maxPoolBackwardKernel($0, $1, $2, geometry: $3) }
        self.markNonzero = markNonzero
        self.copyRows = copyRows
        self.addRows = addRows
        logSoftmax = { Scalar.logSoftmaxKernel($0, $1, outer: $2, size: $3, inner: $4) }
        logSoftmaxBackward = { Scalar.logSoftmaxBackwardKernel($0, $1, $2, outer: $3, size: $4, inner: $5) }
        crossEntropy = { Scalar.crossEntropyKernel($0, targets: $1, rows: $2, classes: $3, $4) }
        crossEntropyBackward = {
            Scalar.crossEntropyBackwardKernel($0, targets: $1, rows: $2, classes: $3, scale: $4, $5)
        }
    }
}

// MARK: - The two element types

extension Float: TensorScalar {
    public static var dtypeName: String { "F32" }
    public static var _kernels: TensorKernels<Float> { floatKernels }
}

extension Double: TensorScalar {
    public static var dtypeName: String { "F64" }
    public static var _kernels: TensorKernels<Double> { doubleKernels }
}

/// Float: BLAS `sgemm` (C cleared here for beta = 0), Winograd by default for the convolutions it supports, and the
/// CPU-dispatched C kernels for relu, scaling, flat adds and products, gradient accumulation, the convolution's output
/// pass with its bias, max pooling, the nonzero masks of the Winograd zero mask and im2col's and col2im's blocks of
/// short rows (`Kernels/DispatchedKernels.swift`).
private let floatKernels = TensorKernels<Float>(
    prefersWinograd: true,
    gemm: { transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
        BLASLibrary.prepare()
        let small = BLASLibrary.writesSmallProductsWithZeroBeta
            && Double(m) * Double(n) * Double(k) <= BLASLibrary.smallProductLimit
        let beta = small ? beta : clearedForZeroBeta(c, rows: m, columns: n, ldc: ldc, beta: beta)
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    },
    map: { Float.mapDispatched($0, $1, $2) },
    reluBackward: { Float.reluBackwardDispatched($0, $1, $2, count: $3) },
    maxPool: { Float.maxPoolDispatched($0, $1, $2, geometry: $3) },
    accumulate: { Float.accumulateDispatched($0, into: $1, count: $2) },
    zip: { Float.zipDispatched($0, $1, $2, $3, $4, $5, shape: $6) },
    swapLeadingAxes: { Float.swapLeadingAxesDispatched($0, $1, outer: $2, middle: $3, inner: $4, bias: $5) },
    markNonzero: { Float.markNonzeroDispatched($0, $1, $2) },
    copyRows: { Float.copyRowsDispatched($0, $1, $2) },
    addRows: { Float.addRowsDispatched($0, $1, $2) })

/// Double (gradient checks): BLAS `dgemm` (C cleared here for beta = 0), the exact im2col path for every
/// convolution, the generic kernels.
private let doubleKernels = TensorKernels<Double>(
    prefersWinograd: false,
    gemm: { transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
        BLASLibrary.prepare()
        let beta = clearedForZeroBeta(c, rows: m, columns: n, ldc: ldc, beta: beta)
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    })

/// For beta = 0, sets the m x n row-major matrix C (row stride `ldc`) to zero and returns beta = 1; otherwise returns
/// `beta` and leaves C alone. OpenBLAS clears C for beta = 0 in a pass of its own before the product, and on some
/// CPUs (its Zen kernels) that pass stores one float at a time: 7 % of a CNN training step there. memset stores whole
/// vectors, and OpenBLAS skips its pass for beta = 1. The result is the same bits: the product is added to zeros.
/// Float's small products on OpenBLAS's AVX-512 kernels keep beta = 0 instead
/// (`BLASLibrary.writesSmallProductsWithZeroBeta`): its small-matrix kernels write C without reading it, where beta
/// = 1 would clear C and read it back (about half the clearing of a C4CNN evaluation).
private func clearedForZeroBeta<T: BinaryFloatingPoint>(_ c: UnsafeMutablePointer<T>, rows: Int, columns: Int,
                                                        ldc: Int, beta: T) -> T {
    guard beta == 0, rows > 0, columns > 0 else { return beta }
    if ldc == columns {
        c.update(repeating: 0, count: rows * columns)
    } else {
        for r in 0..<rows { (c + r * ldc).update(repeating: 0, count: columns) }
    }
    return 1
}

// MARK: - Kernel entry points
//
// What ops and kernels call: each forwards to the element type's table. Internal.

extension TensorScalar {
    /// True when `conv2d` with `.fastest` takes the Winograd kernels for the 3x3 stride-1 convolutions they
    /// support: for `Float`; `Double` (used for gradient checks) keeps the exact im2col path.
    static var prefersWinograd: Bool { _kernels.prefersWinograd }

    /// e^x and the natural logarithm, per element: `expf` / `logf` for Float, `exp` / `log` for Double. A test
    /// of the type that the specialised kernels fold away.
    @inline(__always) static func exp(_ x: Self) -> Self {
        if Self.self == Float.self { return unsafeBitCast(Foundation.expf(unsafeBitCast(x, to: Float.self)), to: Self.self) }
        return unsafeBitCast(Foundation.exp(unsafeBitCast(x, to: Double.self)), to: Self.self)
    }

    @inline(__always) static func log(_ x: Self) -> Self {
        if Self.self == Float.self { return unsafeBitCast(Foundation.logf(unsafeBitCast(x, to: Float.self)), to: Self.self) }
        return unsafeBitCast(Foundation.log(unsafeBitCast(x, to: Double.self)), to: Self.self)
    }

    /// C = alpha * op(A) * op(B) + beta * C, row-major, through BLAS (`sgemm` / `dgemm`).
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int
    ) {
        _kernels.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// out[i] = op(x[i]).
    static func map(_ op: UnaryOp<Self>, _ x: UnsafeBufferPointer<Self>, _ out: UnsafeMutableBufferPointer<Self>) {
        _kernels.map(op, x, out)
    }

    /// dst[i] += src[i] for i in 0..<count (gradient accumulation).
    static func accumulate(_ src: UnsafePointer<Self>, into dst: UnsafeMutablePointer<Self>, count: Int) {
        _kernels.accumulate(src, dst, count)
    }

    /// dx[i] = y[i] > 0 ? g[i] : 0: the gradient of relu given its output y.
    static func reluBackward(_ g: UnsafePointer<Self>, _ y: UnsafePointer<Self>, _ dx: UnsafeMutablePointer<Self>,
                             count: Int) {
        _kernels.reluBackward(g, y, dx, count)
    }

    /// dst[i] = src[indices[i]] for i in 0..<count.
    static func gather(_ src: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>, _ dst: UnsafeMutablePointer<Self>,
                       count: Int) {
        _kernels.gather(src, indices, dst, count)
    }

    /// dst[indices[i]] += src[i] for i in 0..<count, in order of i (the adjoint of `gather`); every index lies in
    /// 0..<destinationCount.
    static func scatterAdd(_ src: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>,
                           _ dst: UnsafeMutablePointer<Self>, count: Int, destinationCount: Int) {
        _kernels.scatterAdd(src, indices, dst, count, destinationCount)
    }

    /// out = op(a, b) over `shape`, reading a and b through strides (0 on broadcast axes); out is contiguous.
    static func zip(_ op: BinaryOp, _ a: UnsafePointer<Self>, _ aStrides: [Int], _ b: UnsafePointer<Self>,
                    _ bStrides: [Int], _ out: UnsafeMutablePointer<Self>, shape: [Int]) {
        _kernels.zip(op, a, aStrides, b, bStrides, out, shape)
    }

    /// Copies (or adds, when `accumulate`) the strided view `src[srcOffset + i . srcStrides]` over `shape` into
    /// `dst[dstOffset + i . dstStrides]`. Strides may be negative (flip) or zero (expand, on the source side).
    static func stridedCopy(_ src: UnsafePointer<Self>, srcOffset: Int, srcStrides: [Int],
                            _ dst: UnsafeMutablePointer<Self>, dstOffset: Int, dstStrides: [Int],
                            shape: [Int], accumulate: Bool) {
        _kernels.stridedCopy(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape, accumulate)
    }

    /// Reduces `src` of `shape` over the axes where `reduced` is true into a contiguous `dst` (those axes of size 1).
    static func reduce(_ op: ReduceOp, _ src: UnsafePointer<Self>, shape: [Int], reduced: [Bool],
                       _ dst: UnsafeMutablePointer<Self>) {
        _kernels.reduce(op, src, shape, reduced, dst)
    }

    /// Unfolds image patches into columns (`Kernels/ConvolutionKernels.swift`): `columns` is
    /// (channels * kernelHeight * kernelWidth, batch * outputHeight * outputWidth), row-major; row
    /// (c, i, j) column (n, oy, ox) holds input[n, c, oy * strideH - padH + i * dilationH,
    /// ox * strideW - padW + j * dilationW], or 0 in the padding. Every element of `columns` is written.
    static func im2col(_ input: UnsafePointer<Self>, _ columns: UnsafeMutablePointer<Self>,
                       geometry: ConvolutionGeometry) {
        _kernels.im2col(input, columns, geometry)
    }

    /// The adjoint of `im2col`: adds every column entry into the input position it was read from (padding
    /// entries are dropped). `input` is (batch, channels, height, width) and is accumulated into, not cleared.
    static func col2im(_ columns: UnsafePointer<Self>, _ input: UnsafeMutablePointer<Self>,
                       geometry: ConvolutionGeometry) {
        _kernels.col2im(columns, input, geometry)
    }

    /// Convolution by im2col and GEMM over chunks of images (`Kernels/ConvolutionKernels.swift`): `input`
    /// (N, C, H, W), `weight` (K, C, kh, kw), optional `bias` (K), into `output` (N, K, outH, outW).
    static func convolutionForward(_ input: UnsafePointer<Self>, weight: UnsafePointer<Self>,
                                   bias: UnsafePointer<Self>?, _ output: UnsafeMutablePointer<Self>,
                                   outChannels: Int, geometry: ConvolutionGeometry) {
        _kernels.convolutionForward(input, weight, bias, output, outChannels, geometry)
    }

    /// The gradients of `convolutionForward` for `gradOutput` (N, Cout, outH, outW) in one pass over it: each of
    /// `gradInput` (N, C, H, W), `gradWeight` (Cout, C, kh, kw) and `gradBias` (Cout) that is given is written (not
    /// accumulated). `input` is needed for `gradWeight`, `weight` for `gradInput`. The weight gradient is a sum of
    /// products of the inputs and output gradients, so a weight whose inputs or outputs are all zero gets an exact
    /// zero.
    static func convolutionBackward(_ gradOutput: UnsafePointer<Self>, input: UnsafePointer<Self>?,
                                    weight: UnsafePointer<Self>?, gradInput: UnsafeMutablePointer<Self>?,
                                    gradWeight: UnsafeMutablePointer<Self>?, gradBias: UnsafeMutablePointer<Self>?,
                                    outChannels: Int, geometry: ConvolutionGeometry) {
        _kernels.convolutionBackward(gradOutput, input, weight, gradInput, gradWeight, gradBias, outChannels, geometry)
    }

    /// Winograd F(3x3, 3x3) transformed filters (`Kernels/WinogradKernels.swift`): `weight` (K, C, 3, 3) into
    /// `filters` of `geometry.filterCount` elements, laid out [25 positions][C][K rounded up to 8].
    static func winogradFilters(_ weight: UnsafePointer<Self>, _ filters: UnsafeMutablePointer<Self>,
                                geometry: WinogradGeometry) {
        _kernels.winogradFilters(weight, filters, geometry)
    }

    /// 3x3 convolution with stride 1 (cross-correlation, zero padding) of `input` (N, C, H, W) with the transformed
    /// filters, plus `bias` (K) when given, into `output` (N, K, outH, outW); every output element is written.
    static func winogradForward(_ input: UnsafePointer<Self>, filters: UnsafePointer<Self>,
                                bias: UnsafePointer<Self>?, _ output: UnsafeMutablePointer<Self>,
                                geometry: WinogradGeometry) {
        _kernels.winogradForward(input, filters, bias, output, geometry)
    }

    /// The gradients of `winogradForward` for the output gradient `gradOutput` (N, K, outH, outW), each written (not
    /// accumulated) when its destination is given: `gradInput` (N, C, H, W) from the same transformed `filters`;
    /// `gradWeight` (K, C, 3, 3) from the forward `input`, with an exact zero wherever the direct sum has no nonzero
    /// term; `gradBias` (K), the sum of `gradOutput` over images and positions.
    static func winogradBackward(_ gradOutput: UnsafePointer<Self>, filters: UnsafePointer<Self>?,
                                 input: UnsafePointer<Self>?, gradInput: UnsafeMutablePointer<Self>?,
                                 gradWeight: UnsafeMutablePointer<Self>?, gradBias: UnsafeMutablePointer<Self>?,
                                 geometry: WinogradGeometry) {
        _kernels.winogradBackward(gradOutput, filters, input, gradInput, gradWeight, gradBias, geometry)
    }

    /// dst[b, a, l] = src[a, b, l] (+ bias[a] when `bias` is given) for src of shape (outer, middle, inner):
    /// swaps the two leading axes of a contiguous tensor (the convolution's channel / batch reordering).
    static func swapLeadingAxes(_ src: UnsafePointer<Self>, _ dst: UnsafeMutablePointer<Self>,
                                outer: Int, middle: Int, inner: Int, bias: UnsafePointer<Self>?) {
        _kernels.swapLeadingAxes(src, dst, outer, middle, inner, bias)
    }

    /// Max pooling over (planes, depth, height, width) (`Kernels/PoolingKernels.swift`): writes each window's
    /// maximum and, when `indices` is given, the flat in-plane index (d * height * width + h * width + w) of the
    /// first maximum in scan order; a NaN in a window wins. Padding positions never win. The values are the same
    /// bits with and without the indices.
    static func maxPool(_ input: UnsafePointer<Self>, _ output: UnsafeMutablePointer<Self>,
                        _ indices: UnsafeMutablePointer<Int32>?, geometry: PoolingGeometry) {
        _kernels.maxPool(input, output, indices, geometry)
    }

    /// The adjoint of `maxPool`: writes `gradInput`, each output gradient added into its recorded argmax of a
    /// cleared plane.
    static func maxPoolBackward(_ gradOutput: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>,
                                _ gradInput: UnsafeMutablePointer<Self>, geometry: PoolingGeometry) {
        _kernels.maxPoolBackward(gradOutput, indices, gradInput, geometry)
    }

    /// Sets the bits of the nonzero values (NaN included) of the rows of `block` in their planes' masks (see
    /// `CKNonzeroBlock`; bit b is bit b % 64 of word b / 64); leaves the other bits as they are.
    static func markNonzero(_ src: UnsafePointer<Self>, _ block: CKNonzeroBlock, _ bits: UnsafeMutablePointer<UInt64>) {
        _kernels.markNonzero(src, block, bits)
    }

    /// Copies the rows of `block` from `src` to `dst` (im2col's short rows, a block of planes at a time).
    static func copyRows(_ src: UnsafePointer<Self>, _ block: RowBlock, _ dst: UnsafeMutablePointer<Self>) {
        _kernels.copyRows(src, block, dst)
    }

    /// Adds the rows of `block` from `src` onto `dst` (col2im's short rows, a block of planes at a time).
    static func addRows(_ src: UnsafePointer<Self>, _ block: RowBlock, _ dst: UnsafeMutablePointer<Self>) {
        _kernels.addRows(src, block, dst)
    }

    /// y = log_softmax(x) along the middle axis of a contiguous (outer, size, inner) tensor
    /// (`Kernels/LossKernels.swift`), stabilised by subtracting each line's maximum.
    static func logSoftmax(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>,
                           outer: Int, size: Int, inner: Int) {
        _kernels.logSoftmax(x, y, outer, size, inner)
    }

    /// dx = g - exp(y) * sum(g) along the middle axis, given the forward result y = log_softmax(x).
    static func logSoftmaxBackward(_ g: UnsafePointer<Self>, _ y: UnsafePointer<Self>,
                                   _ dx: UnsafeMutablePointer<Self>, outer: Int, size: Int, inner: Int) {
        _kernels.logSoftmaxBackward(g, y, dx, outer, size, inner)
    }

    /// Cross-entropy of logits (rows, classes) against class indices in 0..<classes: writes each row's softmax
    /// into `probabilities` and returns the sum over rows of -log softmax[row, target[row]].
    static func crossEntropy(_ logits: UnsafePointer<Self>, targets: UnsafePointer<Int>, rows: Int, classes: Int,
                             _ probabilities: UnsafeMutablePointer<Self>) -> Self {
        _kernels.crossEntropy(logits, targets, rows, classes, probabilities)
    }

    /// dx = scale * (probabilities - onehot(targets)), for the gradient of `crossEntropy`.
    static func crossEntropyBackward(_ probabilities: UnsafePointer<Self>, targets: UnsafePointer<Int>,
                                     rows: Int, classes: Int, scale: Self, _ dx: UnsafeMutablePointer<Self>) {
        _kernels.crossEntropyBackward(probabilities, targets, rows, classes, scale, dx)
    }
}
