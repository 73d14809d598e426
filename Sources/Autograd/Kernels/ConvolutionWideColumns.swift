// MARK: - Wide columns
//
// The im2col path for images with large output planes, stride 1 and no dilation (`usesWideColumns`). Each image is
// padded first (a copy with zero borders, or the image itself when the convolution does not pad), a plane of
// wideHeight x wideWidth = (Hout + kh - 1) x (Wout + kw - 1). Over the padded plane's full width, kernel tap (i, j)
// of channel c reads one contiguous span: wide position p = y * wideWidth + x reads padded[c][p + i * wideWidth + j].
// So each row of the column matrix (C * kh * kw, Hout * wideWidth) is one long copy instead of Hout short ones, and
// col2im is one long add per row. The last kw - 1 positions of each output row are extra: the forward product's are
// dropped when its output is packed to (Cout, Hout, Wout), and the backward products see zeros there in the output
// gradient, so they add nothing to the weight gradient and only zeros to the input gradient. Every output and every
// gradient sums the same nonzero terms in the same order as on the compact columns.

extension ConvolutionGeometry {
    /// The padded plane's width, Wout + kw - 1 (W + 2 pw at stride 1).
    var wideWidth: Int { outputWidth + kernelWidth - 1 }
    /// The padded plane's height, Hout + kh - 1.
    var wideHeight: Int { outputHeight + kernelHeight - 1 }
    /// Positions of one image's wide column rows: Hout * wideWidth.
    var widePlane: Int { outputHeight * wideWidth }
    /// Elements of one padded image: C * wideHeight * wideWidth.
    var paddedImageSize: Int { channels * wideHeight * wideWidth }
    /// True when the convolution pads, so that the wide path copies each image into a padded one.
    var pads: Bool { padHeight != 0 || padWidth != 0 }

    /// Set to false (tests do) to run every convolution on compact columns.
    nonisolated(unsafe) static var wideColumnsEnabled = true

    /// True when the wide path runs: one GEMM per image (large planes), stride 1, no dilation, and the extra
    /// positions at most an eighth of the output's.
    var usesWideColumns: Bool {
        Self.wideColumnsEnabled && gemmPerImage && strideHeight == 1 && strideWidth == 1 && dilationHeight == 1
            && dilationWidth == 1 && padHeight >= 0 && padWidth >= 0 && wideWidth * 8 <= outputWidth * 9
    }
}

extension TensorScalar {
    /// One image (C, H, W) padded to (C, wideHeight, wideWidth): written into `scratch` when the convolution pads,
    /// else the image itself.
    static func widePaddedImage(_ image: UnsafePointer<Self>, scratch: UnsafeMutablePointer<Self>,
                                geometry g: ConvolutionGeometry) -> UnsafePointer<Self> {
        guard g.pads else { return image }
        let (h, w, wideW) = (g.height, g.width, g.wideWidth)
        scratch.update(repeating: 0, count: g.paddedImageSize)
        for c in 0..<g.channels {
            let src = image + c * h * w
            let dst = scratch + c * g.wideHeight * wideW + g.padHeight * wideW + g.padWidth
            for y in 0..<h { (dst + y * wideW).update(from: src + y * w, count: w) }
        }
        return UnsafePointer(scratch)
    }

    /// The rows of the wide column matrix in order, tap (c, i, j) by tap: `body` gets the row's offset in the
    /// matrix (C * kh * kw, widePlane) and the offset in the padded image (C, wideHeight, wideWidth) of its span,
    /// widePlane - (kw - 1) long (the rest of the row lies past the padded plane).
    @inline(__always)
    static func forEachWideRow(_ g: ConvolutionGeometry, _ body: (_ row: Int, _ start: Int) -> Void) {
        let (kh, kw, wideW, length) = (g.kernelHeight, g.kernelWidth, g.wideWidth, g.widePlane)
        let paddedPlane = g.wideHeight * wideW
        var row = 0
        for c in 0..<g.channels {
            for i in 0..<kh {
                for j in 0..<kw {
                    body(row, c * paddedPlane + i * wideW + j)
                    row += length
                }
            }
        }
    }

    /// The wide column matrix (C * kh * kw, widePlane) of one padded image; the kw - 1 positions after each row's
    /// span are zero.
    static func wideIm2col(_ padded: UnsafePointer<Self>, _ columns: UnsafeMutablePointer<Self>,
                           geometry g: ConvolutionGeometry) {
        let tail = g.kernelWidth - 1, span = g.widePlane - tail
        forEachWideRow(g) { row, start in
            (columns + row).update(from: padded + start, count: span)
            (columns + row + span).update(repeating: 0, count: tail)
        }
    }

    /// Writes the padded image's gradient (C, wideHeight, wideWidth) from the wide column matrix
    /// (C * kh * kw, widePlane), taps in order as `col2im` adds them onto zeros: each channel's first tap is copied
    /// and the rest of its plane (past the first span) cleared, then the other taps are added.
    static func wideCol2im(_ columns: UnsafePointer<Self>, _ padded: UnsafeMutablePointer<Self>,
                           geometry g: ConvolutionGeometry) {
        let span = g.widePlane - (g.kernelWidth - 1)
        let taps = g.kernelHeight * g.kernelWidth, paddedPlane = g.wideHeight * g.wideWidth
        forEachWideRow(g) { row, start in
            if row / g.widePlane % taps == 0 {
                (padded + start).update(from: columns + row, count: span)
                (padded + start + span).update(repeating: 0, count: paddedPlane - span)
            } else {
                accumulate(columns + row, into: padded + start, count: span)
            }
        }
    }

    /// (Cout, widePlane) -> (Cout, Hout, Wout): drops the extra positions of each row.
    static func packWide(_ wide: UnsafePointer<Self>, _ output: UnsafeMutablePointer<Self>, channels: Int,
                         geometry g: ConvolutionGeometry) {
        let (outH, outW, wideW) = (g.outputHeight, g.outputWidth, g.wideWidth)
        copyRows(wide, RowBlock(planes: channels, rows: outH, width: outW, source: .init(plane: g.widePlane, row: wideW),
                                destination: .init(plane: outH * outW, row: outW)), output)
    }

    /// (Cout, Hout, Wout) -> (Cout, widePlane) with zeros at the extra positions.
    static func unpackWide(_ compact: UnsafePointer<Self>, _ wide: UnsafeMutablePointer<Self>, channels: Int,
                           geometry g: ConvolutionGeometry) {
        let (outH, outW, wideW) = (g.outputHeight, g.outputWidth, g.wideWidth)
        copyRows(compact, RowBlock(planes: channels, rows: outH, width: outW,
                                   source: .init(plane: outH * outW, row: outW),
                                   destination: .init(plane: g.widePlane, row: wideW)), wide)
        for o in 0..<channels {
            for y in 0..<outH {
                (wide + o * g.widePlane + y * wideW + outW).update(repeating: 0, count: wideW - outW)
            }
        }
    }

    // MARK: Per-chunk passes

    /// Forward over images n0 ..< n0 + count: y = W (Cout, rows) x wide columns, packed into `output`. `weight` has
    /// `rows` columns: K, or K + 1 with the bias as the last, against a row of ones after the columns.
    static func wideForward(_ input: UnsafePointer<Self>, weight: UnsafePointer<Self>, rows: Int,
                            _ output: UnsafeMutablePointer<Self>, outChannels: Int, images n0: Int, count: Int,
                            geometry g: ConvolutionGeometry) {
        let (k, length) = (g.columnRows, g.widePlane)
        let scratch = rows * length + outChannels * length + (g.pads ? g.paddedImageSize : 0)
        BufferPool.withScratch(Self.self, count: scratch) { col in
            let product = col + rows * length, padScratch = product + outChannels * length
            if rows > k { (col + k * length).update(repeating: 1, count: length) }
            for n in n0..<(n0 + count) {
                let padded = widePaddedImage(input + n * g.inputImageSize, scratch: padScratch, geometry: g)
                wideIm2col(padded, col, geometry: g)
                depthBlockedGemm(m: outChannels, n: length, k: rows, a: weight, lda: rows, b: col, ldb: length,
                                 c: product, ldc: length)
                packWide(product, output + n * outChannels * g.outputPlane, channels: outChannels, geometry: g)
            }
        }
    }

    /// `convolutionBackwardKernel` on wide columns for images n0 ..< n0 + count, one image at a time: its output
    /// gradient unpacked to (Cout, widePlane) once, the parameter product over its wide columns, then W^T x gy
    /// (written over the columns) folded back onto its input gradient, through the padded scratch plane when the
    /// convolution pads. The column buffer holds K rows and the row of ones.
    static func wideBackward(_ gradOutput: UnsafePointer<Self>, input: UnsafePointer<Self>?,
                             weight: UnsafePointer<Self>?, gradInput: UnsafeMutablePointer<Self>?,
                             sums: UnsafeMutablePointer<Self>?, beta: Self, parameters: ParameterProduct,
                             outChannels: Int, images n0: Int, count: Int, geometry g: ConvolutionGeometry) {
        let (k, length) = (g.columnRows, g.widePlane)
        let scratch = (k + 1) * length + outChannels * length + (g.pads ? g.paddedImageSize : 0)
        var beta = beta
        BufferPool.withScratch(Self.self, count: scratch) { col in
            let gy = col + (k + 1) * length, padScratch = gy + outChannels * length
            if parameters.bias { (col + k * length).update(repeating: 1, count: length) }
            for n in n0..<(n0 + count) {
                unpackWide(gradOutput + n * outChannels * g.outputPlane, gy, channels: outChannels, geometry: g)
                if parameters.weight, let input {
                    let padded = widePaddedImage(input + n * g.inputImageSize, scratch: padScratch, geometry: g)
                    wideIm2col(padded, col, geometry: g)
                }
                if let sums {
                    parameters.product(gy, col, width: length, outChannels: outChannels, beta: beta, into: sums)
                    beta = 1
                }
                guard let gradInput, let weight else { continue }
                parallelGemm(transA: true, transB: false, m: k, n: length, k: outChannels, alpha: 1,
                             a: weight, lda: k, b: gy, ldb: length, beta: 0, c: col, ldc: length)
                let dx = gradInput + n * g.inputImageSize
                guard g.pads else {
                    wideCol2im(col, dx, geometry: g)
                    continue
                }
                wideCol2im(col, padScratch, geometry: g)
                let (h, w, wideW) = (g.height, g.width, g.wideWidth)
                for c in 0..<g.channels {
                    let src = padScratch + c * g.wideHeight * wideW + g.padHeight * wideW + g.padWidth
                    for y in 0..<h { (dx + (c * h + y) * w).update(from: src + y * wideW, count: w) }
                }
            }
        }
    }
}
