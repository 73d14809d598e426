// MARK: - Pooling geometry

/// Sizes of a max pooling over `planes` independent (depth, height, width) volumes; 2-D pooling is depth 1 with a
/// kernel depth of 1.
struct PoolingGeometry: Sendable, Equatable {
    var planes: Int
    var depth: Int
    var height: Int
    var width: Int
    var kernel: [Int]
    var stride: [Int]
    var padding: [Int]

    /// `kernel`, `stride` and `padding` are (depth, height, width).
    init(planes: Int, depth: Int, height: Int, width: Int, kernel: [Int], stride: [Int], padding: [Int]) {
        check(kernel.count == 3 && stride.count == 3 && padding.count == 3,
              "PoolingGeometry: kernel, stride and padding need three entries")
        self.planes = planes
        self.depth = depth
        self.height = height
        self.width = width
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    /// Input sizes (depth, height, width).
    var inputSize: [Int] { [depth, height, width] }

    /// floor((size + 2 p - k) / s) + 1 per axis, as PyTorch without ceil mode.
    var outputSize: [Int] {
        (0..<3).map { a in
            let span = inputSize[a] + 2 * padding[a] - kernel[a]
            return span < 0 ? 0 : span / stride[a] + 1
        }
    }

    var inputPlane: Int { depth * height * width }
    var outputPlane: Int { outputSize.reduce(1, *) }
}

// MARK: - Kernels

extension TensorScalar {
    static func maxPoolKernel(_ input: UnsafePointer<Self>, _ output: UnsafeMutablePointer<Self>,
                               _ indices: UnsafeMutablePointer<Int32>?, geometry g: PoolingGeometry) {
        if let indices {
            maxPoolScanning(input, output, indices, geometry: g)
        } else {
            // The scan records the indices as it goes: into a buffer of its own, dropped afterwards.
            var discarded = [Int32](repeating: 0, count: g.planes * g.outputPlane)
            discarded.withUnsafeMutableBufferPointer { maxPoolScanning(input, output, $0.baseAddress!, geometry: g) }
        }
    }

    /// The scalar scan of every window, for any geometry and element type.
    static func maxPoolScanning(_ input: UnsafePointer<Self>, _ output: UnsafeMutablePointer<Self>,
                                _ indices: UnsafeMutablePointer<Int32>, geometry g: PoolingGeometry) {
        let out = g.outputSize
        let (outD, outH, outW) = (out[0], out[1], out[2])
        let (kd, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let (sd, sh, sw) = (g.stride[0], g.stride[1], g.stride[2])
        let (pd, ph, pw) = (g.padding[0], g.padding[1], g.padding[2])
        let (depth, height, width) = (g.depth, g.height, g.width)
        let inPlane = g.inputPlane, outPlane = g.outputPlane
        guard outPlane > 0 else { return }
        // Output columns whose window lies wholly inside the row: no clipping, and for 3-wide windows an unrolled
        // scan.
        let fullW = ConvolutionGeometry.validRange(offset: -pw, size: width - kw + 1, stride: sw, outputSize: outW)
        Parallel.forRanges(g.planes, minimumPerThread: Swift.max(1, (1 << 14) / Swift.max(1, inPlane))) { planes in
            for p in planes {
                let src = input + p * inPlane
                var o = p * outPlane
                for od in 0..<outD {
                    // The window clipped to the input: padding (-inf) can never be the maximum.
                    let d0 = od * sd - pd
                    let dLow = Swift.max(d0, 0), dHigh = Swift.min(d0 + kd, depth)
                    for oh in 0..<outH {
                        let h0 = oh * sh - ph
                        let hLow = Swift.max(h0, 0), hHigh = Swift.min(h0 + kh, height)
                        // Generic scan of the window (d, h, w) in order; strictly greater keeps the first maximum
                        // and a NaN always takes over.
                        @inline(__always) func scan(_ wLow: Int, _ wHigh: Int) {
                            var best = -Self.infinity
                            var bestIndex = (dLow * height + hLow) * width + wLow
                            for d in dLow..<dHigh {
                                for h in hLow..<hHigh {
                                    let rowStart = (d * height + h) * width
                                    let row = src + rowStart
                                    for w in wLow..<wHigh {
                                        let v = row[w]
                                        if v > best || v.isNaN {
                                            best = v
                                            bestIndex = rowStart + w
                                        }
                                    }
                                }
                            }
                            output[o] = best
                            indices[o] = Int32(truncatingIfNeeded: bestIndex)
                            o += 1
                        }
                        for ow in 0..<fullW.lowerBound {
                            let w0 = ow * sw - pw
                            scan(Swift.max(w0, 0), Swift.min(w0 + kw, width))
                        }
                        if kw == 3 && dHigh - dLow == 1 {
                            // One depth slice, 3 columns: the same scan unrolled along the row.
                            let rowsStart = (dLow * height + hLow) * width
                            for ow in fullW {
                                let w0 = ow * sw - pw
                                var best = -Self.infinity
                                var bestIndex = rowsStart + w0
                                var rowStart = rowsStart
                                for _ in hLow..<hHigh {
                                    let row = src + rowStart + w0
                                    let (v0, v1, v2) = (row[0], row[1], row[2])
                                    if v0 > best || v0.isNaN { best = v0; bestIndex = rowStart + w0 }
                                    if v1 > best || v1.isNaN { best = v1; bestIndex = rowStart + w0 + 1 }
                                    if v2 > best || v2.isNaN { best = v2; bestIndex = rowStart + w0 + 2 }
                                    rowStart += width
                                }
                                output[o] = best
                                indices[o] = Int32(truncatingIfNeeded: bestIndex)
                                o += 1
                            }
                        } else {
                            for ow in fullW {
                                let w0 = ow * sw - pw
                                scan(w0, w0 + kw)
                            }
                        }
                        for ow in fullW.upperBound..<outW {
                            let w0 = ow * sw - pw
                            scan(Swift.max(w0, 0), Swift.min(w0 + kw, width))
                        }
                    }
                }
            }
        }
    }

    static func maxPoolBackwardKernel(_ gradOutput: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>,
                                       _ gradInput: UnsafeMutablePointer<Self>, geometry g: PoolingGeometry) {
        let inPlane = g.inputPlane, outPlane = g.outputPlane
        // Each task owns whole planes of the input gradient, cleared just before its outputs are added in.
        Parallel.forRanges(g.planes, minimumPerThread: Swift.max(1, (1 << 14) / Swift.max(1, outPlane, inPlane))) {
            planes in
            for p in planes {
                let dst = gradInput + p * inPlane
                dst.update(repeating: 0, count: inPlane)
                let base = p * outPlane
                for o in base ..< base + outPlane {
                    dst[Int(indices[o])] += gradOutput[o]
                }
            }
        }
    }
}
