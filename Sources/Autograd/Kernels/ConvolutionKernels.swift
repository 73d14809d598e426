// MARK: - Convolution geometry

/// Sizes of a 2-D convolution over NCHW input, as the im2col / col2im kernels see it.
struct ConvolutionGeometry: Sendable, Equatable {
    var batch: Int
    var channels: Int
    var height: Int
    var width: Int
    var kernelHeight: Int
    var kernelWidth: Int
    var strideHeight: Int
    var strideWidth: Int
    var padHeight: Int
    var padWidth: Int
    var dilationHeight: Int
    var dilationWidth: Int

    init(batch: Int, channels: Int, height: Int, width: Int, kernel: (Int, Int),
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
    var outputHeight: Int {
        Self.outputSize(height, kernelHeight, strideHeight, padHeight, dilationHeight)
    }
    var outputWidth: Int {
        Self.outputSize(width, kernelWidth, strideWidth, padWidth, dilationWidth)
    }

    /// Rows of the column matrix: channels * kernelHeight * kernelWidth.
    var columnRows: Int { channels * kernelHeight * kernelWidth }
    /// Columns of the column matrix: batch * outputHeight * outputWidth.
    var columnCount: Int { batch * outputHeight * outputWidth }

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

    /// One kernel tap (i, j) as the im2col / col2im loops see it: output (oy, ox) reads input row
    /// oy * strideHeight + rowOffset and column ox * strideWidth + columnOffset, which lie inside the image for oy
    /// in `rows` and ox in `columns`.
    struct KernelTap {
        var rows: Range<Int>
        var columns: Range<Int>
        var rowOffset: Int
        var columnOffset: Int
    }

    /// The loop nest `im2col` and `col2im` share, one (image, channel) plane per task (so that col2im's accumulation
    /// is race-free): for every kernel tap of every plane, in tap order, `body` gets the offset of the plane in the
    /// input (N, C, H, W), the offset of the plane's outputHeight * outputWidth values in the tap's row of the column
    /// matrix (C * kh * kw, N * outH * outW), and the tap.
    @inline(__always)
    func forEachKernelTap(_ body: (_ planeStart: Int, _ rowStart: Int, _ tap: KernelTap) -> Void) {
        let (kh, kw) = (kernelHeight, kernelWidth)
        let planeIn = height * width, planeOut = outputHeight * outputWidth
        let rowLength = batch * planeOut
        let taps = kernelTaps()
        Parallel.forEach(batch * channels) { task in
            let n = task / channels, c = task % channels
            for tap in 0..<(kh * kw) {
                body(task * planeIn, (c * kh * kw + tap) * rowLength + n * planeOut, taps[tap])
            }
        }
    }

    /// The kernel taps in order (i, j), with their valid output ranges, shared by every image and channel.
    func kernelTaps() -> [KernelTap] {
        let (kh, kw) = (kernelHeight, kernelWidth)
        var taps: [KernelTap] = []
        taps.reserveCapacity(kh * kw)
        for i in 0..<kh {
            let rowOffset = i * dilationHeight - padHeight
            let rows = Self.validRange(offset: rowOffset, size: height, stride: strideHeight, outputSize: outputHeight)
            for j in 0..<kw {
                let columnOffset = j * dilationWidth - padWidth
                let columns = Self.validRange(offset: columnOffset, size: width, stride: strideWidth,
                                              outputSize: outputWidth)
                taps.append(KernelTap(rows: rows, columns: columns, rowOffset: rowOffset, columnOffset: columnOffset))
            }
        }
        return taps
    }
}

// MARK: - Blocks of short rows

/// `planes` x `rows` rows of `width` elements, laid out with their own plane and row strides in the source and in
/// the destination (`copyRows`, `addRows`): one tap of im2col or col2im over a whole chunk of planes.
struct RowBlock: Sendable, Equatable {
    /// Plane and row strides of one side.
    struct Strides: Sendable, Equatable {
        var plane: Int
        var row: Int
        func offset(_ p: Int, _ r: Int) -> Int { p * plane + r * row }
    }
    var planes: Int
    var rows: Int
    var width: Int
    var source: Strides
    var destination: Strides
}

// MARK: - Kernels

extension TensorScalar {
    static func im2colKernel(_ input: UnsafePointer<Self>, _ columns: UnsafeMutablePointer<Self>,
                              geometry g: ConvolutionGeometry) {
        if g.strideHeight == 1 && g.strideWidth == 1 && g.dilationHeight == 1 && g.dilationWidth == 1 {
            im2colUnitStride(input, columns, geometry: g)
            return
        }
        let (outH, outW) = (g.outputHeight, g.outputWidth)
        let (sh, sw) = (g.strideHeight, g.strideWidth)
        g.forEachKernelTap { planeStart, rowStart, tap in
            let plane = input + planeStart, row = columns + rowStart
            let (ys, xs) = (tap.rows, tap.columns)
            // Output rows wholly in the vertical padding.
            row.update(repeating: 0, count: ys.lowerBound * outW)
            (row + ys.upperBound * outW).update(repeating: 0, count: (outH - ys.upperBound) * outW)
            for oy in ys {
                let dst = row + oy * outW
                // Start of the input row, shifted so that dst[ox] reads src[ox * sw].
                let src = plane + (oy * sh + tap.rowOffset) * g.width + tap.columnOffset
                dst.update(repeating: 0, count: xs.lowerBound)
                if sw == 1 {
                    copyRow(src + xs.lowerBound, dst + xs.lowerBound, xs.count)
                } else {
                    for ox in xs { dst[ox] = src[ox * sw] }
                }
                (dst + xs.upperBound).update(repeating: 0, count: outW - xs.upperBound)
            }
        }
    }

    /// `im2col` for stride 1 and no dilation. Without padding, each row of the column matrix (a channel and a tap)
    /// is one `copyRows` block over all images; with padding, each plane is first copied into a zero-padded scratch
    /// plane, so that every tap is a block copy with no bounds tests.
    static func im2colUnitStride(_ input: UnsafePointer<Self>, _ columns: UnsafeMutablePointer<Self>,
                                 geometry g: ConvolutionGeometry) {
        let (kh, kw) = (g.kernelHeight, g.kernelWidth)
        let (outH, outW) = (g.outputHeight, g.outputWidth)
        let planeOut = outH * outW
        let rowLength = g.batch * planeOut
        let (h, w) = (g.height, g.width)
        // The padded plane covers every position a window reads (which may be less than the full padding).
        let paddedH = outH + kh - 1, paddedW = outW + kw - 1
        let (top, left) = (g.padHeight, g.padWidth)
        if top == 0 && left == 0 {
            // No padding: the windows read the planes themselves, so each row of the column matrix (one channel and
            // tap, all images) is one block of short rows.
            let block = RowBlock(planes: g.batch, rows: outH, width: outW,
                                 source: .init(plane: g.channels * h * w, row: w),
                                 destination: .init(plane: planeOut, row: outW))
            let taps = kh * kw
            Parallel.forRanges(g.channels * taps, minimumPerThread: Swift.max(1, (1 << 14) / Swift.max(1, rowLength))) {
                range in
                for r in range {
                    let (c, tap) = (r / taps, r % taps)
                    copyRows(input + c * h * w + (tap / kw) * w + tap % kw, block, columns + r * rowLength)
                }
            }
            return
        }
        let tapBlock = RowBlock(planes: 1, rows: outH, width: outW, source: .init(plane: 0, row: paddedW),
                                destination: .init(plane: 0, row: outW))
        Parallel.forRanges(g.batch * g.channels, minimumPerThread: Swift.max(1, (1 << 14) / Swift.max(1, h * w))) {
            tasks in
            BufferPool.withScratch(Self.self, count: paddedH * paddedW) { padded in
                padded.update(repeating: 0, count: paddedH * paddedW)
                for task in tasks {
                    let n = task / g.channels, c = task % g.channels
                    let plane = input + task * h * w
                    // Rows and columns of the plane that land inside the padded area (all of them unless the
                    // padding is larger than the kernel needs).
                    let y0 = Swift.max(0, -top), y1 = Swift.min(h, paddedH - top)
                    let x0 = Swift.max(0, -left), x1 = Swift.min(w, paddedW - left)
                    if y1 > y0 && x1 > x0 {
                        for y in y0..<y1 {
                            copyRow(plane + y * w + x0, padded + (y + top) * paddedW + x0 + left, x1 - x0)
                        }
                    }
                    for i in 0..<kh {
                        for j in 0..<kw {
                            let row = columns + ((c * kh + i) * kw + j) * rowLength + n * planeOut
                            copyRows(padded + i * paddedW + j, tapBlock, row)
                        }
                    }
                }
            }
        }
    }

    /// `copyRows` for any element type: `copyRow` row by row.
    static func copyRowsKernel(_ src: UnsafePointer<Self>, _ b: RowBlock, _ dst: UnsafeMutablePointer<Self>) {
        for p in 0..<b.planes {
            for r in 0..<b.rows { copyRow(src + b.source.offset(p, r), dst + b.destination.offset(p, r), b.width) }
        }
    }

    /// `addRows` for any element type: `addRow` row by row.
    static func addRowsKernel(_ src: UnsafePointer<Self>, _ b: RowBlock, _ dst: UnsafeMutablePointer<Self>) {
        for p in 0..<b.planes {
            for r in 0..<b.rows { addRow(src + b.source.offset(p, r), dst + b.destination.offset(p, r), b.width) }
        }
    }

    /// dst[i] += src[i] for a short row: whole vectors, then the tail.
    @inline(__always)
    static func addRow(_ src: UnsafePointer<Self>, _ dst: UnsafeMutablePointer<Self>, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            store8(load8(dst + i) + load8(src + i), dst + i)
            i += 8
        }
        while i < count { dst[i] += src[i]; i += 1 }
    }

    /// Copies a short row: whole vectors, then the tail (a library copy call costs more than the copy here).
    @inline(__always)
    static func copyRow(_ src: UnsafePointer<Self>, _ dst: UnsafeMutablePointer<Self>, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            store8(load8(src + i), dst + i)
            i += 8
        }
        while i < count { dst[i] = src[i]; i += 1 }
    }

    static func col2imKernel(_ columns: UnsafePointer<Self>, _ input: UnsafeMutablePointer<Self>,
                              geometry g: ConvolutionGeometry) {
        let outW = g.outputWidth
        let (sh, sw) = (g.strideHeight, g.strideWidth)
        if sw == 1 {
            // Each tap of a channel adds one block of short rows over all images; the channels are the tasks (no
            // two write the same element), and every element takes its terms in tap order, as below.
            let taps = g.kernelTaps()
            let planeIn = g.height * g.width, planeOut = g.outputPlane
            let rowLength = g.batch * planeOut
            Parallel.forRanges(g.channels, minimumPerThread: Swift.max(1, (1 << 14) / Swift.max(1, g.batch * planeIn))) {
                range in
                for c in range {
                    for (t, tap) in taps.enumerated() where !tap.rows.isEmpty && !tap.columns.isEmpty {
                        let (ys, xs) = (tap.rows, tap.columns)
                        let block = RowBlock(planes: g.batch, rows: ys.count, width: xs.count,
                                             source: .init(plane: planeOut, row: outW),
                                             destination: .init(plane: g.channels * planeIn, row: sh * g.width))
                        addRows(columns + (c * taps.count + t) * rowLength + ys.lowerBound * outW + xs.lowerBound,
                                block, input + c * planeIn + (ys.lowerBound * sh + tap.rowOffset) * g.width
                                    + tap.columnOffset + xs.lowerBound)
                    }
                }
            }
            return
        }
        g.forEachKernelTap { planeStart, rowStart, tap in
            let xs = tap.columns
            if xs.isEmpty { return }
            let plane = input + planeStart, row = columns + rowStart
            for oy in tap.rows {
                let src = row + oy * outW
                let dst = plane + (oy * sh + tap.rowOffset) * g.width + tap.columnOffset
                for ox in xs { dst[ox * sw] += src[ox] }
            }
        }
    }

    static func swapLeadingAxesKernel(_ src: UnsafePointer<Self>, _ dst: UnsafeMutablePointer<Self>,
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

// MARK: - Chunked im2col convolution
//
// The im2col path over chunks of images: each chunk unfolds its images into a column buffer taken from the
// `BufferPool` (about 2^16 elements, so that it stays in a core's L2 cache between the unfolding and the product, and
// nothing batch-sized is allocated), and the chunks run in parallel with single-threaded GEMMs. The weight gradient
// sums per-worker partial products.

extension ConvolutionGeometry {
    /// Output positions per image.
    var outputPlane: Int { outputHeight * outputWidth }

    /// Input elements per image: channels * height * width.
    var inputImageSize: Int { channels * height * width }

    /// True when the images of a chunk take one GEMM each (large output planes), false when they share one.
    var gemmPerImage: Bool { outputPlane >= 256 }

    /// Elements of one chunk's column matrix (at least one image's): 2^16, 256 KiB of Float. The unfolded columns
    /// are written and then read by the product while they are still in the L2 cache; the CNN's 16 -> 32
    /// convolution on 15x15 maps, 64 images unfolded at once (2^21), took 1.8 ms forward against 1.0-1.2 ms in
    /// chunks of 2^15 to 2^17.
    static let chunkElements = 1 << 16

    /// Images per chunk: column buffers of about `chunkElements`, and at least `threads` chunks when the batch
    /// allows.
    func imagesPerChunk(threads: Int) -> Int {
        let perImage = Swift.max(1, columnRows * outputPlane)
        var images = Swift.max(1, Swift.min(batch, ConvolutionGeometry.chunkElements / perImage))
        if threads > 1 {
            var chunks = (batch + images - 1) / images
            chunks = (chunks + threads - 1) / threads * threads
            images = Swift.max(1, (batch + chunks - 1) / chunks)
        }
        return images
    }

    /// The geometry of `count` images of this convolution.
    func chunk(_ count: Int) -> ConvolutionGeometry {
        var g = self
        g.batch = count
        return g
    }

    /// Runs `body` on the chunks of images (`imagesPerChunk`) in parallel, with the chunk's first image, its number
    /// of images and the slot that runs it (a fixed schedule, so sums kept per slot are the same from run to run).
    @inline(__always)
    func forEachChunk(_ body: (_ firstImage: Int, _ count: Int, _ worker: Int) -> Void) {
        let images = imagesPerChunk(threads: Parallel.threads)
        let chunks = (batch + images - 1) / images
        Parallel.forEachInSlots(chunks) { chunk, worker in
            let firstImage = chunk * images
            body(firstImage, Swift.min(images, batch - firstImage), worker)
        }
    }
}

// MARK: - Depth-blocked forward products

extension ConvolutionGeometry {
    /// The most terms of one output that `depthBlockedGemm` sums in one chain (128; tests may change it).
    nonisolated(unsafe) static var forwardDepthBlock = 128
}

extension TensorScalar {
    /// C (m x n) = A (m x k, row stride lda) * B (k x n, row stride ldb), row-major, summed over blocks of at most
    /// `ConvolutionGeometry.forwardDepthBlock` of the k terms: each block's products are summed from zero by BLAS and added onto C.
    ///
    /// BLAS sums the k terms of each output in one chain, whose rounding error grows with its length. The forward
    /// convolution's outputs decide max pools and ReLUs, and an output off its exact value by more decides them
    /// differently from the exact sums more often (the gradient then goes elsewhere). Blocked, the error of the 289
    /// to 1153 terms of the experiment's 3x3 convolutions is about a third lower (below PyTorch float32's); k up
    /// to the block size takes one product, as before.
    static func depthBlockedGemm(m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>,
                                 ldb: Int, c: UnsafeMutablePointer<Self>, ldc: Int) {
        let blocks = (k - 1) / Swift.max(1, ConvolutionGeometry.forwardDepthBlock) + 1
        let depth = (k + blocks - 1) / blocks
        for k0 in stride(from: 0, to: k, by: depth) {
            parallelGemm(transA: false, transB: false, m: m, n: n, k: Swift.min(depth, k - k0), alpha: 1,
                         a: a + k0, lda: lda, b: b + k0 * ldb, ldb: ldb, beta: k0 == 0 ? 0 : 1, c: c, ldc: ldc)
        }
    }
}

extension TensorScalar {
    // Within a chunk, images with large output planes take one GEMM each, straight on their (K, L) slice of the
    // output or its gradient; small planes are gathered into one (K, images * L) block for a single GEMM. The
    // forward products are depth-blocked (`depthBlockedGemm`).

    static func convolutionForwardKernel(_ input: UnsafePointer<Self>, weight: UnsafePointer<Self>,
                                          bias: UnsafePointer<Self>?, _ output: UnsafeMutablePointer<Self>,
                                          outChannels: Int, geometry g: ConvolutionGeometry) {
        let (k, plane) = (g.columnRows, g.outputPlane)
        let inPlane = g.inputImageSize
        let perImage = g.gemmPerImage
        // Per image, the bias rides in the product: the weights get the bias as one more column and the columns a
        // row of ones, so the GEMM writes each output once.
        let rows = bias == nil ? k : k + 1
        let augmented = UnsafeMutablePointer<Self>.allocate(capacity: perImage && bias != nil ? outChannels * rows : 0)
        defer { augmented.deallocate() }
        if perImage, let bias {
            for o in 0..<outChannels {
                (augmented + o * rows).update(from: weight + o * k, count: k)
                augmented[o * rows + k] = bias[o]
            }
        }
        let wide = g.usesWideColumns
        g.forEachChunk { n0, count, _ in
            if wide {
                wideForward(input, weight: bias == nil ? weight : UnsafePointer(augmented), rows: rows, output,
                            outChannels: outChannels, images: n0, count: count, geometry: g)
                return
            }
            let columns = count * plane
            BufferPool.withScratch(Self.self, count: (perImage ? rows * plane : (k + outChannels) * columns)) { col in
                if perImage {
                    if bias != nil { (col + k * plane).update(repeating: 1, count: plane) }
                    for n in n0..<(n0 + count) {
                        im2col(input + n * inPlane, col, geometry: g.chunk(1))
                        depthBlockedGemm(m: outChannels, n: plane, k: rows,
                                         a: bias == nil ? weight : UnsafePointer(augmented), lda: rows, b: col,
                                         ldb: plane, c: output + n * outChannels * plane, ldc: plane)
                    }
                } else {
                    let product = col + k * columns
                    im2col(input + n0 * inPlane, col, geometry: g.chunk(count))
                    depthBlockedGemm(m: outChannels, n: columns, k: k, a: weight, lda: k, b: col, ldb: columns,
                                     c: product, ldc: columns)
                    swapLeadingAxes(product, output + n0 * outChannels * plane, outer: outChannels, middle: count,
                                    inner: plane, bias: bias)
                }
            }
        }
    }

    /// The gradients of `convolutionForward` for `gradOutput` (N, Cout, Hout, Wout), in one pass over it: each chunk
    /// of images brings its output gradient gy into the products' layout once and takes every gradient asked for
    /// from it, each written (not accumulated):
    ///   - `gradWeight` (Cout, K) = gy x col^T and `gradBias` (Cout) = the sums of gy come from one product, the bias
    ///     as one more column against a row of ones after the columns (as the forward adds it), summed over the
    ///     chunks per worker slot and then over the slots in order;
    ///   - `gradInput` (N, C, H, W) = col2im(W^T x gy), the product written over the unfolded columns once the
    ///     parameter product has read them.
    /// `input` is read for `gradWeight` only, `weight` for `gradInput` only.
    static func convolutionBackwardKernel(_ gradOutput: UnsafePointer<Self>, input: UnsafePointer<Self>?,
                                          weight: UnsafePointer<Self>?, gradInput: UnsafeMutablePointer<Self>?,
                                          gradWeight: UnsafeMutablePointer<Self>?,
                                          gradBias: UnsafeMutablePointer<Self>?, outChannels: Int,
                                          geometry g: ConvolutionGeometry) {
        let parameters = ParameterProduct(columnRows: g.columnRows, weight: gradWeight != nil, bias: gradBias != nil)
        let slots = Parallel.workerSlots
        let partials = UnsafeMutablePointer<BufferPool.Block?>.allocate(capacity: slots)
        partials.initialize(repeating: nil, count: slots)
        defer { partials.deallocate() }
        let blockCount = outChannels * parameters.rows
        g.forEachChunk { n0, count, worker in
            // Each slot sums its chunks' parameter gradients in a block of its own, the first product written over it.
            var beta: Self = 1
            if blockCount > 0 && partials[worker] == nil {
                partials[worker] = BufferPool.take(bytes: blockCount * MemoryLayout<Self>.stride)
                beta = 0
            }
            let sums = partials[worker]?.typed(Self.self)
            if g.usesWideColumns {
                wideBackward(gradOutput, input: input, weight: weight, gradInput: gradInput, sums: sums, beta: beta,
                             parameters: parameters, outChannels: outChannels, images: n0, count: count, geometry: g)
            } else {
                compactBackward(gradOutput, input: input, weight: weight, gradInput: gradInput, sums: sums,
                                beta: beta, parameters: parameters, outChannels: outChannels, images: n0,
                                count: count, geometry: g)
            }
        }
        guard blockCount > 0, let first = partials[0] else { return }
        let total = first.typed(Self.self)
        for slot in 1..<slots {
            guard let block = partials[slot] else { continue }
            accumulate(block.typed(Self.self), into: total, count: blockCount)
            BufferPool.give(block)
        }
        parameters.split(total, outChannels: outChannels, gradWeight: gradWeight, gradBias: gradBias)
        BufferPool.give(first)
    }

    /// `convolutionBackwardKernel` on compact columns for images n0 ..< n0 + count: one product per image on its
    /// own (Cout, L) slice of gy for large planes, one per chunk on the chunk's gy reordered to (Cout, images * L)
    /// for small ones. The column buffer holds K rows (the unfolded input, then W^T x gy) and the row of ones.
    static func compactBackward(_ gradOutput: UnsafePointer<Self>, input: UnsafePointer<Self>?,
                                weight: UnsafePointer<Self>?, gradInput: UnsafeMutablePointer<Self>?,
                                sums: UnsafeMutablePointer<Self>?, beta: Self, parameters: ParameterProduct,
                                outChannels: Int, images n0: Int, count: Int, geometry g: ConvolutionGeometry) {
        let (k, plane, inPlane) = (g.columnRows, g.outputPlane, g.inputImageSize)
        let perImage = g.gemmPerImage
        let (units, width) = perImage ? (count, plane) : (1, count * plane)
        var beta = beta
        BufferPool.withScratch(Self.self, count: (k + 1 + (perImage ? 0 : outChannels)) * width) { col in
            if parameters.bias { (col + k * width).update(repeating: 1, count: width) }
            for unit in 0..<units {
                // The unit's images, and its output gradient as a (Cout, width) matrix.
                let (first, images) = perImage ? (n0 + unit, 1) : (n0, count)
                let chunk = g.chunk(images)
                var gy = gradOutput + first * outChannels * plane
                if !perImage {
                    let reordered = col + (k + 1) * width
                    swapLeadingAxes(gy, reordered, outer: images, middle: outChannels, inner: plane, bias: nil)
                    gy = UnsafePointer(reordered)
                }
                if parameters.weight, let input { im2col(input + first * inPlane, col, geometry: chunk) }
                if let sums {
                    parameters.product(gy, col, width: width, outChannels: outChannels, beta: beta, into: sums)
                    beta = 1
                }
                if let gradInput, let weight {
                    parallelGemm(transA: true, transB: false, m: k, n: width, k: outChannels, alpha: 1, a: weight,
                                 lda: k, b: gy, ldb: width, beta: 0, c: col, ldc: width)
                    let dx = gradInput + first * inPlane
                    dx.update(repeating: 0, count: images * inPlane)
                    col2im(col, dx, geometry: chunk)
                }
            }
        }
    }
}

/// The parameter gradients' product of a convolution's backward, dP (Cout, rows) = gy (Cout, n) x R^T with R
/// (rows, n): the K unfolded column rows when the weight gradient is asked for, then a row of ones when the bias
/// gradient is. In a column buffer of K + 1 rows (the ones last), R starts at row 0, or at the ones row alone.
struct ParameterProduct: Sendable {
    var columnRows: Int
    var weight: Bool
    var bias: Bool

    /// Rows of R, columns of dP.
    var rows: Int { (weight ? columnRows : 0) + (bias ? 1 : 0) }

    /// dP = gy x R^T, R taken from `columns` (K + 1 rows of `width`), added onto `sums` (Cout, rows) with `beta`.
    func product<S: TensorScalar>(_ gy: UnsafePointer<S>, _ columns: UnsafePointer<S>, width: Int, outChannels: Int,
                                  beta: S, into sums: UnsafeMutablePointer<S>) {
        S.parallelGemm(transA: false, transB: true, m: outChannels, n: rows, k: width, alpha: 1, a: gy, lda: width,
                       b: columns + (weight ? 0 : columnRows * width), ldb: width, beta: beta, c: sums, ldc: rows)
    }

    /// Writes dP's columns out: the first K to `gradWeight` (Cout, K), the last to `gradBias` (Cout).
    func split<S: TensorScalar>(_ sums: UnsafePointer<S>, outChannels: Int, gradWeight: UnsafeMutablePointer<S>?,
                                gradBias: UnsafeMutablePointer<S>?) {
        for o in 0..<outChannels {
            if let gradWeight { (gradWeight + o * columnRows).update(from: sums + o * rows, count: columnRows) }
            if let gradBias { gradBias[o] = sums[o * rows + rows - 1] }
        }
    }
}
