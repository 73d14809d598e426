// MARK: - Float kernels with lane masks
//
// Generic SIMD code (over `TensorScalar`) compiles lane comparisons and selects into per-lane loops; on the concrete
// `SIMD8<Float>` type they become vector compares and blends. The kernels that need them have a `Float` version
// here, which Float's kernel table (`TensorScalar.swift`) holds; `Double` keeps the generic versions.

extension Float {
    static func mapFloat(_ op: UnaryOp<Float>, _ x: UnsafeBufferPointer<Float>,
                           _ out: UnsafeMutableBufferPointer<Float>) {
        guard case .relu = op else {
            mapGeneric(op, x, out)
            return
        }
        guard x.count > 0, let xp = x.baseAddress, let o = out.baseAddress else { return }
        Parallel.forRanges(x.count, minimumPerThread: 1 << 15) { range in
            var i = range.lowerBound
            let zero = SIMD8<Float>(repeating: 0)
            while i + 8 <= range.upperBound {
                let v = load8(xp + i)
                // x > 0 ? x : 0, so NaN gives 0 as in the scalar rule.
                store8(zero.replacing(with: v, where: v .> zero), o + i)
                i += 8
            }
            while i < range.upperBound { o[i] = xp[i] > 0 ? xp[i] : 0; i += 1 }
        }
    }

    static func reluBackwardFloat(_ g: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                    _ dx: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minimumPerThread: 1 << 15) { range in
            var i = range.lowerBound
            let zero = SIMD8<Float>(repeating: 0)
            while i + 8 <= range.upperBound {
                store8(zero.replacing(with: load8(g + i), where: load8(y + i) .> zero), dx + i)
                i += 8
            }
            while i < range.upperBound { dx[i] = y[i] > 0 ? g[i] : 0; i += 1 }
        }
    }
}
