import CKernels

// MARK: - The zero mask of the Winograd weight gradient
//
// A direct convolution's weight gradient is an exact zero where no term of its sum is nonzero; the Winograd sums
// leave rounding residue there instead (see WinogradGeometry.swift). `winogradZeroUnsupported` finds these
// gradients from bit masks of the nonzero inputs and output gradients and sets them to zero.

/// Bit masks of the nonzero output gradients and inputs of every image, laid out on the padded grid of the output
/// ((outH + 2) x (outW + 2)), where filter tap (i, j) is a shift by i rows and j columns: the output gradient of
/// (image, k) at grid (y, x), the input of (image, c) at grid (y + ph, x + pw). The backward marks each image while
/// its planes are still in the cache from its tile transforms (`mark`), instead of reading the whole batch again.
struct WinogradNonzeroMasks: @unchecked Sendable {
    let gridW: Int
    /// Words per plane: the grid's bits and one spare word for shifted reads.
    let words: Int
    /// [image][k][words] and [image][c][words].
    let outBits: UnsafeMutablePointer<UInt64>
    let inBits: UnsafeMutablePointer<UInt64>

    init(geometry g: WinogradGeometry) {
        gridW = g.outputWidth + 2
        words = ((g.outputHeight + 2) * gridW + 63) / 64 + 1
        outBits = .allocate(capacity: g.batch * g.outChannels * words)
        inBits = .allocate(capacity: g.batch * g.channels * words)
    }

    func deallocate() {
        outBits.deallocate()
        inBits.deallocate()
    }

    /// Marks image `image`: its output gradient planes (K, outH, outW) and input planes (C, H, W).
    func mark<Scalar: TensorScalar>(image: Int, gradOutput: UnsafePointer<Scalar>, input: UnsafePointer<Scalar>,
                                    geometry g: WinogradGeometry) {
        let (oh, ow, k, c) = (g.outputHeight, g.outputWidth, g.outChannels, g.channels)
        let outMask = outBits + image * k * words
        outMask.update(repeating: 0, count: k * words)
        Scalar.markNonzero(gradOutput, CKNonzeroBlock(planes: k, rows: oh, width: ow, srcPlaneStride: oh * ow,
                                                      srcRowStride: ow, first: 0, bitRowStride: gridW,
                                                      bitPlaneWords: words), outMask)
        let (h, w) = (g.height, g.width)
        let rowsInGrid = Swift.min(h, oh + 2 - g.padHeight), columnsInGrid = Swift.min(w, gridW - g.padWidth)
        let inMask = inBits + image * c * words
        inMask.update(repeating: 0, count: c * words)
        Scalar.markNonzero(input, CKNonzeroBlock(planes: c, rows: Swift.max(0, rowsInGrid),
                                                 width: Swift.max(0, columnsInGrid), srcPlaneStride: h * w,
                                                 srcRowStride: w, first: g.padHeight * gridW + g.padWidth,
                                                 bitRowStride: gridW, bitPlaneWords: words), inMask)
    }
}

extension TensorScalar {
    /// Sets to exactly zero every weight gradient whose sum has no nonzero term: filter tap (i, j) of (k, c) meets
    /// no position where both the output gradient of k and the input of c it reads are nonzero, in any image
    /// (`masks`, every image marked).
    ///
    /// The direct sum is then an exact zero, but the Winograd one carries rounding residue, which Adam would turn
    /// into a step of up to the full learning rate. Only nonzero gradients below 1e-4 of the largest one are tested:
    /// the residue is far smaller (below 1e-6 of the largest in training on digits, where a third to two thirds of
    /// these gradients are exact zeros), a larger value has support anyway, and most exact zeros (whole dead channels)
    /// come out of the Winograd sums as exact zeros already.
    static func winogradZeroUnsupported(_ gradWeight: UnsafeMutablePointer<Self>, masks: WinogradNonzeroMasks,
                                        geometry g: WinogradGeometry) {
        let (k, c, n) = (g.outChannels, g.channels, g.batch)
        let threshold = largestMagnitude(gradWeight, count: k * c * 9) * Self(1e-4)
        // Suspects, grouped by filter (k, c): the filter index and a mask of its suspect taps (each filter's mask
        // found in parallel, then listed in filter order).
        let filters = k * c
        var suspectTaps = [UInt16](repeating: 0, count: filters)
        suspectTaps.withUnsafeMutableBufferPointer { found in
            Parallel.forRanges(filters, minimumPerThread: 4096) { range in
                for filter in range {
                    let w = gradWeight + filter * 9
                    var taps: UInt16 = 0
                    for tap in 0..<9 where w[tap] != 0 && Swift.abs(w[tap]) <= threshold { taps |= 1 << UInt16(tap) }
                    found[filter] = taps
                }
            }
        }
        var suspects: [(filter: Int32, taps: UInt16)] = []
        suspectTaps.withUnsafeBufferPointer { found in
            for filter in 0..<filters where found[filter] != 0 { suspects.append((Int32(filter), found[filter])) }
        }
        guard !suspects.isEmpty else { return }
        let (gridW, words, outBits, inBits) = (masks.gridW, masks.words, masks.outBits, masks.inBits)
        // The union of each channel's masks over the images: a tap whose unions do not meet has no nonzero pair in
        // any image, and needs no search image by image (the usual case of an exact zero: a channel dead in every
        // image, or nonzeros that never line up under the tap's shift).
        let anyOut = UnsafeMutablePointer<UInt64>.allocate(capacity: k * words)
        let anyIn = UnsafeMutablePointer<UInt64>.allocate(capacity: c * words)
        defer {
            anyOut.deallocate()
            anyIn.deallocate()
        }
        unionOverImages(outBits, anyOut, images: n, planes: k, words: words)
        unionOverImages(inBits, anyIn, images: n, planes: c, words: words)
        // Tap (i, j) is a shift by i grid rows and j columns.
        let shifts = (0..<9).map { ($0 / 3) * gridW + $0 % 3 }
        // Grids of at most 64 cells (the 5x5 maps' 7x7) hold a plane's mask in one word (the spare stays zero):
        // there the search runs over the images' words of a channel laid out together, one OR of ANDs per tap
        // instead of a test per image.
        let oneWord = words == 2
        let outWords = oneWord ? UnsafeMutablePointer<UInt64>.allocate(capacity: k * n) : nil
        let inWords = oneWord ? UnsafeMutablePointer<UInt64>.allocate(capacity: c * n) : nil
        defer {
            outWords?.deallocate()
            inWords?.deallocate()
        }
        if let outWords, let inWords {
            for image in 0..<n {
                for ko in 0..<k { outWords[ko * n + image] = outBits[(image * k + ko) * words] }
                for ci in 0..<c { inWords[ci * n + image] = inBits[(image * c + ci) * words] }
            }
        }
        suspects.withUnsafeBufferPointer { list in
            Parallel.forRanges(list.count, minimumPerThread: 64) { range in
                for s in range {
                    let filter = Int(list[s].filter)
                    let (ko, ci) = (filter / c, filter % c)
                    // Taps whose unions meet: only these may have a nonzero pair; the others stay zeroed.
                    var candidates: UInt16 = 0
                    var remaining = list[s].taps
                    while remaining != 0 {
                        let tap = remaining.trailingZeroBitCount
                        remaining &= remaining - 1
                        if masksMeet(anyOut + ko * words, anyIn + ci * words, shift: shifts[tap], words: words) {
                            candidates |= 1 << UInt16(tap)
                        }
                    }
                    var supported: UInt16 = 0  // taps seen to meet a nonzero pair in one image
                    if let outWords, let inWords {
                        let (o, i) = (outWords + ko * n, inWords + ci * n)
                        var open = candidates
                        while open != 0 {
                            let tap = open.trailingZeroBitCount
                            open &= open - 1
                            let shift = UInt64(shifts[tap])
                            var meet: UInt64 = 0
                            for image in 0..<n { meet |= o[image] & (i[image] >> shift) }
                            if meet != 0 { supported |= 1 << UInt16(tap) }
                        }
                    } else {
                        for image in 0..<n {
                            guard candidates & ~supported != 0 else { break }
                            let o = outBits + (image * k + ko) * words
                            let i = inBits + (image * c + ci) * words
                            var open = candidates & ~supported
                            while open != 0 {
                                let tap = open.trailingZeroBitCount
                                open &= open - 1
                                if masksMeet(o, i, shift: shifts[tap], words: words) {
                                    supported |= 1 << UInt16(tap)
                                }
                            }
                        }
                    }
                    var zeros = list[s].taps & ~supported
                    var tap = 0
                    while zeros != 0 {
                        if zeros & 1 != 0 { gradWeight[filter * 9 + tap] = 0 }
                        zeros >>= 1
                        tap += 1
                    }
                }
            }
        }
    }

    /// True when some bit of `output` meets the bit `shift` places further on in `input` (masks of `words` words,
    /// the last one spare).
    @inline(__always)
    private static func masksMeet(_ output: UnsafePointer<UInt64>, _ input: UnsafePointer<UInt64>, shift: Int,
                                  words: Int) -> Bool {
        let (q, r) = (shift >> 6, UInt64(shift & 63))
        for word in 0..<(words - 1 - q) {
            // Input bits shifted down by `shift`: bit b of the result is input bit b + shift.
            var shifted = input[word + q] >> r
            if r != 0 { shifted |= input[word + q + 1] << (64 - r) }
            if output[word] & shifted != 0 { return true }
        }
        return false
    }

    /// union[p] = the OR of masks[image, p] over the images, for masks laid out (images, planes, words).
    private static func unionOverImages(_ masks: UnsafePointer<UInt64>, _ union: UnsafeMutablePointer<UInt64>,
                                        images: Int, planes: Int, words: Int) {
        Parallel.forRanges(planes, minimumPerThread: 16) { range in
            for p in range {
                let u = union + p * words
                u.update(from: masks + p * words, count: words)
                for image in 1..<Swift.max(1, images) {
                    let m = masks + (image * planes + p) * words
                    for word in 0..<words { u[word] |= m[word] }
                }
            }
        }
    }
}

extension TensorScalar {
    /// The largest magnitude of `count` values (NaN skipped; 0 for none): Float's by `ck_max_magnitude`.
    static func largestMagnitude(_ x: UnsafePointer<Self>, count: Int) -> Self {
        // One part per thread, then the largest of theirs (a maximum: the same at any split; NaN skipped).
        let parts = Swift.min(Parallel.threads, count >> 16)
        if parts > 1 && Parallel.canFanOut {
            var maxima = [Self](repeating: 0, count: parts)
            maxima.withUnsafeMutableBufferPointer { m in
                Parallel.forEach(parts) { p in
                    let (start, end) = (count * p / parts, count * (p + 1) / parts)
                    m[p] = largestMagnitudeBlock(x + start, count: end - start)
                }
            }
            return maxima.reduce(0) { $1 > $0 ? $1 : $0 }
        }
        return largestMagnitudeBlock(x, count: count)
    }

    /// `largestMagnitude` on the calling thread.
    private static func largestMagnitudeBlock(_ x: UnsafePointer<Self>, count: Int) -> Self {
        if Self.self == Float.self {
            return Self(ck_max_magnitude(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), count))
        }
        var largest: Self = 0
        for i in 0..<count where Swift.abs(x[i]) > largest { largest = Swift.abs(x[i]) }
        return largest
    }

    /// `markNonzero` for any element type: each row's bits packed a word at a time without branches.
    static func markNonzeroKernel(_ src: UnsafePointer<Self>, _ block: CKNonzeroBlock,
                                  _ bits: UnsafeMutablePointer<UInt64>) {
        for p in 0..<block.planes {
            for r in 0..<block.rows {
                markNonzeroRow(src + p * block.srcPlaneStride + r * block.srcRowStride, count: block.width,
                               first: block.first + r * block.bitRowStride, bits + p * block.bitPlaneWords)
            }
        }
    }

    private static func markNonzeroRow(_ src: UnsafePointer<Self>, count: Int, first: Int,
                                       _ bits: UnsafeMutablePointer<UInt64>) {
        var word = first >> 6, shift = UInt64(first & 63)
        var pending: UInt64 = 0
        for x in 0..<count {
            pending |= UInt64(src[x] != 0 ? 1 : 0) << shift
            shift += 1
            if shift == 64 {
                bits[word] |= pending
                pending = 0
                shift = 0
                word += 1
            }
        }
        if pending != 0 { bits[word] |= pending }
    }
}
