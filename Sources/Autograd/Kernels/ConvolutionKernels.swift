// MARK: - Convolution geometry

/// Sizes of a 2-D convolution over NCHW input, as the im2col / col2im kernels see it.
public struct ConvolutionGeometry: Sendable, Equatable {
    public var batch: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var padHeight: Int
    public var padWidth: Int
    public var dilationHeight: Int
    public var dilationWidth: Int

    public init(batch: Int, channels: Int, height: Int, width: Int, kernel: (Int, Int),
                stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (padHeight, padWidth) = padding
        (dilationHeight, dilationWidth) = dilation
    }

    /// floor((H + 2p - d(k - 1) - 1) / s) + 1, as PyTorch (may be <= 0 for a kernel larger than the input).
    public var outputHeight: Int {
        Self.outputSize(height, kernelHeight, strideHeight, padHeight, dilationHeight)
    }
    public var outputWidth: Int {
        Self.outputSize(width, kernelWidth, strideWidth, padWidth, dilationWidth)
    }

    /// Rows of the column matrix: channels * kernelHeight * kernelWidth.
    public var columnRows: Int { channels * kernelHeight * kernelWidth }
    /// Columns of the column matrix: batch * outputHeight * outputWidth.
    public var columnCount: Int { batch * outputHeight * outputWidth }

    static func outputSize(_ size: Int, _ kernel: Int, _ stride: Int, _ pad: Int, _ dilation: Int) -> Int {
        let span = size + 2 * pad - dilation * (kernel - 1) - 1
        // Floor division, correct for a negative span too.
        return (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1
    }

    /// The output positions o in 0..<outputSize whose input coordinate o * stride + offset lies in 0..<size.
    /// Hoisting this range out of the loops leaves the innermost loops free of bounds tests.
    @inline(__always)
    static func validRange(offset: Int, size: Int, stride: Int, outputSize: Int) -> Range<Int> {
        let low = offset >= 0 ? 0 : Swift.min((-offset + stride - 1) / stride, outputSize)
        let high = size - offset <= 0 ? 0 : Swift.min((size - offset - 1) / stride + 1, outputSize)
        return low ..< Swift.max(low, high)
    }
}

// MARK: - Kernels

extension TensorScalar {
    public static func im2col(_ input: UnsafePointer<Self>, _ columns: UnsafeMutablePointer<Self>,
                              geometry g: ConvolutionGeometry) {
        let (kh, kw) = (g.kernelHeight, g.kernelWidth)
        let (outH, outW) = (g.outputHeight, g.outputWidth)
        let planeOut = outH * outW
        let rowLength = g.batch * planeOut
        let planeIn = g.height * g.width
        let (sh, sw) = (g.strideHeight, g.strideWidth)
        // Valid output ranges per kernel row / column offset, shared by every image and channel.
        let rowsValid = (0..<kh).map {
            ConvolutionGeometry.validRange(offset: $0 * g.dilationHeight - g.padHeight, size: g.height,
                                           stride: sh, outputSize: outH)
        }
        let colsValid = (0..<kw).map {
            ConvolutionGeometry.validRange(offset: $0 * g.dilationWidth - g.padWidth, size: g.width,
                                           stride: sw, outputSize: outW)
        }
        Parallel.forEach(g.batch * g.channels) { task in
            let n = task / g.channels, c = task % g.channels
            let plane = input + task * planeIn
            for i in 0..<kh {
                let ys = rowsValid[i]
                let yOffset = i * g.dilationHeight - g.padHeight
                for j in 0..<kw {
                    let xs = colsValid[j]
                    let xOffset = j * g.dilationWidth - g.padWidth
                    let row = columns + ((c * kh + i) * kw + j) * rowLength + n * planeOut
                    // Output rows wholly in the vertical padding.
                    row.update(repeating: 0, count: ys.lowerBound * outW)
                    (row + ys.upperBound * outW).update(repeating: 0, count: (outH - ys.upperBound) * outW)
                    for oy in ys {
                        let dst = row + oy * outW
                        // Start of the input row, shifted so that dst[ox] reads src[ox * sw].
                        let src = plane + (oy * sh + yOffset) * g.width + xOffset
                        dst.update(repeating: 0, count: xs.lowerBound)
                        if sw == 1 {
                            (dst + xs.lowerBound).update(from: src + xs.lowerBound, count: xs.count)
                        } else {
                            for ox in xs { dst[ox] = src[ox * sw] }
                        }
                        (dst + xs.upperBound).update(repeating: 0, count: outW - xs.upperBound)
                    }
                }
            }
        }
    }

    public static func col2im(_ columns: UnsafePointer<Self>, _ input: UnsafeMutablePointer<Self>,
                              geometry g: ConvolutionGeometry) {
        let (kh, kw) = (g.kernelHeight, g.kernelWidth)
        let (outH, outW) = (g.outputHeight, g.outputWidth)
        let planeOut = outH * outW
        let rowLength = g.batch * planeOut
        let planeIn = g.height * g.width
        let (sh, sw) = (g.strideHeight, g.strideWidth)
        let rowsValid = (0..<kh).map {
            ConvolutionGeometry.validRange(offset: $0 * g.dilationHeight - g.padHeight, size: g.height,
                                           stride: sh, outputSize: outH)
        }
        let colsValid = (0..<kw).map {
            ConvolutionGeometry.validRange(offset: $0 * g.dilationWidth - g.padWidth, size: g.width,
                                           stride: sw, outputSize: outW)
        }
        // Each task owns one (image, channel) plane of the input gradient, so the accumulation is race-free.
        Parallel.forEach(g.batch * g.channels) { task in
            let n = task / g.channels, c = task % g.channels
            let plane = input + task * planeIn
            for i in 0..<kh {
                let ys = rowsValid[i]
                let yOffset = i * g.dilationHeight - g.padHeight
                for j in 0..<kw {
                    let xs = colsValid[j]
                    if xs.isEmpty { continue }
                    let xOffset = j * g.dilationWidth - g.padWidth
                    let row = columns + ((c * kh + i) * kw + j) * rowLength + n * planeOut
                    for oy in ys {
                        let src = row + oy * outW
                        let dst = plane + (oy * sh + yOffset) * g.width + xOffset
                        if sw == 1 {
                            for ox in xs { dst[ox] += src[ox] }
                        } else {
                            for ox in xs { dst[ox * sw] += src[ox] }
                        }
                    }
                }
            }
        }
    }

    public static func swapLeadingAxes(_ src: UnsafePointer<Self>, _ dst: UnsafeMutablePointer<Self>,
                                       outer: Int, middle: Int, inner: Int, bias: UnsafePointer<Self>?) {
        let rows = outer * middle
        guard rows > 0, inner > 0 else { return }
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, (1 << 15) / inner)) { range in
            for r in range {
                let a = r / middle, b = r % middle
                let s = src + r * inner
                let d = dst + (b * outer + a) * inner
                if let bias {
                    let shift = bias[a]
                    for l in 0..<inner { d[l] = s[l] + shift }
                } else {
                    d.update(from: s, count: inner)
                }
            }
        }
    }
}
