// MARK: - Softmax and cross-entropy kernels
//
// log_softmax(x)_i = (x_i - m) - log(sum_j exp(x_j - m)) with m the line's maximum, so no exponential overflows.

extension TensorScalar {
    static func logSoftmaxKernel(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>,
                                  outer: Int, size: Int, inner: Int) {
        let lines = outer * inner
        guard lines > 0, size > 0 else { return }
        Parallel.forRanges(lines, minimumPerThread: Swift.max(1, (1 << 14) / size)) { range in
            for line in range {
                // Line `line` = (o, j) starts at o * size * inner + j and steps by `inner`.
                let o = line / inner, j = line % inner
                let src = x + o * size * inner + j, dst = y + o * size * inner + j
                var m = -Self.infinity
                for i in 0..<size {
                    let v = src[i * inner]
                    if v > m || v.isNaN { m = v }
                }
                var total: Self = 0
                for i in 0..<size { total += Self.exp(src[i * inner] - m) }
                // (x - m) - log(total), not x - (m + log(total)): the latter rounds to the ulp of m (3e-5 relative
                // for a line of two logits near 1000).
                let logTotal = Self.log(total)
                for i in 0..<size { dst[i * inner] = (src[i * inner] - m) - logTotal }
            }
        }
    }

    static func logSoftmaxBackwardKernel(_ g: UnsafePointer<Self>, _ y: UnsafePointer<Self>,
                                          _ dx: UnsafeMutablePointer<Self>, outer: Int, size: Int, inner: Int) {
        let lines = outer * inner
        guard lines > 0, size > 0 else { return }
        Parallel.forRanges(lines, minimumPerThread: Swift.max(1, (1 << 14) / size)) { range in
            for line in range {
                let o = line / inner, j = line % inner
                let start = o * size * inner + j
                let gl = g + start, yl = y + start, dl = dx + start
                var total: Self = 0
                for i in 0..<size { total += gl[i * inner] }
                for i in 0..<size { dl[i * inner] = gl[i * inner] - Self.exp(yl[i * inner]) * total }
            }
        }
    }

    static func crossEntropyKernel(_ logits: UnsafePointer<Self>, targets: UnsafePointer<Int>, rows: Int,
                                    classes: Int, _ probabilities: UnsafeMutablePointer<Self>) -> Self {
        guard rows > 0, classes > 0 else { return 0 }
        // Per-row losses first, then one sum in row order: the result does not depend on the thread count.
        let losses = [Self](unsafeUninitializedCapacity: rows) { buffer, initialized in
            let loss = buffer.baseAddress!
            Parallel.forRanges(rows, minimumPerThread: Swift.max(1, (1 << 14) / classes)) { range in
                for r in range {
                    let x = logits + r * classes, p = probabilities + r * classes
                    var m = -Self.infinity
                    for c in 0..<classes where x[c] > m || x[c].isNaN { m = x[c] }
                    var total: Self = 0
                    for c in 0..<classes {
                        let e = Self.exp(x[c] - m)
                        p[c] = e
                        total += e
                    }
                    let inverse = 1 / total
                    for c in 0..<classes { p[c] *= inverse }
                    // -log softmax[target] = log(total) + m - x[target].
                    (loss + r).initialize(to: Self.log(total) + m - x[targets[r]])
                }
            }
            initialized = rows
        }
        var sum: Self = 0
        for l in losses { sum += l }
        return sum
    }

    static func crossEntropyBackwardKernel(_ probabilities: UnsafePointer<Self>, targets: UnsafePointer<Int>,
                                            rows: Int, classes: Int, scale: Self, _ dx: UnsafeMutablePointer<Self>) {
        guard rows > 0, classes > 0 else { return }
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, (1 << 15) / classes)) { range in
            for r in range {
                let p = probabilities + r * classes, d = dx + r * classes
                for c in 0..<classes { d[c] = p[c] * scale }
                d[targets[r]] -= scale
            }
        }
    }
}
