import Foundation

// MARK: - Operation codes

/// A one-input elementwise function, applied by `TensorScalar.map`.
enum UnaryOp<Scalar: TensorScalar> {
    case neg, exp, log, sqrt, relu
    /// 1 where x > 0, else 0 (the derivative of relu, 0 at 0 as in PyTorch).
    case positiveMask
    /// x * s
    case scale(Scalar)
    /// x + s
    case shift(Scalar)
    /// x raised to an integer or real power.
    case power(Scalar)
    /// min(max(x, low), high)
    case clamp(Scalar, Scalar)
    /// 1 where low < x < high, else 0: the derivative of clamp, 0 at the bounds as in PyTorch; an infinite bound
    /// (an absent one) admits every x on its side. The bounds are compared in Double, as given.
    case inRangeMask(Double, Double)
    /// |x|, and sign(x) in {-1, 0, 1} (its derivative, 0 at 0 as in PyTorch).
    case abs, sign
    case tanh
    /// 1 / (1 + e^-x).
    case sigmoid
    /// log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|).
    case softplus
    /// x * Phi(x) with Phi the standard normal CDF (the exact GELU), and its derivative Phi(x) + x phi(x).
    case gelu, geluDerivative
    /// The tanh approximation of GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), and its derivative.
    case geluTanh, geluTanhDerivative
    /// x > 0 ? x : slope * x, and its derivative x > 0 ? 1 : slope.
    case leakyRelu(Scalar), leakyReluDerivative(Scalar)
    /// x where finite, else 0 (the shift of logsumexp).
    case finiteOrZero
}

/// A two-input elementwise function, applied by `TensorScalar.zip` with broadcasting.
enum BinaryOp {
    case add, sub, mul, div, maximum, minimum
    /// 1 where a > b, 0.5 where a == b, else 0: the share of d max(a, b) / da.
    case maximumShare
}

/// A reduction over axes, applied by `TensorScalar.reduce`.
enum ReduceOp { case sum, max, min, prod }

// MARK: - Kernels

extension TensorScalar {
    static func mapKernel(_ op: UnaryOp<Self>, _ x: UnsafeBufferPointer<Self>,
                           _ out: UnsafeMutableBufferPointer<Self>) {
        mapGeneric(op, x, out)
    }

    static func mapGeneric(_ op: UnaryOp<Self>, _ x: UnsafeBufferPointer<Self>,
                           _ out: UnsafeMutableBufferPointer<Self>) {
        guard x.count > 0, let base = x.baseAddress, let outBase = out.baseAddress else { return }
        Parallel.forRanges(x.count, minimumPerThread: 1 << 15) { range in
            mapRange(op, base + range.lowerBound, outBase + range.lowerBound, range.count)
        }
    }

    private static func mapRange(_ op: UnaryOp<Self>, _ xp: UnsafePointer<Self>, _ o: UnsafeMutablePointer<Self>,
                                 _ n: Int) {
        switch op {
        case .neg: for i in 0..<n { o[i] = -xp[i] }
        case .exp: for i in 0..<n { o[i] = Self.exp(xp[i]) }
        case .log: for i in 0..<n { o[i] = Self.log(xp[i]) }
        case .sqrt: for i in 0..<n { o[i] = xp[i].squareRoot() }
        case .relu: for i in 0..<n { o[i] = xp[i] > 0 ? xp[i] : 0 }
        case .positiveMask: for i in 0..<n { o[i] = xp[i] > 0 ? 1 : 0 }
        case .scale(let s): for i in 0..<n { o[i] = xp[i] * s }
        case .shift(let s): for i in 0..<n { o[i] = xp[i] + s }
        case .power(let p):
            if p == 2 {
                for i in 0..<n { o[i] = xp[i] * xp[i] }
            } else {
                for i in 0..<n { o[i] = Self(Foundation.pow(Double(xp[i]), Double(p))) }
            }
        case .clamp(let low, let high): for i in 0..<n { o[i] = Swift.min(Swift.max(xp[i], low), high) }
        case .inRangeMask(let low, let high):
            let (noLow, noHigh) = (low == -.infinity, high == .infinity)
            for i in 0..<n {
                let x = Double(xp[i])
                o[i] = (noLow || x > low) && (noHigh || x < high) ? 1 : 0
            }
        case .abs: for i in 0..<n { o[i] = Swift.abs(xp[i]) }
        case .sign: for i in 0..<n { o[i] = xp[i] > 0 ? 1 : (xp[i] < 0 ? -1 : 0) }
        case .leakyRelu(let slope): for i in 0..<n { o[i] = xp[i] > 0 ? xp[i] : xp[i] * slope }
        case .leakyReluDerivative(let slope): for i in 0..<n { o[i] = xp[i] > 0 ? 1 : slope }
        case .finiteOrZero: for i in 0..<n { o[i] = xp[i].isFinite ? xp[i] : 0 }
        case .tanh, .sigmoid, .softplus, .gelu, .geluDerivative, .geluTanh, .geluTanhDerivative:
            // Transcendental functions in Double: exact to the last bit of Float, and at Double's own precision.
            for i in 0..<n { o[i] = Self(Self.transcendental(op, Double(xp[i]))) }
        }
    }

    /// The transcendental unary ops on one value.
    private static func transcendental(_ op: UnaryOp<Self>, _ x: Double) -> Double {
        let sqrtHalf = 0.70710678118654752440, inverseSqrt2Pi = 0.39894228040143267794
        let sqrt2OverPi = 0.79788456080286535588, c = 0.044715
        switch op {
        case .tanh: return Foundation.tanh(x)
        case .sigmoid: return x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x))
        case .softplus: return Swift.max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
        case .gelu: return 0.5 * x * Foundation.erfc(-x * sqrtHalf)
        case .geluDerivative:
            return 0.5 * Foundation.erfc(-x * sqrtHalf) + x * inverseSqrt2Pi * Foundation.exp(-0.5 * x * x)
        case .geluTanh: return 0.5 * x * (1 + Foundation.tanh(sqrt2OverPi * (x + c * x * x * x)))
        case .geluTanhDerivative:
            let t = Foundation.tanh(sqrt2OverPi * (x + c * x * x * x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * sqrt2OverPi * (1 + 3 * c * x * x)
        default: preconditionFailure("transcendental: \(op) is not a transcendental op")
        }
    }

    static func accumulateKernel(_ src: UnsafePointer<Self>, into dst: UnsafeMutablePointer<Self>, count: Int) {
        Parallel.forRanges(count, minimumPerThread: 1 << 15) { range in
            let (start, end) = (range.lowerBound, range.upperBound)
            var i = start
            while i + 8 <= end {
                store8(load8(dst + i) + load8(src + i), dst + i)
                i += 8
            }
            while i < end { dst[i] += src[i]; i += 1 }
        }
    }

    static func gatherKernel(_ src: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>,
                              _ dst: UnsafeMutablePointer<Self>, count: Int) {
        Parallel.forRanges(count, minimumPerThread: 1 << 15) { range in
            for i in range { dst[i] = src[Int(indices[i])] }
        }
    }

    /// Split over one range of the destination per thread: each thread reads every index and adds only the
    /// elements whose index falls in its range, so each destination element takes its terms in the order of i, as
    /// on one thread (the same bits at any thread count).
    static func scatterAddKernel(_ src: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>,
                                  _ dst: UnsafeMutablePointer<Self>, count: Int, destinationCount: Int) {
        let parts = Swift.min(Parallel.threads, destinationCount / 1024)
        guard count >= 1 << 16, parts > 1, Parallel.canFanOut else {
            for i in 0..<count { dst[Int(indices[i])] += src[i] }
            return
        }
        Parallel.forEach(parts) { part in
            let (low, high) = (Int32(destinationCount * part / parts), Int32(destinationCount * (part + 1) / parts))
            for i in 0..<count {
                let index = indices[i]
                if index >= low && index < high { dst[Int(index)] += src[i] }
            }
        }
    }

    static func reluBackwardKernel(_ g: UnsafePointer<Self>, _ y: UnsafePointer<Self>,
                                    _ dx: UnsafeMutablePointer<Self>, count: Int) {
        Parallel.forRanges(count, minimumPerThread: 1 << 15) { range in
            for i in range { dx[i] = y[i] > 0 ? g[i] : 0 }
        }
    }

    static func zipKernel(_ op: BinaryOp, _ a: UnsafePointer<Self>, _ aStrides: [Int], _ b: UnsafePointer<Self>,
                           _ bStrides: [Int], _ out: UnsafeMutablePointer<Self>, shape: [Int]) {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        // Both operands contiguous over the whole shape: one flat loop, split over threads when large.
        let contiguous = ShapeMath.strides(shape)
        if aStrides == contiguous && bStrides == contiguous {
            Parallel.forRanges(count, minimumPerThread: 1 << 15) { range in
                zipFlat(op, a + range.lowerBound, b + range.lowerBound, out + range.lowerBound, range.count)
            }
            return
        }
        // Iterate the outer axes with an odometer; the innermost axis is a tight strided loop.
        let rank = shape.count
        let inner = rank == 0 ? 1 : shape[rank - 1]
        let sa = rank == 0 ? 0 : aStrides[rank - 1]
        let sb = rank == 0 ? 0 : bStrides[rank - 1]
        var index = [Int](repeating: 0, count: Swift.max(rank - 1, 0))
        var offA = 0, offB = 0, offOut = 0
        while offOut < count {
            let pa = a + offA, pb = b + offB, po = out + offOut
            switch op {
            case .add: for i in 0..<inner { po[i] = pa[i * sa] + pb[i * sb] }
            case .sub: for i in 0..<inner { po[i] = pa[i * sa] - pb[i * sb] }
            case .mul: for i in 0..<inner { po[i] = pa[i * sa] * pb[i * sb] }
            case .div: for i in 0..<inner { po[i] = pa[i * sa] / pb[i * sb] }
            case .maximum: for i in 0..<inner { po[i] = Swift.max(pa[i * sa], pb[i * sb]) }
            case .minimum: for i in 0..<inner { po[i] = Swift.min(pa[i * sa], pb[i * sb]) }
            case .maximumShare:
                for i in 0..<inner {
                    let x = pa[i * sa], y = pb[i * sb]
                    po[i] = x > y ? 1 : (x == y ? 0.5 : 0)
                }
            }
            offOut += inner
            // Advance the odometer over axes rank-2 ... 0.
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                offA += aStrides[axis]
                offB += bStrides[axis]
                if index[axis] < shape[axis] { break }
                offA -= aStrides[axis] * shape[axis]
                offB -= bStrides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { break }
        }
    }

    private static func zipFlat(_ op: BinaryOp, _ pa: UnsafePointer<Self>, _ pb: UnsafePointer<Self>,
                                _ po: UnsafeMutablePointer<Self>, _ n: Int) {
        switch op {
        case .add: for i in 0..<n { po[i] = pa[i] + pb[i] }
        case .sub: for i in 0..<n { po[i] = pa[i] - pb[i] }
        case .mul: for i in 0..<n { po[i] = pa[i] * pb[i] }
        case .div: for i in 0..<n { po[i] = pa[i] / pb[i] }
        case .maximum: for i in 0..<n { po[i] = Swift.max(pa[i], pb[i]) }
        case .minimum: for i in 0..<n { po[i] = Swift.min(pa[i], pb[i]) }
        case .maximumShare:
            for i in 0..<n {
                let x = pa[i], y = pb[i]
                po[i] = x > y ? 1 : (x == y ? 0.5 : 0)
            }
        }
    }

    static func stridedCopyKernel(_ src: UnsafePointer<Self>, srcOffset: Int, srcStrides: [Int],
                                   _ dst: UnsafeMutablePointer<Self>, dstOffset: Int, dstStrides: [Int],
                                   shape: [Int], accumulate: Bool) {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        // A large copy is split over its first axis, each part writing its own destination elements (a copy's
        // destination is a contiguous tensor or a slice of one); an accumulation stays on one thread, since its
        // destination may repeat (the gradient of a broadcast).
        if !accumulate && shape.count >= 2 && shape[0] > 1 && dstStrides[0] != 0 && count >= 1 << 16
            && Parallel.canFanOut {
            let perRow = count / shape[0]
            Parallel.forRanges(shape[0], minimumPerThread: Swift.max(1, (1 << 15) / perRow)) { range in
                var part = shape
                part[0] = range.count
                stridedCopyBlock(src, srcOffset: srcOffset + range.lowerBound * srcStrides[0], srcStrides: srcStrides,
                                 dst, dstOffset: dstOffset + range.lowerBound * dstStrides[0], dstStrides: dstStrides,
                                 shape: part, accumulate: false)
            }
            return
        }
        stridedCopyBlock(src, srcOffset: srcOffset, srcStrides: srcStrides, dst, dstOffset: dstOffset,
                         dstStrides: dstStrides, shape: shape, accumulate: accumulate)
    }

    /// `stridedCopyKernel` on the calling thread.
    static func stridedCopyBlock(_ src: UnsafePointer<Self>, srcOffset: Int, srcStrides: [Int],
                                 _ dst: UnsafeMutablePointer<Self>, dstOffset: Int, dstStrides: [Int],
                                 shape: [Int], accumulate: Bool) {
        let rank = shape.count
        // The last two axes as one block of rows (flips and transposes of small planes have short rows, so the
        // index bookkeeping below runs once per block instead of once per row).
        let inner = rank == 0 ? 1 : shape[rank - 1]
        let ss = rank == 0 ? 0 : srcStrides[rank - 1]
        let ds = rank == 0 ? 0 : dstStrides[rank - 1]
        let rows = rank < 2 ? 1 : shape[rank - 2]
        let rowS = rank < 2 ? 0 : srcStrides[rank - 2]
        let rowD = rank < 2 ? 0 : dstStrides[rank - 2]
        let outer = Swift.max(rank - 2, 0)
        var index = [Int](repeating: 0, count: outer)
        var offS = srcOffset, offD = dstOffset
        while true {
            for r in 0..<rows {
                let ps = src + offS + r * rowS, pd = dst + offD + r * rowD
                if accumulate {
                    for i in 0..<inner { pd[i * ds] += ps[i * ss] }
                } else if ss == 1 && ds == 1 {
                    pd.update(from: ps, count: inner)
                } else {
                    for i in 0..<inner { pd[i * ds] = ps[i * ss] }
                }
            }
            var axis = outer - 1
            while axis >= 0 {
                index[axis] += 1
                offS += srcStrides[axis]
                offD += dstStrides[axis]
                if index[axis] < shape[axis] { break }
                offS -= srcStrides[axis] * shape[axis]
                offD -= dstStrides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { break }
        }
    }

    /// Runs of adjacent axes of one kind (kept or reduced) are one axis of a contiguous tensor, and axes of size 1
    /// drop out; a leading kept axis then splits the work over the threads, each entry of it reducing its own block
    /// of the source into its own block of the destination. Each destination element takes its terms in source
    /// order.
    static func reduceKernel(_ op: ReduceOp, _ src: UnsafePointer<Self>, shape: [Int], reduced: [Bool],
                              _ dst: UnsafeMutablePointer<Self>) {
        let outCount = zipShape(shape, reduced).reduce(1, *)
        let initial: Self
        switch op {
        case .sum: initial = 0
        case .prod: initial = 1
        case .max: initial = -.infinity
        case .min: initial = .infinity
        }
        dst.initialize(repeating: initial, count: outCount)
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        var sizes: [Int] = [], kinds: [Bool] = []
        for axis in shape.indices where shape[axis] != 1 {
            if kinds.last == reduced[axis] {
                sizes[sizes.count - 1] *= shape[axis]
            } else {
                sizes.append(shape[axis])
                kinds.append(reduced[axis])
            }
        }
        if sizes.count > 1, kinds[0] == false, count >= 1 << 16, Parallel.canFanOut {
            let (srcBlock, dstBlock) = (count / sizes[0], outCount / sizes[0])
            Parallel.forRanges(sizes[0], minimumPerThread: Swift.max(1, (1 << 15) / srcBlock)) { range in
                var part = sizes
                part[0] = range.count
                reduceBlock(op, src + range.lowerBound * srcBlock, shape: part, reduced: kinds,
                            dst + range.lowerBound * dstBlock)
            }
            return
        }
        reduceBlock(op, src, shape: sizes, reduced: kinds, dst)
    }

    /// `reduceKernel` on the calling thread, into an initialised `dst`: walks the source in order; the destination
    /// is the source index with reduced axes pinned to 0.
    private static func reduceBlock(_ op: ReduceOp, _ src: UnsafePointer<Self>, shape: [Int], reduced: [Bool],
                                    _ dst: UnsafeMutablePointer<Self>) {
        var outStrides = ShapeMath.strides(zipShape(shape, reduced))
        for axis in 0..<shape.count where reduced[axis] { outStrides[axis] = 0 }
        let rank = shape.count
        let inner = rank == 0 ? 1 : shape[rank - 1]
        let ds = rank == 0 ? 0 : outStrides[rank - 1]
        var index = [Int](repeating: 0, count: Swift.max(rank - 1, 0))
        var offS = 0, offD = 0
        while true {
            let ps = src + offS, pd = dst + offD
            switch op {
            case .sum:
                if ds == 0 {
                    var acc: Self = 0
                    for i in 0..<inner { acc += ps[i] }
                    pd[0] += acc
                } else {
                    for i in 0..<inner { pd[i * ds] += ps[i] }
                }
            case .max:
                for i in 0..<inner where ps[i] > pd[i * ds] || ps[i].isNaN { pd[i * ds] = ps[i] }
            case .min:
                for i in 0..<inner where ps[i] < pd[i * ds] || ps[i].isNaN { pd[i * ds] = ps[i] }
            case .prod:
                for i in 0..<inner { pd[i * ds] *= ps[i] }
            }
            offS += inner
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                offD += outStrides[axis]
                if index[axis] < shape[axis] { break }
                offD -= outStrides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { break }
        }
    }

    private static func zipShape(_ shape: [Int], _ reduced: [Bool]) -> [Int] {
        (0..<shape.count).map { reduced[$0] ? 1 : shape[$0] }
    }
}

// MARK: - Kernels of the product's gradient and of argmax / argmin

extension TensorScalar {
    /// out[r, i] = the product of x[r, j] for j != i, for each of `lines` contiguous rows of `length`: prefix times
    /// suffix products, exact where elements are 0.
    static func exclusiveProducts(_ x: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Self>, lines: Int,
                                  length: Int) {
        for r in 0..<lines {
            let row = x + r * length, dst = out + r * length
            var prefix: Self = 1
            for i in 0..<length {
                dst[i] = prefix
                prefix *= row[i]
            }
            var suffix: Self = 1
            for i in stride(from: length - 1, through: 0, by: -1) {
                dst[i] *= suffix
                suffix *= row[i]
            }
        }
    }

    /// For x seen as (lines, length, inner), the position along the middle axis of each (line, inner) column's
    /// first largest (or smallest) element; the first NaN wins over every number. Result (lines, inner), flat.
    static func extremumPositions(_ x: UnsafePointer<Self>, lines: Int, length: Int, inner: Int,
                                  largest: Bool) -> [Int] {
        var positions = [Int](repeating: 0, count: lines * inner)
        for l in 0..<lines {
            for j in 0..<inner {
                let base = x + l * length * inner + j
                var best = base[0], position = 0
                if !best.isNaN {
                    for i in 1..<Swift.max(length, 1) {
                        let v = base[i * inner]
                        if v.isNaN { position = i; break }
                        if largest ? v > best : v < best { best = v; position = i }
                    }
                }
                positions[l * inner + j] = position
            }
        }
        return positions
    }
}

// MARK: - Index bounds

/// The smallest and largest of the indices ((Int32.max, Int32.min) for none): one pass of selects without an early
/// exit, which the compiler turns into vector code. Not generic (no element type), so that it does wherever it is
/// called from.
func indexBounds(_ indices: UnsafeBufferPointer<Int32>) -> (low: Int32, high: Int32) {
    var (low, high) = (Int32.max, Int32.min)
    for index in indices {
        low = index < low ? index : low
        high = index > high ? index : high
    }
    return (low, high)
}
