// MARK: - Pooling geometry

/// Sizes of a max pooling over `planes` independent (depth, height, width) volumes; 2-D pooling is depth 1 with a
/// kernel depth of 1.
public struct PoolingGeometry: Sendable, Equatable {
    public var planes: Int
    public var depth: Int
    public var height: Int
    public var width: Int
    public var kernel: [Int]
    public var stride: [Int]
    public var padding: [Int]

    /// `kernel`, `stride` and `padding` are (depth, height, width).
    public init(planes: Int, depth: Int, height: Int, width: Int, kernel: [Int], stride: [Int], padding: [Int]) {
        precondition(kernel.count == 3 && stride.count == 3 && padding.count == 3,
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
    public var inputSize: [Int] { [depth, height, width] }

    /// floor((size + 2 p - k) / s) + 1 per axis, as PyTorch without ceil mode.
    public var outputSize: [Int] {
        (0..<3).map { a in
            let span = inputSize[a] + 2 * padding[a] - kernel[a]
            return span < 0 ? 0 : span / stride[a] + 1
        }
    }

    public var inputPlane: Int { depth * height * width }
    public var outputPlane: Int { outputSize.reduce(1, *) }
}

// MARK: - Kernels

extension TensorScalar {
    public static func maxPool(_ input: UnsafePointer<Self>, _ output: UnsafeMutablePointer<Self>,
                               _ indices: UnsafeMutablePointer<Int32>, geometry g: PoolingGeometry) {
        let out = g.outputSize
        let (outD, outH, outW) = (out[0], out[1], out[2])
        let (kd, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let (sd, sh, sw) = (g.stride[0], g.stride[1], g.stride[2])
        let (pd, ph, pw) = (g.padding[0], g.padding[1], g.padding[2])
        let (height, width) = (g.height, g.width)
        let inPlane = g.inputPlane, outPlane = g.outputPlane
        guard outPlane > 0 else { return }
        Parallel.forEach(g.planes) { p in
            let src = input + p * inPlane
            var o = p * outPlane
            for od in 0..<outD {
                // The window clipped to the input: padding (-inf) can never be the maximum.
                let d0 = od * sd - pd
                let dLow = Swift.max(d0, 0), dHigh = Swift.min(d0 + kd, g.depth)
                for oh in 0..<outH {
                    let h0 = oh * sh - ph
                    let hLow = Swift.max(h0, 0), hHigh = Swift.min(h0 + kh, height)
                    for ow in 0..<outW {
                        let w0 = ow * sw - pw
                        let wLow = Swift.max(w0, 0), wHigh = Swift.min(w0 + kw, width)
                        var best = -Self.infinity
                        var bestIndex = (dLow * height + hLow) * width + wLow
                        for d in dLow..<dHigh {
                            for h in hLow..<hHigh {
                                let rowStart = (d * height + h) * width
                                let row = src + rowStart
                                for w in wLow..<wHigh {
                                    let v = row[w]
                                    // Strictly greater keeps the first maximum; a NaN always takes over.
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
                }
            }
        }
    }

    public static func maxPoolBackward(_ gradOutput: UnsafePointer<Self>, _ indices: UnsafePointer<Int32>,
                                       _ gradInput: UnsafeMutablePointer<Self>, geometry g: PoolingGeometry) {
        let inPlane = g.inputPlane, outPlane = g.outputPlane
        guard outPlane > 0 else { return }
        // Each task owns one plane of the input gradient.
        Parallel.forEach(g.planes) { p in
            let dst = gradInput + p * inPlane
            let base = p * outPlane
            for o in base ..< base + outPlane {
                dst[Int(indices[o])] += gradOutput[o]
            }
        }
    }
}
