import CKernels

// MARK: - CPU-dispatched Float kernels
//
// SwiftPM compiles Swift for the architecture's baseline (SSE2 on x86-64), so Swift's SIMD8 code runs as pairs of
// 4-lane instructions without FMA. The flat Float loops below call the C target CKernels instead, whose functions
// carry baseline, AVX2+FMA and AVX-512 variants chosen once at the first call from the CPU's features (or forced
// with GROUPCONV_KERNELS=baseline|avx2|avx512). Every path gives the same bits, but for the narrow products (see
// CKernels.h). Float's kernel table (`TensorScalar.swift`) holds these; Double keeps the generic kernels.

/// Which variant of the CPU-dispatched kernels runs.
public enum CPUKernels {
    /// "baseline", "avx2+fma" or "avx512f": the path chosen from the CPU's features and GROUPCONV_KERNELS.
    public static var path: String { String(cString: ck_path_name()) }

    /// Makes the kernels run the baseline path (`baseline: true`) or the best the CPU supports; returns the path's
    /// name. For tests that compare the paths.
    @discardableResult
    static func select(baseline: Bool) -> String {
        ck_set_path(baseline ? CKPathBaseline : ck_best_path())
        return path
    }

    /// Runs `body` once on every path the CPU supports, baseline first (on an AVX-512 machine: baseline, AVX2,
    /// AVX-512), then selects the best path again; the paths' names with the results. For tests that compare them.
    static func onEveryPath<T>(_ body: () throws -> T) rethrows -> [(path: String, value: T)] {
        defer { ck_set_path(ck_best_path()) }
        var results: [(path: String, value: T)] = []
        for raw in CKPathBaseline.rawValue...ck_best_path().rawValue {
            ck_set_path(CKPath(rawValue: raw))
            results.append((path, try body()))
        }
        return results
    }
}

extension Float {
    /// The flat elementwise loops' split over threads: at least this many elements per thread.
    private static let flatMinimum = 1 << 15

    static func accumulateDispatched(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minimumPerThread: flatMinimum) { range in
            ck_accumulate(src + range.lowerBound, dst + range.lowerBound, range.count)
        }
    }

    static func reluDispatched(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minimumPerThread: flatMinimum) { range in
            ck_relu(x + range.lowerBound, y + range.lowerBound, range.count)
        }
    }

    static func reluBackwardDispatched(_ g: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                       _ dx: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minimumPerThread: flatMinimum) { range in
            ck_relu_backward(g + range.lowerBound, y + range.lowerBound, dx + range.lowerBound, range.count)
        }
    }

    /// relu and scaling through the dispatched kernels; the other unary ops as Float's lane-mask or generic ones.
    static func mapDispatched(_ op: UnaryOp<Float>, _ x: UnsafeBufferPointer<Float>,
                              _ out: UnsafeMutableBufferPointer<Float>) {
        guard x.count > 0, let xp = x.baseAddress, let o = out.baseAddress else { return }
        switch op {
        case .relu: reluDispatched(xp, o, count: x.count)
        case .scale(let s):
            Parallel.forRanges(x.count, minimumPerThread: flatMinimum) { range in
                ck_scale(xp + range.lowerBound, s, o + range.lowerBound, range.count)
            }
        default: mapGeneric(op, x, out)
        }
    }

    /// `zip` with the flat loop of two contiguous operands dispatched; broadcasting and `maximumShare` generic.
    static func zipDispatched(_ op: BinaryOp, _ a: UnsafePointer<Float>, _ aStrides: [Int], _ b: UnsafePointer<Float>,
                              _ bStrides: [Int], _ out: UnsafeMutablePointer<Float>, shape: [Int]) {
        let code: CKBinaryOp
        switch op {
        case .add: code = CKBinaryAdd
        case .sub: code = CKBinarySub
        case .mul: code = CKBinaryMul
        case .div: code = CKBinaryDiv
        case .maximum: code = CKBinaryMax
        case .minimum: code = CKBinaryMin
        case .maximumShare:
            zipKernel(op, a, aStrides, b, bStrides, out, shape: shape)
            return
        }
        let contiguous = ShapeMath.strides(shape)
        guard aStrides == contiguous && bStrides == contiguous else {
            zipKernel(op, a, aStrides, b, bStrides, out, shape: shape)
            return
        }
        let count = shape.reduce(1, *)
        Parallel.forRanges(count, minimumPerThread: flatMinimum) { range in
            ck_binary(code, a + range.lowerBound, b + range.lowerBound, out + range.lowerBound, range.count)
        }
    }

    /// (outer, middle, inner) -> (middle, outer, inner), adding bias[outer index] when given (the convolution's
    /// output pass).
    static func swapLeadingAxesDispatched(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                          outer: Int, middle: Int, inner: Int, bias: UnsafePointer<Float>?) {
        let rows = outer * middle
        guard rows > 0, inner > 0 else { return }
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, flatMinimum / inner)) { range in
            for r in range {
                let a = r / middle, b = r % middle
                ck_shift_copy(src + r * inner, bias?[a] ?? 0, dst + (b * outer + a) * inner, inner)
            }
        }
    }

    /// Max pooling of every plane by the CKernels: `ck_max_pool3s2` for the models' (1, 3, 3) windows at stride
    /// (1, 2, 2) with padding (0, 1, 1) (`ck_max_pool3s2_values` without indices), `ck_max_pool_plane` for the rest
    /// (two vector passes per output row: each window column's best over the window's rows, then each output's best
    /// column). The planes of a call holding a NaN are redone by the scalar scan, whose NaN rule the vector passes do
    /// not follow, and without indices those holding a -0 are redone with them (they decide its ties with +0). The
    /// same results as `maxPoolScanning`. Without `indices`, the kernels that write indices write them into a
    /// scratch of the task's.
    static func maxPoolDispatched(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
                                  _ indices: UnsafeMutablePointer<Int32>?, geometry g: PoolingGeometry) {
        let out = g.outputSize
        let inPlane = g.inputPlane, outPlane = g.outputPlane
        guard outPlane > 0 else { return }
        var plane = CKPoolPlane(
            depth: g.depth, height: g.height, width: g.width, kernelDepth: g.kernel[0], kernelHeight: g.kernel[1],
            kernelWidth: g.kernel[2], strideDepth: g.stride[0], strideHeight: g.stride[1], strideWidth: g.stride[2],
            padDepth: g.padding[0], padHeight: g.padding[1], padWidth: g.padding[2], outDepth: out[0],
            outHeight: out[1], outWidth: out[2])
        let strideTwo = g.kernel == [1, 3, 3] && g.stride == [1, 2, 2] && g.padding == [0, 1, 1]
        // ck_max_pool3s2 takes as many planes at once as fill one block of its output rows (small planes share a
        // pass); ck_max_pool_plane one.
        let perCall = strideTwo
            ? Swift.max(1, ck_max_pool3s2_block_rows(2048, g.height, g.width) / (g.depth * out[1])) : 1
        // The kernel's scratch: ck_max_pool3s2's blocks, or ck_max_pool_plane's column buffers (values and indices).
        let columns = g.width + 2 * g.padding[2]
        let kernelScratch = strideTwo ? ck_max_pool3s2_scratch(perCall * g.depth, g.height, g.width) : 2 * columns
        let ownIndices = indices == nil ? perCall * outPlane : 0
        withUnsafePointer(to: &plane) { plane in
            Parallel.forRanges(g.planes, minimumPerThread: Swift.max(1, (1 << 14) / Swift.max(1, inPlane))) { range in
                BufferPool.withScratch(Float.self, count: kernelScratch + ownIndices) { scratch in
                    let colValue = scratch
                    let colIndex = UnsafeMutableRawPointer(scratch + columns).bindMemory(to: Int32.self,
                                                                                         capacity: columns)
                    if !strideTwo {
                        // Padding columns -inf with the largest index (the kernel writes the middle).
                        colValue.update(repeating: -Float.infinity, count: columns)
                        colIndex.update(repeating: Int32.max, count: columns)
                    }
                    let ownIndex = UnsafeMutableRawPointer(scratch + kernelScratch).bindMemory(
                        to: Int32.self, capacity: ownIndices)
                    for p in stride(from: range.lowerBound, to: range.upperBound, by: perCall) {
                        let count = Swift.min(perCall, range.upperBound - p)
                        let (src, o) = (input + p * inPlane, output + p * outPlane)
                        let i = indices.map { $0 + p * outPlane } ?? ownIndex
                        let nan: Bool
                        if strideTwo {
                            // Without indices, the values alone unless a plane has a NaN or a -0.
                            nan = (indices != nil || ck_max_pool3s2_values(src, o, count, g.depth, g.height, g.width,
                                                                           scratch) != 0)
                                && ck_max_pool3s2(src, o, i, count, g.depth, g.height, g.width, scratch) != 0
                        } else {
                            nan = ck_max_pool_plane(src, o, i, plane, colValue, colIndex) != 0
                        }
                        if nan {
                            var these = g
                            these.planes = count
                            maxPoolScanning(src, o, i, geometry: these)
                        }
                    }
                }
            }
        }
    }

    /// `markNonzero` by `ck_mark_nonzero` (eight compares to one mask byte at a time).
    static func markNonzeroDispatched(_ src: UnsafePointer<Float>, _ block: CKNonzeroBlock,
                                      _ bits: UnsafeMutablePointer<UInt64>) {
        var b = block
        ck_mark_nonzero(src, &b, bits)
    }

    /// `copyRows` by `ck_copy_rows` (short rows' tails as masked vectors on AVX-512, as one overlapping vector
    /// elsewhere).
    static func copyRowsDispatched(_ src: UnsafePointer<Float>, _ block: RowBlock, _ dst: UnsafeMutablePointer<Float>) {
        var b = block.c
        ck_copy_rows(src, &b, dst)
    }

    /// `addRows` by `ck_add_rows` (short rows' tails as one overlapping vector on every path).
    static func addRowsDispatched(_ src: UnsafePointer<Float>, _ block: RowBlock, _ dst: UnsafeMutablePointer<Float>) {
        var b = block.c
        ck_add_rows(src, &b, dst)
    }
}

extension RowBlock {
    /// The same block for the C kernels.
    var c: CKRowBlock {
        CKRowBlock(planes: planes, rows: rows, width: width, srcPlaneStride: source.plane, srcRowStride: source.row,
                   dstPlaneStride: destination.plane, dstRowStride: destination.row)
    }
}
