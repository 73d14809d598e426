// MARK: - Winograd convolution F(3x3, 3x3)
//
// A 3x3 convolution with stride 1 computes each 3x3 block of outputs from a 5x5 block ("tile") of the padded input
// with 25 multiplications per channel pair instead of 81 (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016; the transforms are Toom-Cook's for the interpolation points 0, 1, -1, -2 and infinity):
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A        (per channel pair, summed over input channels)
//
//   B^T = [ 2  1 -2 -1  0 ]    G = [ 1/2    0    0  ]    A^T = [ 1  1  1  1  0 ]
//         [ 0  2  3  1  0 ]        [ 1/6  1/6  1/6  ]          [ 0  1 -1 -2  0 ]
//         [ 0 -2  1  1  0 ]        [ 1/2 -1/2  1/2  ]          [ 0  1  1  4  1 ]
//         [ 0  1  0 -1  0 ]        [ 1/6 -1/3  2/3  ]
//         [ 0 -2 -1  2  1 ]        [  0    0    1   ]
//
// Summed over input channels, each of the 25 positions xi of the transformed tiles is one matrix product:
//   M[xi] (tiles x K) = V[xi] (tiles x C) * U[xi] (C x K),
// with V the transformed input tiles and U the transformed filters, so the whole convolution is 25 GEMMs over all
// tiles of a chunk of images, between cheap linear transforms. The backward pass is the exact adjoint of this
// computation for the input: dM = A dY A^T (the output transform's adjoint), dV[xi] = dM[xi] U[xi]^T, and
// dx = B dV B^T scattered back onto the overlapping input tiles.
//
// The weight gradient is not computed this way. In exact arithmetic dg = G^T (sum over tiles of V (.) dM) G, but in
// floating point a weight whose inputs and output gradients never meet (structural zeros: dead units, the single
// position a max pool passes back) gets a rounding residue instead of an exact zero, and Adam turns any nonzero
// gradient, however small, into a step of up to the full learning rate. The convolution takes its weight gradient
// from im2col GEMMs instead, where such sums have no nonzero term.
//
// Small images (5x5 outputs, say) waste most of a 3x3 tiling; there F(5x5, 3x3) (7x7 tiles, 49 multiplications per
// 25 outputs) is used instead, with the same layouts.
//
// Layouts. Channels are vectorised in groups of 8 lanes: V is [xi][tile][C8], M and dM are [xi][tile][K8], U is
// [xi][C][K8] (C8, K8 = channel counts rounded up to a multiple of 8; the extra lanes are never read by the GEMMs).
// A padded image is first copied into a scratch [group][row][column][8 lanes], so that every tile load is one
// vector load with no bounds test; outputs go through a scratch of the same form.

/// The sizes of a Winograd F(m x m, 3x3) convolution over NCHW input, with output blocks of m = 3 (tiles of 5) or,
/// for small images where whole-image tiles waste less, m = 5 (tiles of 7).
struct WinogradGeometry: Sendable, Equatable {
    var batch: Int
    var channels: Int
    var height: Int
    var width: Int
    var outChannels: Int
    var padHeight: Int
    var padWidth: Int
    /// Output block edge m: 3, or 5.
    var block: Int

    /// When set, convolutions take this block instead of choosing (for tests of both block sizes).
    nonisolated(unsafe) static var forcedBlock: Int?
    /// The backward pass keeps every tile's transforms at once (instead of chunks of images) up to this many
    /// elements.
    nonisolated(unsafe) static var allAtOnceLimit = 1 << 22

    /// `block` nil picks the block with the fewest multiplications (5 only when it saves at least a third).
    init(batch: Int, channels: Int, height: Int, width: Int, outChannels: Int, padding: (Int, Int),
                block: Int? = nil) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.outChannels = outChannels
        (padHeight, padWidth) = padding
        self.block = 3
        if let block = block ?? Self.forcedBlock {
            check(block == 3 || block == 5, "WinogradGeometry: block \(block) is not 3 or 5")
            self.block = block
        } else {
            var five = self
            five.block = 5
            if 3 * five.tilesPerImage * five.positions <= 2 * tilesPerImage * positions { self.block = 5 }
        }
    }

    var outputHeight: Int { height + 2 * padHeight - 2 }
    var outputWidth: Int { width + 2 * padWidth - 2 }
    /// Input tile edge (m + 2) and number of tile positions ((m + 2)^2).
    var tile: Int { block + 2 }
    var positions: Int { tile * tile }
    var tilesHigh: Int { (outputHeight + block - 1) / block }
    var tilesWide: Int { (outputWidth + block - 1) / block }
    var tilesPerImage: Int { tilesHigh * tilesWide }
    /// Rows and columns of the padded input scratch (every tile inside it), and of the output scratch.
    var rows: Int { tilesHigh * block + 2 }
    var columns: Int { tilesWide * block + 2 }
    var outRows: Int { tilesHigh * block }
    var outColumns: Int { tilesWide * block }
    var inGroups: Int { (channels + 7) / 8 }
    var outGroups: Int { (outChannels + 7) / 8 }
    var inLanes: Int { inGroups * 8 }
    var outLanes: Int { outGroups * 8 }
    /// Elements of the transformed filters U.
    var filterCount: Int { positions * channels * outLanes }

    /// Images per chunk: transformed tiles (V and M) of about 2^20 elements, so a chunk stays in the cache and every
    /// layer's chunks fit the same scratch blocks, and at least one chunk per thread.
    func imagesPerChunk(threads: Int) -> Int {
        let perTile = positions * (inLanes + outLanes)
        let targetTiles = Swift.min(512, Swift.max(16, (1 << 20) / perTile))
        var images = Swift.max(1, Swift.min(batch, targetTiles / Swift.max(1, tilesPerImage)))
        var chunks = (batch + images - 1) / images
        if threads > 1 && chunks % threads != 0 {
            chunks = (chunks + threads - 1) / threads * threads
            images = Swift.max(1, (batch + chunks - 1) / chunks)
        }
        return images
    }

    /// True when the transformed tiles of the whole batch are few enough to hold at once (small images): then the
    /// passes run per image and per tile position instead of per chunk of images.
    var allAtOnce: Bool { batch * tilesPerImage * positions * (inLanes + outLanes) <= Self.allAtOnceLimit }

    /// The filter transform G, `tile` x 3, row-major.
    var filterMatrix: [Double] {
        block == 5 ? WinogradMatrices5.filterTransform : WinogradMatrices3.filterTransform
    }

    /// Scratch elements one chunk of `images` images needs: V, M and the image-sized tile scratch.
    func scratchCount(images: Int) -> Int {
        let tiles = images * tilesPerImage
        let input = inGroups * rows * columns * 8
        let output = outGroups * outRows * outColumns * 8
        return positions * tiles * (inLanes + outLanes) + Swift.max(input, output)
    }
}

/// The filter transform of F(3x3, 3x3) (G above), row-major, 5 x 3.
enum WinogradMatrices3 {
    static let filterTransform: [Double] = [
        0.5, 0, 0,
        1.0 / 6, 1.0 / 6, 1.0 / 6,
        0.5, -0.5, 0.5,
        1.0 / 6, -1.0 / 3, 2.0 / 3,
        0, 0, 1,
    ]
}

/// The transform matrices of F(5x5, 3x3), row-major, for the interpolation points 0, 1, -1, 2, -2, 1/2 and infinity
/// (the same construction as F(3x3, 3x3) above). The kernels apply them through the factored rows `inputRow5`,
/// `outputRow5` and `filterRow5` and their adjoints; the tests check those against these matrices.
enum WinogradMatrices5 {
    /// B^T, 7 x 7.
    static let inputTransform: [Double] = [
        4, -8, -5, 10, 1, -2, 0,
        0, -4, 4, 9, -1, -2, 0,
        0, -4, 12, -7, -3, 2, 0,
        0, 2, -3, -4, 3, 2, 0,
        0, 2, -5, 0, 5, -2, 0,
        0, 4, 0, -5, 0, 1, 0,
        0, -4, 8, 5, -10, -1, 2,
    ]
    /// A^T, 5 x 7.
    static let outputTransform: [Double] = [
        1, 1, 1, 1, 1, 1, 0,
        0, 1, -1, 2, -2, 0.5, 0,
        0, 1, 1, 4, 4, 0.25, 0,
        0, 1, -1, 8, -8, 0.125, 0,
        0, 1, 1, 16, 16, 0.0625, 1,
    ]
    /// G, 7 x 3.
    static let filterTransform: [Double] = [
        1.0 / 4, 0, 0,
        1.0 / 6, 1.0 / 6, 1.0 / 6,
        1.0 / 18, -1.0 / 18, 1.0 / 18,
        1.0 / 72, 1.0 / 36, 1.0 / 18,
        1.0 / 120, -1.0 / 60, 1.0 / 30,
        32.0 / 45, 16.0 / 45, 8.0 / 45,
        0, 0, 0.5,
    ]
}

// MARK: - One-dimensional transforms

extension TensorScalar {
    typealias Lanes = SIMD8<Self>

    @inline(__always) static func load8(_ p: UnsafePointer<Self>) -> Lanes {
        UnsafeRawPointer(p).loadUnaligned(as: Lanes.self)
    }

    @inline(__always) static func store8(_ v: Lanes, _ p: UnsafeMutablePointer<Self>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    }

    /// The 8 x 8 transpose of the vectors `r[0..<8]` (vector i, lane j -> vector j, lane i), in place.
    ///
    /// Three rounds of pairing vectors i and i + 4 into the even and odd lanes of their concatenation transpose a
    /// matrix whose rows come in bit-reversed order into columns in bit-reversed order; the loads and stores put
    /// the rows and columns back in order.
    @inline(__always)
    static func transpose8(_ r: UnsafeMutablePointer<Lanes>) {
        @inline(__always) func split(_ a: Lanes, _ b: Lanes) -> (Lanes, Lanes) {
            let c = SIMD16(lowHalf: a, highHalf: b)
            return (c.evenHalf, c.oddHalf)
        }
        var (x0, x1, x2, x3, x4, x5, x6, x7) = (r[0], r[4], r[2], r[6], r[1], r[5], r[3], r[7])
        for _ in 0..<3 {
            let (y0, y1) = split(x0, x4), (y2, y3) = split(x1, x5)
            let (y4, y5) = split(x2, x6), (y6, y7) = split(x3, x7)
            (x0, x1, x2, x3, x4, x5, x6, x7) = (y0, y1, y2, y3, y4, y5, y6, y7)
        }
        r[0] = x0; r[4] = x1; r[2] = x2; r[6] = x3; r[1] = x4; r[5] = x5; r[3] = x6; r[7] = x7
    }

    /// Copies rows of 8 planes into 8-lane interleaved form: dst[x * 8 + l] = planes[l][x] for x in 0..<count,
    /// where plane l starts at `src + l * planeStride` (only `lanes` planes exist; the other lanes get zeros).
    /// When `sum` is given, the copied values are also added into it, lane by lane.
    @inline(__always)
    static func interleave(_ src: UnsafePointer<Self>, planeStride: Int, lanes: Int, count: Int,
                           _ dst: UnsafeMutablePointer<Self>, _ t: UnsafeMutablePointer<Lanes>,
                           sum: UnsafeMutablePointer<Lanes>? = nil) {
        var x = 0
        var total = Lanes()
        if lanes == 8 {
            while x + 8 <= count {
                for l in 0..<8 { t[l] = load8(src + l * planeStride + x) }
                transpose8(t)
                for i in 0..<8 { store8(t[i], dst + (x + i) * 8) }
                if sum != nil { total += ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7])) }
                x += 8
            }
        }
        while x < count {
            var v = Lanes()
            for l in 0..<lanes { v[l] = src[l * planeStride + x] }
            store8(v, dst + x * 8)
            total += v
            x += 1
        }
        if let sum { sum.pointee += total }
    }

    /// The inverse of `interleave` for the first `lanes` lanes, adding shift[l] to plane l when given.
    @inline(__always)
    static func deinterleave(_ src: UnsafePointer<Self>, count: Int, _ dst: UnsafeMutablePointer<Self>,
                             planeStride: Int, lanes: Int, shift: Lanes?, _ t: UnsafeMutablePointer<Lanes>) {
        var x = 0
        if lanes == 8 {
            while x + 8 <= count {
                for i in 0..<8 { t[i] = load8(src + (x + i) * 8) }
                transpose8(t)
                if let shift {
                    for l in 0..<8 { store8(t[l] + Lanes(repeating: shift[l]), dst + l * planeStride + x) }
                } else {
                    for l in 0..<8 { store8(t[l], dst + l * planeStride + x) }
                }
                x += 8
            }
        }
        while x < count {
            let v = load8(src + x * 8)
            for l in 0..<lanes { dst[l * planeStride + x] = v[l] + (shift?[l] ?? 0) }
            x += 1
        }
    }

    /// B^T d (5 -> 5).
    @inline(__always)
    static func inputRow(_ d0: Lanes, _ d1: Lanes, _ d2: Lanes, _ d3: Lanes, _ d4: Lanes)
        -> (Lanes, Lanes, Lanes, Lanes, Lanes) {
        let v3 = d1 - d3
        let s = d2 + d3
        let d02 = d0 - d2
        let d12 = d1 + d2
        return (d02 + d02 + v3, d12 + d12 + s, s - (d1 + d1), v3, d4 - (v3 + v3) - d2)
    }

    /// B w (5 -> 5), the adjoint of `inputRow`.
    @inline(__always)
    static func inputRowAdjoint(_ w0: Lanes, _ w1: Lanes, _ w2: Lanes, _ w3: Lanes, _ w4: Lanes)
        -> (Lanes, Lanes, Lanes, Lanes, Lanes) {
        let w24 = w2 + w4
        let w12 = w1 + w2
        return (w0 + w0,
                w0 + w3 + ((w1 - w24) + (w1 - w24)),
                (w12 + w1 + w1) - (w0 + w0) - w4,
                w12 - w0 - w3 + (w4 + w4),
                w4)
    }

    /// A^T m (5 -> 3).
    @inline(__always)
    static func outputRow(_ m0: Lanes, _ m1: Lanes, _ m2: Lanes, _ m3: Lanes, _ m4: Lanes) -> (Lanes, Lanes, Lanes) {
        let s = m1 + m2
        let d = m1 - m2
        let m3x2 = m3 + m3
        return (m0 + s + m3, d - m3x2, s + (m3x2 + m3x2) + m4)
    }

    /// A y (3 -> 5), the adjoint of `outputRow`.
    @inline(__always)
    static func outputRowAdjoint(_ y0: Lanes, _ y1: Lanes, _ y2: Lanes) -> (Lanes, Lanes, Lanes, Lanes, Lanes) {
        let s = y0 + y2
        let y2x4 = (y2 + y2) + (y2 + y2)
        return (y0, s + y1, s - y1, y0 - (y1 + y1) + y2x4, y2)
    }

    /// G g (3 -> 5).
    @inline(__always)
    static func filterRow(_ g0: Lanes, _ g1: Lanes, _ g2: Lanes) -> (Lanes, Lanes, Lanes, Lanes, Lanes) {
        let half: Self = 0.5, sixth: Self = 1 / 6
        let s = g0 + g2
        let g2x4 = (g2 + g2) + (g2 + g2)
        return (g0 * half, (s + g1) * sixth, (s - g1) * half, (g0 + g2x4 - (g1 + g1)) * sixth, g2)
    }

    /// B^T d for F(5x5, 3x3) (7 -> 7).
    @inline(__always)
    static func inputRow5(_ d: UnsafePointer<Lanes>) -> (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes) {
        let (d0, d1, d2, d3, d4, d5, d6) = (d[0], d[1], d[2], d[3], d[4], d[5], d[6])
        let d5x2 = d5 + d5, d1x2 = d1 + d1
        let d1x4 = d1x2 + d1x2
        var r0 = d0 * Self(4) - d1 * Self(8)
        r0 = r0 - d2 * Self(5) + d3 * Self(10)
        r0 = r0 + d4 - d5x2
        var r1 = d2 * Self(4) - d1x4
        r1 = r1 + d3 * Self(9) - d4 - d5x2
        var r2 = d2 * Self(12) - d1x4
        r2 = r2 - d3 * Self(7) - d4 * Self(3) + d5x2
        var r3 = d1x2 - d2 * Self(3)
        r3 = r3 - d3 * Self(4) + d4 * Self(3) + d5x2
        var r4 = d1x2 - d2 * Self(5)
        r4 = r4 + d4 * Self(5) - d5x2
        let r5 = d1x4 - d3 * Self(5) + d5
        var r6 = d2 * Self(8) - d1x4
        r6 = r6 + d3 * Self(5) - d4 * Self(10)
        r6 = r6 - d5 + (d6 + d6)
        return (r0, r1, r2, r3, r4, r5, r6)
    }

    /// B w for F(5x5, 3x3) (7 -> 7), the adjoint of `inputRow5`.
    @inline(__always)
    static func inputRowAdjoint5(_ w: UnsafePointer<Lanes>) -> (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes) {
        let (w0, w1, w2, w3, w4, w5, w6) = (w[0], w[1], w[2], w[3], w[4], w[5], w[6])
        var r1 = (w3 + w4 - (w1 + w2) * Self(2)) * Self(2)
        r1 = r1 + (w5 - w6) * Self(4) - w0 * Self(8)
        var r2 = w1 * Self(4) + w2 * Self(12)
        r2 = r2 - w3 * Self(3) - (w0 + w4) * Self(5)
        r2 = r2 + w6 * Self(8)
        var r3 = w0 * Self(10) + w1 * Self(9)
        r3 = r3 - w2 * Self(7) - w3 * Self(4)
        r3 = r3 + (w6 - w5) * Self(5)
        var r4 = w0 - w1 + (w3 - w2) * Self(3)
        r4 = r4 + w4 * Self(5) - w6 * Self(10)
        var r5 = (w2 + w3 - w0 - w1 - w4) * Self(2)
        r5 = r5 + w5 - w6
        return (w0 * Self(4), r1, r2, r3, r4, r5, w6 + w6)
    }

    /// A^T m for F(5x5, 3x3) (7 -> 5).
    @inline(__always)
    static func outputRow5(_ m: UnsafePointer<Lanes>) -> (Lanes, Lanes, Lanes, Lanes, Lanes) {
        let sp = m[1] + m[2], sm = m[1] - m[2], tp = m[3] + m[4], tm = m[3] - m[4], m5 = m[5]
        let y0 = m[0] + sp + tp + m5
        let y1 = sm + (tm + tm) + m5 * Self(0.5)
        let y2 = sp + tp * Self(4) + m5 * Self(0.25)
        let y3 = sm + tm * Self(8) + m5 * Self(0.125)
        var y4 = sp + tp * Self(16)
        y4 = y4 + m5 * Self(0.0625) + m[6]
        return (y0, y1, y2, y3, y4)
    }

    /// A y for F(5x5, 3x3) (5 -> 7), the adjoint of `outputRow5`.
    @inline(__always)
    static func outputRowAdjoint5(_ y: UnsafePointer<Lanes>) -> (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes) {
        let (y0, y1, y2, y3, y4) = (y[0], y[1], y[2], y[3], y[4])
        let even = y0 + y2 + y4, odd = y1 + y3
        let even2 = y0 + y2 * Self(4) + y4 * Self(16), odd2 = y1 * Self(2) + y3 * Self(8)
        var r5 = y0 + y1 * Self(0.5) + y2 * Self(0.25)
        r5 = r5 + y3 * Self(0.125) + y4 * Self(0.0625)
        return (y0, even + odd, even - odd, even2 + odd2, even2 - odd2, r5, y4)
    }

    /// G g for F(5x5, 3x3) (3 -> 7): the rows of `WinogradMatrices5.filterTransform`, factored.
    @inline(__always)
    static func filterRow5(_ g0: Lanes, _ g1: Lanes, _ g2: Lanes)
        -> (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes) {
        let s = g0 + g2
        let g1x2 = g1 + g1
        let p = g0 + (g2 + g2) + (g2 + g2)
        let q = (g0 + g0) + (g0 + g0) + g1x2 + g2
        return (g0 * Self(0.25), (s + g1) * Self(1.0 / 6), (s - g1) * Self(1.0 / 18), (p + g1x2) * Self(1.0 / 72),
                (p - g1x2) * Self(1.0 / 120), q * Self(8.0 / 45), g2 * Self(0.5))
    }

    /// G^T u (5 -> 3), the adjoint of `filterRow`.
    @inline(__always)
    static func filterRowAdjoint(_ u: UnsafePointer<Lanes>) -> (Lanes, Lanes, Lanes) {
        let (u0, u1, u2, u3, u4) = (u[0], u[1], u[2], u[3], u[4])
        let a = u1 * Self(1.0 / 6), b = u2 * Self(0.5)
        let d0 = (u0 + u2) * Self(0.5) + (u1 + u3) * Self(1.0 / 6)
        let d1 = a - b - u3 * Self(1.0 / 3)
        let d2 = a + b + u3 * Self(2.0 / 3) + u4
        return (d0, d1, d2)
    }

    /// G^T u for F(5x5, 3x3) (7 -> 3), the adjoint of `filterRow5`.
    @inline(__always)
    static func filterRowAdjoint5(_ u: UnsafePointer<Lanes>) -> (Lanes, Lanes, Lanes) {
        let (u0, u1, u2, u3, u4, u5, u6) = (u[0], u[1], u[2], u[3], u[4], u[5], u[6])
        let a = u1 * Self(1.0 / 6), b = u2 * Self(1.0 / 18)
        var d0 = u0 * Self(0.25) + a + b
        d0 = d0 + u3 * Self(1.0 / 72) + u4 * Self(1.0 / 120)
        d0 = d0 + u5 * Self(32.0 / 45)
        var d1 = a - b + u3 * Self(1.0 / 36)
        d1 = d1 - u4 * Self(1.0 / 60) + u5 * Self(16.0 / 45)
        var d2 = a + b + u3 * Self(1.0 / 18)
        d2 = d2 + u4 * Self(1.0 / 30) + u5 * Self(8.0 / 45)
        d2 = d2 + u6 * Self(0.5)
        return (d0, d1, d2)
    }
}

// MARK: - Tile plumbing

/// The side of the convolution a tile loop walks: the input (V and dV, and the padded input scratch) or the output
/// (M and dM, and the output scratch).
enum WinogradSide {
    case input, output
}

extension TensorScalar {
    /// Calls `body` for every tile of one image and every 8-lane channel group of `side`, tile rows outermost and
    /// groups innermost. `body` gets the offset of the tile's top-left corner in the group's part of the image scratch
    /// [group][row][column][8], and the offset of the tile's group lanes at tile position 0 of a transformed buffer
    /// [xi][tile][lanes] (whose image tiles start at `firstTile`).
    @inline(__always)
    static func winogradForEachTile(_ g: WinogradGeometry, _ side: WinogradSide, firstTile: Int,
                                    _ body: (_ scratchOffset: Int, _ tileOffset: Int) -> Void) {
        let (groups, lanes) = side == .input ? (g.inGroups, g.inLanes) : (g.outGroups, g.outLanes)
        let (rows, cols) = side == .input ? (g.rows, g.columns) : (g.outRows, g.outColumns)
        let groupSize = rows * cols * 8
        let m = g.block
        for ty in 0..<g.tilesHigh {
            for tx in 0..<g.tilesWide {
                let tile = firstTile + ty * g.tilesWide + tx
                let corner = (ty * m * cols + tx * m) * 8
                for group in 0..<groups { body(corner + group * groupSize, tile * lanes + group * 8) }
            }
        }
    }

    /// Writes the values of a one-dimensional transform to t[0], t[1], ...
    @inline(__always)
    static func unpack(_ r: (Lanes, Lanes, Lanes), into t: UnsafeMutablePointer<Lanes>) {
        t[0] = r.0; t[1] = r.1; t[2] = r.2
    }

    @inline(__always)
    static func unpack(_ r: (Lanes, Lanes, Lanes, Lanes, Lanes), into t: UnsafeMutablePointer<Lanes>) {
        t[0] = r.0; t[1] = r.1; t[2] = r.2; t[3] = r.3; t[4] = r.4
    }

    @inline(__always)
    static func unpack(_ r: (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes), into t: UnsafeMutablePointer<Lanes>) {
        t[0] = r.0; t[1] = r.1; t[2] = r.2; t[3] = r.3; t[4] = r.4; t[5] = r.5; t[6] = r.6
    }

    /// Stores the values of a one-dimensional transform at p, p + stride, p + 2 * stride, ... (a column of a
    /// transformed tile, whose value i goes to position i * n + j: p = o + j * positionStride and
    /// stride = n * positionStride; or a column of output rows in a scratch).
    @inline(__always)
    static func storeStrided(_ c: (Lanes, Lanes, Lanes), _ p: UnsafeMutablePointer<Self>, stride: Int) {
        store8(c.0, p)
        store8(c.1, p + stride)
        store8(c.2, p + 2 * stride)
    }

    @inline(__always)
    static func storeStrided(_ c: (Lanes, Lanes, Lanes, Lanes, Lanes), _ p: UnsafeMutablePointer<Self>, stride: Int) {
        store8(c.0, p)
        store8(c.1, p + stride)
        store8(c.2, p + 2 * stride)
        store8(c.3, p + 3 * stride)
        store8(c.4, p + 4 * stride)
    }

    @inline(__always)
    static func storeStrided(_ c: (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes), _ p: UnsafeMutablePointer<Self>,
                             stride: Int) {
        storeStrided((c.0, c.1, c.2, c.3, c.4), p, stride: stride)
        store8(c.5, p + 5 * stride)
        store8(c.6, p + 6 * stride)
    }

    /// Adds the values of a one-dimensional transform into p, p + stride, p + 2 * stride, ...
    @inline(__always)
    static func addStrided(_ c: (Lanes, Lanes, Lanes, Lanes, Lanes), _ p: UnsafeMutablePointer<Self>, stride: Int) {
        store8(load8(p) + c.0, p)
        store8(load8(p + stride) + c.1, p + stride)
        store8(load8(p + 2 * stride) + c.2, p + 2 * stride)
        store8(load8(p + 3 * stride) + c.3, p + 3 * stride)
        store8(load8(p + 4 * stride) + c.4, p + 4 * stride)
    }

    @inline(__always)
    static func addStrided(_ c: (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes), _ p: UnsafeMutablePointer<Self>,
                           stride: Int) {
        addStrided((c.0, c.1, c.2, c.3, c.4), p, stride: stride)
        store8(load8(p + 5 * stride) + c.5, p + 5 * stride)
        store8(load8(p + 6 * stride) + c.6, p + 6 * stride)
    }

    /// Gathers `count` vectors p[0], p[stride], p[2 * stride], ... into x[0..<count].
    @inline(__always)
    static func gather(_ p: UnsafePointer<Self>, count: Int, stride: Int, into x: UnsafeMutablePointer<Lanes>) {
        for i in 0..<count { x[i] = load8(p + i * stride) }
    }

    @inline(__always)
    static func gather(_ p: UnsafePointer<Lanes>, count: Int, stride: Int, into x: UnsafeMutablePointer<Lanes>) {
        for i in 0..<count { x[i] = p[i * stride] }
    }
}

// MARK: - Per-image transforms

extension TensorScalar {
    /// Copies image `image` (C, H, W) into the zero-padded scratch [group][row][column][8].
    static func winogradScatterImage(_ image: UnsafePointer<Self>, _ scratch: UnsafeMutablePointer<Self>,
                                     _ g: WinogradGeometry) {
        let (rows, cols) = (g.rows, g.columns)
        let groupSize = rows * cols * 8
        let (h, w) = (g.height, g.width)
        let (top, left) = (g.padHeight, g.padWidth)
        // Zero only what the image does not cover: the padding rows, and the padding columns of the image rows.
        for group in 0..<g.inGroups {
            let base = scratch + group * groupSize
            base.update(repeating: 0, count: top * cols * 8)
            (base + (top + h) * cols * 8).update(repeating: 0, count: (rows - top - h) * cols * 8)
            for y in top..<(top + h) {
                let row = base + y * cols * 8
                row.update(repeating: 0, count: left * 8)
                (row + (left + w) * 8).update(repeating: 0, count: (cols - left - w) * 8)
            }
        }
        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 8) { t in
            for group in 0..<g.inGroups {
                let lanes = Swift.min(8, g.channels - group * 8)
                let src = image + group * 8 * h * w
                let dst = scratch + group * groupSize + (top * cols + left) * 8
                for y in 0..<h {
                    interleave(src + y * w, planeStride: h * w, lanes: lanes, count: w, dst + y * cols * 8,
                               t.baseAddress!)
                }
            }
        }
    }

    /// V[xi][firstTile + t][group lanes] for every tile t of one image, from its padded scratch.
    static func winogradInputTiles(_ scratch: UnsafePointer<Self>, _ v: UnsafeMutablePointer<Self>,
                                   firstTile: Int, chunkTiles: Int, _ g: WinogradGeometry,
                                   _ t: UnsafeMutablePointer<Lanes>) {
        let step = g.columns * 8  // one scratch row
        let positionStride = chunkTiles * g.inLanes
        let x = t + 49
        winogradForEachTile(g, .input, firstTile: firstTile) { scratchOffset, tileOffset in
            // Rows into t[i][*], then columns into V.
            let origin = scratch + scratchOffset, o = v + tileOffset
            if g.block == 3 {
                for i in 0..<5 {
                    let row = origin + i * step
                    unpack(inputRow(load8(row), load8(row + 8), load8(row + 16), load8(row + 24), load8(row + 32)),
                           into: t + i * 5)
                }
                for j in 0..<5 {
                    storeStrided(inputRow(t[j], t[5 + j], t[10 + j], t[15 + j], t[20 + j]), o + j * positionStride,
                                 stride: 5 * positionStride)
                }
            } else {
                for i in 0..<7 {
                    gather(origin + i * step, count: 7, stride: 8, into: x)
                    unpack(inputRow5(x), into: t + i * 7)
                }
                for j in 0..<7 {
                    gather(t + j, count: 7, stride: 7, into: x)
                    storeStrided(inputRow5(x), o + j * positionStride, stride: 7 * positionStride)
                }
            }
        }
    }

    /// The adjoint of `winogradInputTiles` followed by `winogradScatterImage`: accumulates B dV B^T of every tile
    /// of one image into the padded scratch and writes the image part to `gradImage` (C, H, W).
    static func winogradInputTilesAdjoint(_ dv: UnsafePointer<Self>, firstTile: Int, chunkTiles: Int,
                                          _ scratch: UnsafeMutablePointer<Self>,
                                          _ gradImage: UnsafeMutablePointer<Self>, _ g: WinogradGeometry,
                                          _ t: UnsafeMutablePointer<Lanes>) {
        let (rows, cols) = (g.rows, g.columns)
        let groupSize = rows * cols * 8
        scratch.update(repeating: 0, count: g.inGroups * groupSize)
        let step = cols * 8  // one scratch row
        let positionStride = chunkTiles * g.inLanes
        let x = t + 49
        winogradForEachTile(g, .input, firstTile: firstTile) { scratchOffset, tileOffset in
            // Positions into t[p][*] by rows of the tile, then columns added into the scratch.
            let s = dv + tileOffset, origin = scratch + scratchOffset
            if g.block == 3 {
                for p in 0..<5 {
                    let q = s + p * 5 * positionStride
                    unpack(inputRowAdjoint(load8(q), load8(q + positionStride), load8(q + 2 * positionStride),
                                           load8(q + 3 * positionStride), load8(q + 4 * positionStride)),
                           into: t + p * 5)
                }
                for j in 0..<5 {
                    addStrided(inputRowAdjoint(t[j], t[5 + j], t[10 + j], t[15 + j], t[20 + j]), origin + j * 8,
                               stride: step)
                }
            } else {
                for p in 0..<7 {
                    gather(s + p * 7 * positionStride, count: 7, stride: positionStride, into: x)
                    unpack(inputRowAdjoint5(x), into: t + p * 7)
                }
                for j in 0..<7 {
                    gather(t + j, count: 7, stride: 7, into: x)
                    addStrided(inputRowAdjoint5(x), origin + j * 8, stride: step)
                }
            }
        }
        let (h, w) = (g.height, g.width)
        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 8) { t in
            for group in 0..<g.inGroups {
                let lanes = Swift.min(8, g.channels - group * 8)
                let src = scratch + group * groupSize + (g.padHeight * cols + g.padWidth) * 8
                let dst = gradImage + group * 8 * h * w
                for y in 0..<h {
                    deinterleave(src + y * cols * 8, count: w, dst + y * w, planeStride: h * w, lanes: lanes,
                                 shift: nil, t.baseAddress!)
                }
            }
        }
    }

    /// Output blocks A^T M A of every tile of one image into `output` (K, outH, outW), plus the bias.
    static func winogradOutputTiles(_ mm: UnsafePointer<Self>, firstTile: Int, chunkTiles: Int,
                                    _ scratch: UnsafeMutablePointer<Self>, _ output: UnsafeMutablePointer<Self>,
                                    bias: UnsafePointer<Self>?, _ g: WinogradGeometry,
                                    _ t: UnsafeMutablePointer<Lanes>) {
        let outCols = g.outColumns
        let groupSize = g.outRows * outCols * 8
        let step = outCols * 8  // one scratch row
        let positionStride = chunkTiles * g.outLanes
        let x = t + 49
        winogradForEachTile(g, .output, firstTile: firstTile) { scratchOffset, tileOffset in
            // Positions into t[i][*] by rows of the tile, then columns into output rows of the scratch.
            let s = mm + tileOffset, origin = scratch + scratchOffset
            if g.block == 3 {
                for i in 0..<5 {
                    let p = s + i * 5 * positionStride
                    unpack(outputRow(load8(p), load8(p + positionStride), load8(p + 2 * positionStride),
                                     load8(p + 3 * positionStride), load8(p + 4 * positionStride)), into: t + i * 3)
                }
                for b in 0..<3 {
                    storeStrided(outputRow(t[b], t[3 + b], t[6 + b], t[9 + b], t[12 + b]), origin + b * 8,
                                 stride: step)
                }
            } else {
                for i in 0..<7 {
                    gather(s + i * 7 * positionStride, count: 7, stride: positionStride, into: x)
                    unpack(outputRow5(x), into: t + i * 5)
                }
                for b in 0..<5 {
                    gather(t + b, count: 7, stride: 5, into: x)
                    storeStrided(outputRow5(x), origin + b * 8, stride: step)
                }
            }
        }
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 8) { t in
            for group in 0..<g.outGroups {
                let lanes = Swift.min(8, g.outChannels - group * 8)
                var shift: Lanes? = nil
                if let bias {
                    var b = Lanes()
                    for l in 0..<lanes { b[l] = bias[group * 8 + l] }
                    shift = b
                }
                let src = scratch + group * groupSize
                let dst = output + group * 8 * oh * ow
                for y in 0..<oh {
                    deinterleave(src + y * outCols * 8, count: ow, dst + y * ow, planeStride: oh * ow, lanes: lanes,
                                 shift: shift, t.baseAddress!)
                }
            }
        }
    }

    /// dM[xi][firstTile + t] = A dY A^T for every tile t of one image, from its output gradient (K, outH, outW).
    /// With `channelSums`, also writes the sum of each channel of the image's output gradient there (K values).
    static func winogradOutputTilesAdjoint(_ gradOutput: UnsafePointer<Self>, _ scratch: UnsafeMutablePointer<Self>,
                                           _ dm: UnsafeMutablePointer<Self>, firstTile: Int, chunkTiles: Int,
                                           _ g: WinogradGeometry, _ t: UnsafeMutablePointer<Lanes>,
                                           channelSums: UnsafeMutablePointer<Self>? = nil) {
        let outCols = g.outColumns
        let outRows = g.outRows
        let groupSize = outRows * outCols * 8
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        // Zero only the tile area past the output (the copy below writes every lane of the rest).
        for group in 0..<g.outGroups {
            let base = scratch + group * groupSize
            (base + oh * outCols * 8).update(repeating: 0, count: (outRows - oh) * outCols * 8)
            for y in 0..<oh {
                (base + (y * outCols + ow) * 8).update(repeating: 0, count: (outCols - ow) * 8)
            }
        }
        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 9) { t in
            let total = t.baseAddress! + 8
            for group in 0..<g.outGroups {
                let lanes = Swift.min(8, g.outChannels - group * 8)
                let src = gradOutput + group * 8 * oh * ow
                let dst = scratch + group * groupSize
                total.pointee = Lanes()
                for y in 0..<oh {
                    interleave(src + y * ow, planeStride: oh * ow, lanes: lanes, count: ow, dst + y * outCols * 8,
                               t.baseAddress!, sum: channelSums == nil ? nil : total)
                }
                if let channelSums {
                    for l in 0..<lanes { channelSums[group * 8 + l] = total.pointee[l] }
                }
            }
        }
        let step = outCols * 8  // one scratch row
        let positionStride = chunkTiles * g.outLanes
        let x = t + 49
        winogradForEachTile(g, .output, firstTile: firstTile) { scratchOffset, tileOffset in
            // Rows of the output block into t[r][*], then columns into dM.
            let origin = scratch + scratchOffset, o = dm + tileOffset
            if g.block == 3 {
                for r in 0..<3 {
                    let row = origin + r * step
                    unpack(outputRowAdjoint(load8(row), load8(row + 8), load8(row + 16)), into: t + r * 5)
                }
                for j in 0..<5 {
                    storeStrided(outputRowAdjoint(t[j], t[5 + j], t[10 + j]), o + j * positionStride,
                                 stride: 5 * positionStride)
                }
            } else {
                for r in 0..<5 {
                    gather(origin + r * step, count: 5, stride: 8, into: x)
                    unpack(outputRowAdjoint5(x), into: t + r * 7)
                }
                for j in 0..<7 {
                    gather(t + j, count: 5, stride: 7, into: x)
                    storeStrided(outputRowAdjoint5(x), o + j * positionStride, stride: 7 * positionStride)
                }
            }
        }
    }
}

// MARK: - Kernels

extension TensorScalar {
    static func winogradFiltersKernel(_ weight: UnsafePointer<Self>, _ u: UnsafeMutablePointer<Self>,
                                       geometry g: WinogradGeometry) {
        let (k, c) = (g.outChannels, g.channels)
        let lanes = g.outLanes
        let positionStride = c * lanes
        let filterStride = c * 9
        // Input channels outermost, so that each position's row of U is written in order, 8 filters at a time.
        Parallel.forRanges(c, minimumPerThread: Swift.max(1, 4096 / Swift.max(1, k))) { channels in
            withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 32) { buffer in
                let t = buffer.baseAddress!, taps = buffer.baseAddress! + 21
                for ci in channels {
                    for group in 0..<g.outGroups {
                        let k0 = group * 8, count = Swift.min(8, k - k0)
                        let src = weight + k0 * filterStride + ci * 9
                        if count == 8 {
                            for q in 0..<9 {
                                let p = src + q
                                taps[q] = Lanes(p[0], p[filterStride], p[2 * filterStride], p[3 * filterStride],
                                                p[4 * filterStride], p[5 * filterStride], p[6 * filterStride],
                                                p[7 * filterStride])
                            }
                        } else {
                            for q in 0..<9 {
                                var v = Lanes()
                                for l in 0..<count { v[l] = src[l * filterStride + q] }
                                taps[q] = v
                            }
                        }
                        let o = u + ci * lanes + k0
                        if g.block == 3 {
                            for i in 0..<3 {
                                unpack(filterRow(taps[i * 3], taps[i * 3 + 1], taps[i * 3 + 2]), into: t + i * 5)
                            }
                            for j in 0..<5 {
                                storeStrided(filterRow(t[j], t[5 + j], t[10 + j]), o + j * positionStride,
                                             stride: 5 * positionStride)
                            }
                        } else {
                            for i in 0..<3 {
                                unpack(filterRow5(taps[i * 3], taps[i * 3 + 1], taps[i * 3 + 2]), into: t + i * 7)
                            }
                            for j in 0..<7 {
                                storeStrided(filterRow5(t[j], t[7 + j], t[14 + j]), o + j * positionStride,
                                             stride: 7 * positionStride)
                            }
                        }
                    }
                }
            }
        }
    }

    static func winogradForwardKernel(_ input: UnsafePointer<Self>, filters u: UnsafePointer<Self>,
                                       bias: UnsafePointer<Self>?, _ output: UnsafeMutablePointer<Self>,
                                       geometry g: WinogradGeometry) {
        let tilesPerImage = g.tilesPerImage
        let inPlane = g.channels * g.height * g.width
        let outPlane = g.outChannels * g.outputHeight * g.outputWidth
        if g.allAtOnce {
            // Input transforms per image, the products per tile position, output transforms per image.
            let allTiles = g.batch * tilesPerImage
            let imageScratch = Swift.max(g.inGroups * g.rows * g.columns, g.outGroups * g.outRows * g.outColumns) * 8
            BufferPool.withScratch(Self.self, count: allTiles * g.positions * (g.inLanes + g.outLanes)) { v in
                let m = v + g.positions * allTiles * g.inLanes
                Parallel.forRanges(g.batch, minimumPerThread: 1) { range in
                    BufferPool.withScratch(Self.self, count: imageScratch) { scratch in
                        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                            for n in range {
                                winogradScatterImage(input + n * inPlane, scratch, g)
                                winogradInputTiles(scratch, v, firstTile: n * tilesPerImage, chunkTiles: allTiles, g,
                                                   t.baseAddress!)
                            }
                        }
                    }
                }
                Parallel.forEach(g.positions) { xi in
                    gemm(transA: false, transB: false, m: allTiles, n: g.outChannels, k: g.channels, alpha: 1,
                         a: v + xi * allTiles * g.inLanes, lda: g.inLanes,
                         b: u + xi * g.channels * g.outLanes, ldb: g.outLanes,
                         beta: 0, c: m + xi * allTiles * g.outLanes, ldc: g.outLanes)
                }
                Parallel.forRanges(g.batch, minimumPerThread: 1) { range in
                    BufferPool.withScratch(Self.self, count: imageScratch) { scratch in
                        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                            for n in range {
                                winogradOutputTiles(m, firstTile: n * tilesPerImage, chunkTiles: allTiles, scratch,
                                                    output + n * outPlane, bias: bias, g, t.baseAddress!)
                            }
                        }
                    }
                }
            }
            return
        }
        let images = g.imagesPerChunk(threads: Parallel.threads)
        let chunks = (g.batch + images - 1) / images
        Parallel.forEachWorker(chunks) { chunk, _ in
            let n0 = chunk * images, n1 = Swift.min(g.batch, n0 + images)
            let tiles = (n1 - n0) * tilesPerImage
            BufferPool.withScratch(Self.self, count: g.scratchCount(images: n1 - n0)) { v in
                let m = v + g.positions * tiles * g.inLanes
                let scratch = m + g.positions * tiles * g.outLanes
                withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                    for n in n0..<n1 {
                        winogradScatterImage(input + n * inPlane, scratch, g)
                        winogradInputTiles(scratch, v, firstTile: (n - n0) * tilesPerImage, chunkTiles: tiles, g,
                                           t.baseAddress!)
                    }
                    for xi in 0..<g.positions {
                        gemm(transA: false, transB: false, m: tiles, n: g.outChannels, k: g.channels, alpha: 1,
                             a: v + xi * tiles * g.inLanes, lda: g.inLanes,
                             b: u + xi * g.channels * g.outLanes, ldb: g.outLanes,
                             beta: 0, c: m + xi * tiles * g.outLanes, ldc: g.outLanes)
                    }
                    for n in n0..<n1 {
                        winogradOutputTiles(m, firstTile: (n - n0) * tilesPerImage, chunkTiles: tiles, scratch,
                                            output + n * outPlane, bias: bias, g, t.baseAddress!)
                    }
                }
            }
        }
    }

    /// dg = G^T dU G for every filter, written to `gradWeight` (K, C, 3, 3).
    static func winogradFiltersAdjoint(_ du: UnsafePointer<Self>, _ gradWeight: UnsafeMutablePointer<Self>,
                                       geometry g: WinogradGeometry) {
        let (k, c) = (g.outChannels, g.channels)
        let lanes = g.outLanes
        let positionStride = c * lanes
        let a = g.tile
        Parallel.forRanges(c, minimumPerThread: Swift.max(1, 4096 / Swift.max(1, k))) { channels in
            withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 37) { buffer in
                let t = buffer.baseAddress!, x = t + 21, out = t + 28
                for ci in channels {
                    for group in 0..<g.outGroups {
                        let k0 = group * 8, count = Swift.min(8, k - k0)
                        let s = du + ci * lanes + k0
                        // Rows: t[p][j] = sum over q of G[q][j] dU[p][q]; then columns.
                        for p in 0..<a {
                            for q in 0..<a { x[q] = load8(s + (p * a + q) * positionStride) }
                            let r = a == 5 ? filterRowAdjoint(x) : filterRowAdjoint5(x)
                            t[p * 3] = r.0; t[p * 3 + 1] = r.1; t[p * 3 + 2] = r.2
                        }
                        for j in 0..<3 {
                            for p in 0..<a { x[p] = t[p * 3 + j] }
                            let col = a == 5 ? filterRowAdjoint(x) : filterRowAdjoint5(x)
                            out[j] = col.0; out[3 + j] = col.1; out[6 + j] = col.2
                        }
                        for l in 0..<count {
                            let dst = gradWeight + ((k0 + l) * c + ci) * 9
                            for q in 0..<9 { dst[q] = out[q][l] }
                        }
                    }
                }
            }
        }
    }

    static func winogradBackwardKernel(_ gradOutput: UnsafePointer<Self>, filters u: UnsafePointer<Self>?,
                                        input: UnsafePointer<Self>?, gradInput: UnsafeMutablePointer<Self>?,
                                        gradWeight: UnsafeMutablePointer<Self>?,
                                        gradBias: UnsafeMutablePointer<Self>?, geometry g: WinogradGeometry) {
        let needInput = u != nil && gradInput != nil
        let needWeight = input != nil && gradWeight != nil
        // Per-image channel sums of the output gradient, for the bias gradient, summed in image order at the end.
        let imageSums = gradBias == nil ? nil : UnsafeMutablePointer<Self>.allocate(capacity: g.batch * g.outChannels)
        defer { imageSums?.deallocate() }
        let tilesPerImage = g.tilesPerImage
        let inPlane = g.channels * g.height * g.width
        let outPlane = g.outChannels * g.outputHeight * g.outputWidth
        let imageScratch = Swift.max(g.inGroups * g.rows * g.columns, g.outGroups * g.outRows * g.outColumns) * 8

        // dM (and V, for the weight gradient) of one image, into buffers laid out for `chunkTiles` tiles.
        func transformImage(_ n: Int, firstTile: Int, chunkTiles: Int, dm: UnsafeMutablePointer<Self>,
                            v: UnsafeMutablePointer<Self>, scratch: UnsafeMutablePointer<Self>,
                            _ t: UnsafeMutablePointer<Lanes>) {
            winogradOutputTilesAdjoint(gradOutput + n * outPlane, scratch, dm, firstTile: firstTile,
                                       chunkTiles: chunkTiles, g, t,
                                       channelSums: imageSums.map { $0 + n * g.outChannels })
            if needWeight, let input {
                winogradScatterImage(input + n * inPlane, scratch, g)
                winogradInputTiles(scratch, v, firstTile: firstTile, chunkTiles: chunkTiles, g, t)
            }
        }
        // For tile position xi: dU[xi] (+)= V[xi]^T dM[xi], then dV[xi] = dM[xi] U[xi]^T over V[xi].
        func products(_ xi: Int, tiles: Int, dm: UnsafeMutablePointer<Self>, v: UnsafeMutablePointer<Self>,
                      du: UnsafeMutablePointer<Self>?, beta: Self) {
            if let du {
                gemm(transA: true, transB: false, m: g.channels, n: g.outChannels, k: tiles, alpha: 1,
                     a: v + xi * tiles * g.inLanes, lda: g.inLanes, b: dm + xi * tiles * g.outLanes, ldb: g.outLanes,
                     beta: beta, c: du + xi * g.channels * g.outLanes, ldc: g.outLanes)
            }
            if needInput, let u {
                gemm(transA: false, transB: true, m: tiles, n: g.channels, k: g.outChannels, alpha: 1,
                     a: dm + xi * tiles * g.outLanes, lda: g.outLanes, b: u + xi * g.channels * g.outLanes,
                     ldb: g.outLanes, beta: 0, c: v + xi * tiles * g.inLanes, ldc: g.inLanes)
            }
        }

        var total: BufferPool.Block?
        let allTiles = g.batch * tilesPerImage
        var weightDone = false
        if g.allAtOnce {
            // Few tiles (small images, where the transformed filters are largest): all of them at once, in parallel
            // phases per image and per tile position. The weight gradient is taken one row of tile positions at a
            // time, folded through the filter transform's adjoint into 9 taps as it goes, so that no full dU exists.
            let vm = BufferPool.take(bytes: allTiles * g.positions * (g.inLanes + g.outLanes) * MemoryLayout<Self>.stride)
            defer { BufferPool.give(vm) }
            let v = vm.typed(Self.self), dm = v + g.positions * allTiles * g.inLanes
            Parallel.forRanges(g.batch, minimumPerThread: 1) { range in
                BufferPool.withScratch(Self.self, count: imageScratch) { scratch in
                    withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                        for n in range {
                            transformImage(n, firstTile: n * tilesPerImage, chunkTiles: allTiles, dm: dm, v: v,
                                           scratch: scratch, t.baseAddress!)
                        }
                    }
                }
            }
            if needWeight, let gradWeight, let input {
                winogradWeightGradientByRows(v: v, dm: dm, tiles: allTiles, filters: needInput ? u : nil,
                                             gradWeight, geometry: g)
                winogradZeroUnsupported(gradWeight, gradOutput: gradOutput, input: input, geometry: g)
                weightDone = true
            } else {
                Parallel.forEach(g.positions) { xi in products(xi, tiles: allTiles, dm: dm, v: v, du: nil, beta: 0) }
            }
            if needInput, let gradInput {
                Parallel.forRanges(g.batch, minimumPerThread: 1) { range in
                    BufferPool.withScratch(Self.self, count: imageScratch) { scratch in
                        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                            for n in range {
                                winogradInputTilesAdjoint(v, firstTile: n * tilesPerImage, chunkTiles: allTiles,
                                                          scratch, gradInput + n * inPlane, g, t.baseAddress!)
                            }
                        }
                    }
                }
            }
        } else {
            // Chunks of images in parallel, each slot summing its own dU (a fixed schedule: the same sums in the
            // same order from run to run).
            let images = g.imagesPerChunk(threads: Parallel.threads)
            let chunks = (g.batch + images - 1) / images
            let slots = Parallel.workerSlots
            let partials = UnsafeMutablePointer<BufferPool.Block?>.allocate(capacity: slots)
            partials.initialize(repeating: nil, count: slots)
            defer { partials.deallocate() }
            Parallel.forEachInSlots(chunks) { chunk, worker in
                let n0 = chunk * images, n1 = Swift.min(g.batch, n0 + images)
                let tiles = (n1 - n0) * tilesPerImage
                var beta: Self = 1
                if needWeight && partials[worker] == nil {
                    partials[worker] = BufferPool.take(bytes: g.filterCount * MemoryLayout<Self>.stride)
                    beta = 0
                }
                let du = partials[worker]?.typed(Self.self)
                BufferPool.withScratch(Self.self, count: g.scratchCount(images: n1 - n0)) { v in
                    let dm = v + g.positions * tiles * g.inLanes
                    let scratch = dm + g.positions * tiles * g.outLanes
                    withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                        for n in n0..<n1 {
                            transformImage(n, firstTile: (n - n0) * tilesPerImage, chunkTiles: tiles, dm: dm, v: v,
                                           scratch: scratch, t.baseAddress!)
                        }
                        for xi in 0..<g.positions { products(xi, tiles: tiles, dm: dm, v: v, du: du, beta: beta) }
                        if needInput, let gradInput {
                            for n in n0..<n1 {
                                winogradInputTilesAdjoint(v, firstTile: (n - n0) * tilesPerImage, chunkTiles: tiles,
                                                          scratch, gradInput + n * inPlane, g, t.baseAddress!)
                            }
                        }
                    }
                }
            }
            if needWeight {
                let used = (0..<slots).compactMap { partials[$0] }
                total = used[0]
                for other in used.dropFirst() {
                    accumulate(other.typed(Self.self), into: used[0].typed(Self.self), count: g.filterCount)
                    BufferPool.give(other)
                }
            }
        }
        if let gradBias, let imageSums {
            for k in 0..<g.outChannels { gradBias[k] = 0 }
            for n in 0..<g.batch {
                for k in 0..<g.outChannels { gradBias[k] += imageSums[n * g.outChannels + k] }
            }
        }
        if !weightDone, let total, let gradWeight, let input {
            winogradFiltersAdjoint(total.typed(Self.self), gradWeight, geometry: g)
            BufferPool.give(total)
            winogradZeroUnsupported(gradWeight, gradOutput: gradOutput, input: input, geometry: g)
        }
    }

    /// The weight gradient from all tiles' V and dM (each over `tiles` tiles), one row p of tile positions at a time:
    /// dU[p][q] = V[p][q]^T dM[p][q] for the row, then t[j] = sum over q of G[q][j] dU[p][q] and
    /// dg[i][j] += G[p][i] t[j]. With `filters`, each position's dV = dM U^T is also computed, over V (whose row
    /// is no longer needed once its dU is taken).
    static func winogradWeightGradientByRows(v: UnsafeMutablePointer<Self>, dm: UnsafeMutablePointer<Self>,
                                             tiles: Int, filters u: UnsafePointer<Self>?,
                                             _ gradWeight: UnsafeMutablePointer<Self>, geometry g: WinogradGeometry) {
        let (a, c, k) = (g.tile, g.channels, g.outChannels)
        let lanes = g.outLanes
        let slab = c * lanes  // one position of dU
        let gm = g.filterMatrix.map { Self($0) }
        BufferPool.withScratch(Self.self, count: (a + 9) * slab) { row in
            let acc = row + a * slab  // [tap][c][K8]
            acc.update(repeating: 0, count: 9 * slab)
            for p in 0..<a {
                Parallel.forEach(a) { q in
                    let xi = p * a + q
                    gemm(transA: true, transB: false, m: c, n: k, k: tiles, alpha: 1,
                         a: v + xi * tiles * g.inLanes, lda: g.inLanes, b: dm + xi * tiles * g.outLanes,
                         ldb: g.outLanes, beta: 0, c: row + q * slab, ldc: lanes)
                    if let u {
                        gemm(transA: false, transB: true, m: tiles, n: c, k: k, alpha: 1,
                             a: dm + xi * tiles * g.outLanes, lda: g.outLanes, b: u + xi * slab, ldb: lanes,
                             beta: 0, c: v + xi * tiles * g.inLanes, ldc: g.inLanes)
                    }
                }
                let (g0, g1, g2) = (gm[p * 3], gm[p * 3 + 1], gm[p * 3 + 2])
                Parallel.forRanges(c, minimumPerThread: Swift.max(1, 2048 / Swift.max(1, k))) { channels in
                    withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 7) { buffer in
                        let x = buffer.baseAddress!
                        for ci in channels {
                            for group in 0..<g.outGroups {
                                let offset = ci * lanes + group * 8
                                for q in 0..<a { x[q] = load8(row + q * slab + offset) }
                                let t = a == 5 ? filterRowAdjoint(x) : filterRowAdjoint5(x)
                                for (i, gi) in [g0, g1, g2].enumerated() where gi != 0 {
                                    let base = acc + i * 3 * slab + offset
                                    store8(load8(base) + t.0 * gi, base)
                                    store8(load8(base + slab) + t.1 * gi, base + slab)
                                    store8(load8(base + 2 * slab) + t.2 * gi, base + 2 * slab)
                                }
                            }
                        }
                    }
                }
            }
            // acc[tap][c][k] -> gradWeight[k][c][tap].
            Parallel.forRanges(k, minimumPerThread: 1) { range in
                for ko in range {
                    for ci in 0..<c {
                        let dst = gradWeight + (ko * c + ci) * 9
                        for tap in 0..<9 { dst[tap] = acc[tap * slab + ci * lanes + ko] }
                    }
                }
            }
        }
    }

    /// Sets to exactly zero every weight gradient whose sum has no nonzero term: filter tap (i, j) of (k, c) meets
    /// no position where both the output gradient of k and the input of c it reads are nonzero, in any image.
    ///
    /// The direct sum is then an exact zero, but the Winograd one carries rounding residue, which Adam would turn
    /// into a step of up to the full learning rate. Only nonzero gradients below 1e-4 of the largest one are tested:
    /// the residue is far smaller (below 1e-6 of the largest in training on digits, where a third to two thirds of
    /// these gradients are exact zeros), a larger value has support anyway, and most exact zeros (whole dead channels)
    /// come out of the Winograd sums as exact zeros already. The test runs on bit masks of the nonzero positions,
    /// laid out on the padded grid of the output ((outH + 2) x (outW + 2)), where tap (i, j) is a shift by i rows and
    /// j columns.
    static func winogradZeroUnsupported(_ gradWeight: UnsafeMutablePointer<Self>, gradOutput: UnsafePointer<Self>,
                                        input: UnsafePointer<Self>, geometry g: WinogradGeometry) {
        let (k, c, n) = (g.outChannels, g.channels, g.batch)
        let count = k * c * 9
        // The largest magnitude (eight running maxima, so the loop is not one long dependency chain).
        var lanes = Lanes()
        var i = 0
        while i + 8 <= count {
            let v = load8(gradWeight + i)
            lanes = pointwiseMax(lanes, pointwiseMax(v, .zero - v))
            i += 8
        }
        var largest = lanes.max()
        while i < count { largest = Swift.max(largest, Swift.abs(gradWeight[i])); i += 1 }
        let threshold = largest * Self(1e-4)
        // Suspects, grouped by filter (k, c): the filter index and a mask of its suspect taps.
        var suspects: [(filter: Int32, taps: UInt16)] = []
        for filter in 0..<(k * c) {
            let w = gradWeight + filter * 9
            var taps: UInt16 = 0
            for tap in 0..<9 where w[tap] != 0 && Swift.abs(w[tap]) <= threshold { taps |= 1 << UInt16(tap) }
            if taps != 0 { suspects.append((Int32(filter), taps)) }
        }
        guard !suspects.isEmpty else { return }

        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let gridW = ow + 2, gridCells = (oh + 2) * gridW
        let words = (gridCells + 63) / 64 + 1  // one spare word for shifted reads
        let outBits = UnsafeMutablePointer<UInt64>.allocate(capacity: n * k * words)
        let inBits = UnsafeMutablePointer<UInt64>.allocate(capacity: n * c * words)
        defer {
            outBits.deallocate()
            inBits.deallocate()
        }
        // Bit b of a plane's mask is grid cell b; a row of `length` values starting at cell `first` fills
        // consecutive bits, packed a word at a time without branches.
        @inline(__always) func markRow(_ src: UnsafePointer<Self>, _ length: Int, first: Int,
                                       _ bits: UnsafeMutablePointer<UInt64>) {
            var word = first >> 6, shift = UInt64(first & 63)
            var pending: UInt64 = 0
            for x in 0..<length {
                pending |= UInt64(src[x] != 0 ? 1 : 0) << shift
                shift += 1
                if shift == 64 {
                    bits[word] |= pending
                    pending = 0
                    shift = 0
                    word += 1
                }
            }
            bits[word] |= pending
        }
        // Output gradient of (image, k) at grid (y, x); input of (image, c) at grid (y + ph, x + pw).
        Parallel.forRanges(n * k, minimumPerThread: 64) { range in
            for plane in range {
                let bits = outBits + plane * words
                bits.update(repeating: 0, count: words)
                let src = gradOutput + plane * oh * ow
                for y in 0..<oh { markRow(src + y * ow, ow, first: y * gridW, bits) }
            }
        }
        let (h, w) = (g.height, g.width)
        let rowsInGrid = Swift.min(h, oh + 2 - g.padHeight), columnsInGrid = Swift.min(w, gridW - g.padWidth)
        Parallel.forRanges(n * c, minimumPerThread: 64) { range in
            for plane in range {
                let bits = inBits + plane * words
                bits.update(repeating: 0, count: words)
                let src = input + plane * h * w
                for y in 0..<Swift.max(0, rowsInGrid) {
                    markRow(src + y * w, Swift.max(0, columnsInGrid), first: (y + g.padHeight) * gridW + g.padWidth,
                            bits)
                }
            }
        }
        suspects.withUnsafeBufferPointer { list in
            Parallel.forRanges(list.count, minimumPerThread: 64) { range in
                for s in range {
                    let filter = Int(list[s].filter)
                    var open = list[s].taps  // taps not yet seen to meet a nonzero pair
                    let (ko, ci) = (filter / c, filter % c)
                    for image in 0..<n where open != 0 {
                        let o = outBits + (image * k + ko) * words
                        let i = inBits + (image * c + ci) * words
                        var remaining = open
                        while remaining != 0 {
                            let tap = remaining.trailingZeroBitCount
                            remaining &= remaining - 1
                            let shift = (tap / 3) * gridW + tap % 3
                            let (q, r) = (shift >> 6, UInt64(shift & 63))
                            for word in 0..<(words - 1 - q) {
                                // Input bits shifted down by `shift`: bit b of the result is input bit b + shift.
                                var shifted = i[word + q] >> r
                                if r != 0 { shifted |= i[word + q + 1] << (64 - r) }
                                if o[word] & shifted != 0 {
                                    open &= ~(1 << UInt16(tap))
                                    break
                                }
                            }
                        }
                    }
                    var tap = 0
                    while open != 0 {
                        if open & 1 != 0 { gradWeight[filter * 9 + tap] = 0 }
                        open >>= 1
                        tap += 1
                    }
                }
            }
        }
    }
}
