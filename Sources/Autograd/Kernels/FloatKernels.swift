// MARK: - Float kernels with lane masks
//
// Generic SIMD code (over `TensorScalar`) compiles lane comparisons and selects into per-lane loops; on the concrete
// `SIMD8<Float>` type they become vector compares and blends. The kernels that need them have a `Float` version
// here, which Float's kernel table (`TensorScalar.swift`) holds; `Double` keeps the generic versions.

extension Float {
    static func maxPoolFloat(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
                               _ indices: UnsafeMutablePointer<Int32>, geometry g: PoolingGeometry) {
        if (g.stride[2] == 1 || g.stride[2] == 2) && g.outputPlane > 0 {
            maxPoolRows(input, output, indices, geometry: g)
        } else {
            maxPoolScanning(input, output, indices, geometry: g)
        }
    }

    /// `maxPool` for horizontal strides 1 and 2, in two vector passes per output row.
    ///
    /// The scan's rule (the first maximum in (depth, row, column) order; padding never wins) is the same as: the
    /// largest value, and among equal values the smallest flat index. So each window column is first reduced over
    /// the window's rows (eight columns at a time, a later row taking over only when strictly greater), then each
    /// output takes the best of its columns (eight outputs at a time, a later column taking over when greater, or
    /// equal with a smaller index). Padding columns are -inf with the largest index, so they lose every comparison,
    /// and an all -inf window reports its first in-bounds element, as the scan does. A plane holding a NaN is redone
    /// by the scalar scan, whose NaN rule (the last NaN wins) the vector passes do not follow.
    static func maxPoolRows(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
                            _ indices: UnsafeMutablePointer<Int32>, geometry g: PoolingGeometry) {
        let out = g.outputSize
        let (outD, outH, outW) = (out[0], out[1], out[2])
        let (kd, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let (sd, sh, sw) = (g.stride[0], g.stride[1], g.stride[2])
        let (pd, ph, pw) = (g.padding[0], g.padding[1], g.padding[2])
        let (depth, height, width) = (g.depth, g.height, g.width)
        let inPlane = g.inputPlane, outPlane = g.outputPlane
        let blocks = (outW + 7) / 8
        // Column buffers: pw padding columns, the row, and enough padding for the last block's 16-wide loads.
        let columns = Swift.max(pw + width, blocks * 8 * sw + kw) + 16
        var laneSteps = SIMD8<Int32>()
        for l in 0..<8 { laneSteps[l] = Int32(l) }
        let lanes = laneSteps
        let fullVectors = width / 8
        Parallel.forRanges(g.planes, minimumPerThread: Swift.max(1, (1 << 14) / Swift.max(1, inPlane))) { planes in
            BufferPool.withScratch(Float.self, count: 2 * columns + 16) { buffer in
                let colValue = buffer
                let colIndex = UnsafeMutableRawPointer(buffer + columns).bindMemory(to: Int32.self,
                                                                                    capacity: columns)
                // Padding columns stay -inf with the largest index.
                colValue.update(repeating: -Float.infinity, count: columns)
                colIndex.update(repeating: Int32.max, count: columns)
                let value = colValue + pw, index = colIndex + pw
                for p in planes {
                    let src = input + p * inPlane
                    var o = p * outPlane
                    var sawNaN = SIMDMask<SIMD8<Int32>>(repeating: false)
                    for od in 0..<outD {
                        let d0 = od * sd - pd
                        let dLow = Swift.max(d0, 0), dHigh = Swift.min(d0 + kd, depth)
                        for oh in 0..<outH {
                            let h0 = oh * sh - ph
                            let hLow = Swift.max(h0, 0), hHigh = Swift.min(h0 + kh, height)
                            // Pass 1: the best of each column over the window's rows, in scan order.
                            var first = true
                            for d in dLow..<dHigh {
                                for h in hLow..<hHigh {
                                    let rowStart = (d * height + h) * width
                                    let row = src + rowStart
                                    let start = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: rowStart)) &+ lanes
                                    for b in 0..<fullVectors {
                                        let v = load8(row + 8 * b)
                                        let i = start &+ SIMD8<Int32>(repeating: Int32(8 * b))
                                        sawNaN = sawNaN .| (v .!= v)
                                        if first {
                                            store8(v, value + 8 * b)
                                            storeIndices(i, index + 8 * b)
                                        } else {
                                            let best = load8(value + 8 * b)
                                            let takes = v .> best
                                            store8(best.replacing(with: v, where: takes), value + 8 * b)
                                            storeIndices(loadIndices(index + 8 * b).replacing(with: i, where: takes),
                                                         index + 8 * b)
                                        }
                                    }
                                    for w in (8 * fullVectors)..<width {
                                        let v = row[w]
                                        if v.isNaN { sawNaN = SIMDMask(repeating: true) }
                                        if first || v > value[w] {
                                            value[w] = v
                                            index[w] = Int32(truncatingIfNeeded: rowStart + w)
                                        }
                                    }
                                    first = false
                                }
                            }
                            // Pass 2: the best column of each output's window.
                            for b in 0..<blocks {
                                // Column buffer position of lane l's window start: (8b + l) * sw.
                                let base = 8 * b * sw
                                var best = SIMD8<Float>(repeating: -.infinity)
                                var bestIndex = SIMD8<Int32>(repeating: .max)
                                for dw in 0..<kw {
                                    let v: SIMD8<Float>, i: SIMD8<Int32>
                                    if sw == 1 {
                                        v = load8(colValue + base + dw)
                                        i = loadIndices(colIndex + base + dw)
                                    } else {
                                        let at = base + (dw & ~1)
                                        let pv = UnsafeRawPointer(colValue + at).loadUnaligned(as: SIMD16<Float>.self)
                                        let pi = UnsafeRawPointer(colIndex + at).loadUnaligned(as: SIMD16<Int32>.self)
                                        (v, i) = dw & 1 == 0 ? (pv.evenHalf, pi.evenHalf) : (pv.oddHalf, pi.oddHalf)
                                    }
                                    let takes = (v .> best) .| ((v .== best) .& (i .< bestIndex))
                                    best.replace(with: v, where: takes)
                                    bestIndex.replace(with: i, where: takes)
                                }
                                let count = Swift.min(8, outW - 8 * b)
                                if count == 8 {
                                    store8(best, output + o + 8 * b)
                                    storeIndices(bestIndex, indices + o + 8 * b)
                                } else {
                                    for l in 0..<count {
                                        output[o + 8 * b + l] = best[l]
                                        indices[o + 8 * b + l] = bestIndex[l]
                                    }
                                }
                            }
                            o += outW
                        }
                    }
                    if any(sawNaN) {
                        var plane = g
                        plane.planes = 1
                        maxPoolScanning(src, output + p * outPlane, indices + p * outPlane, geometry: plane)
                        // The scan writes plane-local indices, as the vector passes do.
                    }
                }
            }
        }
    }

    @inline(__always) private static func loadIndices(_ p: UnsafePointer<Int32>) -> SIMD8<Int32> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Int32>.self)
    }

    @inline(__always) private static func storeIndices(_ v: SIMD8<Int32>, _ p: UnsafeMutablePointer<Int32>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Int32>.self)
    }

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
