import CKernels

// Winograd convolution: the one-dimensional transforms of F(3x3, 3x3) and F(5x5, 3x3), their adjoints, and the
// plumbing that moves 8-lane vectors in and out of tiles (overview: WinogradGeometry.swift).

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
        if lanes == 8 && Self.self == Float.self {
            // Float: the CPU-dispatched C loop over the whole blocks (CKernels), the same sums in the same order.
            withUnsafeMutablePointer(to: &total) { totalPointer in
                x = ck_interleave8(UnsafeRawPointer(src).assumingMemoryBound(to: Float.self), planeStride, count,
                                   UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Float.self),
                                   sum == nil ? nil : UnsafeMutableRawPointer(totalPointer)
                                       .assumingMemoryBound(to: Float.self))
            }
        } else if lanes == 8 {
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
        if lanes == 8 && Self.self == Float.self {
            // Float: the CPU-dispatched C loop over the whole blocks (CKernels).
            var shiftLanes = shift ?? Lanes()
            withUnsafeMutablePointer(to: &shiftLanes) { shiftPointer in
                x = ck_deinterleave8(UnsafeRawPointer(src).assumingMemoryBound(to: Float.self), count,
                                     UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Float.self), planeStride,
                                     shift == nil ? nil : UnsafeRawPointer(shiftPointer)
                                         .assumingMemoryBound(to: Float.self))
            }
        } else if lanes == 8 {
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
