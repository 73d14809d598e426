import CBLAS
import Foundation

/// The element types a `Tensor` can hold: `Float` (the framework's working precision) and `Double` (for gradient
/// checks).
///
/// Ops are written once, generically; every loop over elements lives in a kernel (`Kernels/`) declared here as a
/// static requirement. Calling a kernel through the protocol dispatches once per op to code the compiler has
/// specialised for the concrete element type, so generic op code stays fast even when called from other modules.
public protocol TensorScalar: BinaryFloatingPoint, SIMDScalar, Codable, Sendable, CustomStringConvertible
where Self.RawSignificand: FixedWidthInteger {
    /// Name used in messages and files: "F32" or "F64".
    static var dtypeName: String { get }

    /// True when `conv2d` with `.fastest` takes the Winograd kernels for the 3x3 stride-1 convolutions they
    /// support: for `Float`; `Double` (used for gradient checks) keeps the exact im2col path.
    static var prefersWinograd: Bool { get }

    /// C = alpha * op(A) * op(B) + beta * C, row-major, through BLAS (`sgemm` / `dgemm`).
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// e^x of one element.
    static func exp(_ x: Self) -> Self
    /// The natural logarithm of one element.
    static func log(_ x: Self) -> Self

    // MARK: - Kernels (implemented once, generically, in Kernels/)

    /// out[i] = op(x[i]).
    static func map(_ op: UnaryOp<Self>, _ x: UnsafeBufferPointer<Self>, _ out: UnsafeMutableBufferPointer<Self>)

    /// dst[i] += src[i] for i in 0..<count (gradient accumulation).
    static func accumulate(_ src: UnsafePointer<Self>, into dst: UnsafeMutablePointer<Self>, count: Int)

    /// dx[i] = y[i] > 0 ? g[i] : 0: the gradient of relu given its output y.
    static func reluBackward(_ g: UnsafePointer<Self>, _ y: UnsafePointer<Self>, _ dx: UnsafeMutablePointer<Self>,
                             count: Int)

    /// dst[i] = src[indices[i]] for i in 0..<count.
    static func gather(_ src: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>, _ dst: UnsafeMutablePointer<Self>,
                       count: Int)

    /// dst[indices[i]] += src[i] for i in 0..<count, in order (the adjoint of `gather`).
    static func scatterAdd(_ src: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>,
                           _ dst: UnsafeMutablePointer<Self>, count: Int)

    /// out = op(a, b) over `shape`, reading a and b through strides (0 on broadcast axes); out is contiguous.
    static func zip(_ op: BinaryOp, _ a: UnsafePointer<Self>, _ aStrides: [Int], _ b: UnsafePointer<Self>,
                    _ bStrides: [Int], _ out: UnsafeMutablePointer<Self>, shape: [Int])

    /// Copies (or adds, when `accumulate`) the strided view `src[srcOffset + i . srcStrides]` over `shape` into
    /// `dst[dstOffset + i . dstStrides]`. Strides may be negative (flip) or zero (expand, on the source side).
    static func stridedCopy(_ src: UnsafePointer<Self>, srcOffset: Int, srcStrides: [Int],
                            _ dst: UnsafeMutablePointer<Self>, dstOffset: Int, dstStrides: [Int],
                            shape: [Int], accumulate: Bool)

    /// Reduces `src` of `shape` over the axes where `reduced` is true into a contiguous `dst` (those axes of size 1).
    static func reduce(_ op: ReduceOp, _ src: UnsafePointer<Self>, shape: [Int], reduced: [Bool],
                       _ dst: UnsafeMutablePointer<Self>)

    /// Unfolds image patches into columns (`Kernels/ConvolutionKernels.swift`): `columns` is
    /// (channels * kernelHeight * kernelWidth, batch * outputHeight * outputWidth), row-major; row
    /// (c, i, j) column (n, oy, ox) holds input[n, c, oy * strideH - padH + i * dilationH,
    /// ox * strideW - padW + j * dilationW], or 0 in the padding. Every element of `columns` is written.
    static func im2col(_ input: UnsafePointer<Self>, _ columns: UnsafeMutablePointer<Self>,
                       geometry: ConvolutionGeometry)

    /// The adjoint of `im2col`: adds every column entry into the input position it was read from (padding
    /// entries are dropped). `input` is (batch, channels, height, width) and is accumulated into, not cleared.
    static func col2im(_ columns: UnsafePointer<Self>, _ input: UnsafeMutablePointer<Self>,
                       geometry: ConvolutionGeometry)

    /// Convolution by im2col and GEMM over chunks of images (`Kernels/ConvolutionKernels.swift`): `input`
    /// (N, C, H, W), `weight` (K, C, kh, kw), optional `bias` (K), into `output` (N, K, outH, outW).
    static func convolutionForward(_ input: UnsafePointer<Self>, weight: UnsafePointer<Self>,
                                   bias: UnsafePointer<Self>?, _ output: UnsafeMutablePointer<Self>,
                                   outChannels: Int, geometry: ConvolutionGeometry)

    /// The input gradient of `convolutionForward` for `gradOutput`, written (not accumulated) to `gradInput`.
    static func convolutionGradInput(_ gradOutput: UnsafePointer<Self>, weight: UnsafePointer<Self>,
                                     _ gradInput: UnsafeMutablePointer<Self>, outChannels: Int,
                                     geometry: ConvolutionGeometry)

    /// The weight gradient of `convolutionForward` for `gradOutput`, written (not accumulated) to `gradWeight`.
    /// Sums of products of the inputs and output gradients, so a weight whose inputs or outputs are all zero gets an
    /// exact zero.
    static func convolutionGradWeight(_ gradOutput: UnsafePointer<Self>, input: UnsafePointer<Self>,
                                      _ gradWeight: UnsafeMutablePointer<Self>, outChannels: Int,
                                      geometry: ConvolutionGeometry)

    /// sums[c] = the sum of x[n, c, l] over n and l, for x (batch, channels, plane): a convolution's bias gradient.
    static func channelSums(_ x: UnsafePointer<Self>, _ sums: UnsafeMutablePointer<Self>, batch: Int, channels: Int,
                            plane: Int)

    /// Winograd F(3x3, 3x3) transformed filters (`Kernels/WinogradKernels.swift`): `weight` (K, C, 3, 3) into
    /// `filters` of `geometry.filterCount` elements, laid out [25 positions][C][K rounded up to 8].
    static func winogradFilters(_ weight: UnsafePointer<Self>, _ filters: UnsafeMutablePointer<Self>,
                                geometry: WinogradGeometry)

    /// 3x3 convolution with stride 1 (cross-correlation, zero padding) of `input` (N, C, H, W) with the transformed
    /// filters, plus `bias` (K) when given, into `output` (N, K, outH, outW); every output element is written.
    static func winogradForward(_ input: UnsafePointer<Self>, filters: UnsafePointer<Self>,
                                bias: UnsafePointer<Self>?, _ output: UnsafeMutablePointer<Self>,
                                geometry: WinogradGeometry)

    /// The gradients of `winogradForward` for the output gradient `gradOutput` (N, K, outH, outW), each written (not
    /// accumulated) when its destination is given: `gradInput` (N, C, H, W) from the same transformed `filters`;
    /// `gradWeight` (K, C, 3, 3) from the forward `input`, with an exact zero wherever the direct sum has no nonzero
    /// term; `gradBias` (K), the sum of `gradOutput` over images and positions.
    static func winogradBackward(_ gradOutput: UnsafePointer<Self>, filters: UnsafePointer<Self>?,
                                 input: UnsafePointer<Self>?, gradInput: UnsafeMutablePointer<Self>?,
                                 gradWeight: UnsafeMutablePointer<Self>?, gradBias: UnsafeMutablePointer<Self>?,
                                 geometry: WinogradGeometry)

    /// dst[b, a, l] = src[a, b, l] (+ bias[a] when `bias` is given) for src of shape (outer, middle, inner):
    /// swaps the two leading axes of a contiguous tensor (the convolution's channel / batch reordering).
    static func swapLeadingAxes(_ src: UnsafePointer<Self>, _ dst: UnsafeMutablePointer<Self>,
                                outer: Int, middle: Int, inner: Int, bias: UnsafePointer<Self>?)

    /// Max pooling over (planes, depth, height, width) (`Kernels/PoolingKernels.swift`): writes each window's
    /// maximum and the flat in-plane index (d * height * width + h * width + w) of the first maximum in scan order;
    /// a NaN in a window wins. Padding positions never win.
    static func maxPool(_ input: UnsafePointer<Self>, _ output: UnsafeMutablePointer<Self>,
                        _ indices: UnsafeMutablePointer<Int32>, geometry: PoolingGeometry)

    /// The adjoint of `maxPool`: adds each output gradient into its recorded argmax of `gradInput` (accumulated
    /// into, not cleared).
    static func maxPoolBackward(_ gradOutput: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>,
                                _ gradInput: UnsafeMutablePointer<Self>, geometry: PoolingGeometry)

    /// y = log_softmax(x) along the middle axis of a contiguous (outer, size, inner) tensor
    /// (`Kernels/LossKernels.swift`), stabilised by subtracting each line's maximum.
    static func logSoftmax(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>,
                           outer: Int, size: Int, inner: Int)

    /// dx = g - exp(y) * sum(g) along the middle axis, given the forward result y = log_softmax(x).
    static func logSoftmaxBackward(_ g: UnsafePointer<Self>, _ y: UnsafePointer<Self>,
                                   _ dx: UnsafeMutablePointer<Self>, outer: Int, size: Int, inner: Int)

    /// Cross-entropy of logits (rows, classes) against class indices in 0..<classes: writes each row's softmax
    /// into `probabilities` and returns the sum over rows of -log softmax[row, target[row]].
    static func crossEntropy(_ logits: UnsafePointer<Self>, targets: UnsafePointer<Int>, rows: Int, classes: Int,
                             _ probabilities: UnsafeMutablePointer<Self>) -> Self

    /// dx = scale * (probabilities - onehot(targets)), for the gradient of `crossEntropy`.
    static func crossEntropyBackward(_ probabilities: UnsafePointer<Self>, targets: UnsafePointer<Int>,
                                     rows: Int, classes: Int, scale: Self, _ dx: UnsafeMutablePointer<Self>)
}

extension Float: TensorScalar {
    /// "F32".
    public static var dtypeName: String { "F32" }
    /// True: the Winograd kernels are accurate enough in Float.
    public static var prefersWinograd: Bool { true }

    /// C = alpha op(A) op(B) + beta C through `cblas_sgemm`, row-major.
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        BLASLibrary.prepare()
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// e^x through `expf`.
    @inline(__always) public static func exp(_ x: Float) -> Float { Foundation.expf(x) }
    /// ln x through `logf`.
    @inline(__always) public static func log(_ x: Float) -> Float { Foundation.logf(x) }
}

extension Double: TensorScalar {
    /// "F64".
    public static var dtypeName: String { "F64" }
    /// False: Double runs the exact im2col path (gradient checks want the direct sums).
    public static var prefersWinograd: Bool { false }

    /// C = alpha op(A) op(B) + beta C through `cblas_dgemm`, row-major.
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        BLASLibrary.prepare()
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// e^x through `exp`.
    @inline(__always) public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    /// ln x through `log`.
    @inline(__always) public static func log(_ x: Double) -> Double { Foundation.log(x) }
}
