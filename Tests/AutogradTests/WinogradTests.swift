import CKernels
import XCTest
@testable import Autograd

/// The Winograd F(3x3, 3x3) convolution against a direct loop and against the im2col path, in Double and Float:
/// forward, input gradient and weight gradient, over odd and even sizes, padding 0, 1 and 2, one and several
/// images, channel counts that are and are not multiples of 8.
final class WinogradTests: XCTestCase {
    private struct Case {
        var batch: Int, channels: Int, outChannels: Int, height: Int, width: Int, padding: Int
        var bias = true
    }

    private let cases: [Case] = [
        Case(batch: 1, channels: 1, outChannels: 1, height: 3, width: 3, padding: 0),
        Case(batch: 1, channels: 3, outChannels: 2, height: 5, width: 5, padding: 1),
        Case(batch: 2, channels: 8, outChannels: 8, height: 6, width: 6, padding: 1),
        Case(batch: 3, channels: 5, outChannels: 11, height: 7, width: 4, padding: 0),
        Case(batch: 2, channels: 9, outChannels: 3, height: 4, width: 9, padding: 2, bias: false),
        Case(batch: 4, channels: 16, outChannels: 17, height: 9, width: 9, padding: 1),
        Case(batch: 1, channels: 2, outChannels: 4, height: 10, width: 8, padding: 1),
        Case(batch: 5, channels: 12, outChannels: 9, height: 8, width: 11, padding: 0),
    ]

    /// Direct cross-correlation with zero padding: (N, C, H, W) x (K, C, 3, 3) -> (N, K, outH, outW).
    private func direct(_ x: [Double], _ w: [Double], _ b: [Double]?, _ c: Case) -> [Double] {
        let (oh, ow) = (c.height + 2 * c.padding - 2, c.width + 2 * c.padding - 2)
        var out = [Double](repeating: 0, count: c.batch * c.outChannels * oh * ow)
        for n in 0..<c.batch {
            for k in 0..<c.outChannels {
                for y in 0..<oh {
                    for xo in 0..<ow {
                        var s = b?[k] ?? 0
                        for ci in 0..<c.channels {
                            for i in 0..<3 {
                                for j in 0..<3 {
                                    let iy = y - c.padding + i, ix = xo - c.padding + j
                                    guard iy >= 0, iy < c.height, ix >= 0, ix < c.width else { continue }
                                    s += x[((n * c.channels + ci) * c.height + iy) * c.width + ix]
                                        * w[((k * c.channels + ci) * 3 + i) * 3 + j]
                                }
                            }
                        }
                        out[((n * c.outChannels + k) * oh + y) * ow + xo] = s
                    }
                }
            }
        }
        return out
    }

    /// Gradients of sum(direct(x, w, b) * r) by the direct loop's adjoint.
    private func directGradients(_ x: [Double], _ w: [Double], _ r: [Double], _ c: Case)
        -> (dx: [Double], dw: [Double], db: [Double]) {
        let (oh, ow) = (c.height + 2 * c.padding - 2, c.width + 2 * c.padding - 2)
        var dx = [Double](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: w.count)
        var db = [Double](repeating: 0, count: c.outChannels)
        for n in 0..<c.batch {
            for k in 0..<c.outChannels {
                for y in 0..<oh {
                    for xo in 0..<ow {
                        let g = r[((n * c.outChannels + k) * oh + y) * ow + xo]
                        db[k] += g
                        for ci in 0..<c.channels {
                            for i in 0..<3 {
                                for j in 0..<3 {
                                    let iy = y - c.padding + i, ix = xo - c.padding + j
                                    guard iy >= 0, iy < c.height, ix >= 0, ix < c.width else { continue }
                                    let xi = ((n * c.channels + ci) * c.height + iy) * c.width + ix
                                    let wi = ((k * c.channels + ci) * 3 + i) * 3 + j
                                    dx[xi] += g * w[wi]
                                    dw[wi] += g * x[xi]
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dw, db)
    }

    private func run<S: TensorScalar>(_ type: S.Type, _ c: Case, tolerance: Double, seed: UInt64) {
        var generator = SeededRandom(seed: seed)
        let x = randomTensor([c.batch, c.channels, c.height, c.width], &generator)
        let w = randomTensor([c.outChannels, c.channels, 3, 3], &generator)
        let b = randomTensor([c.outChannels], &generator)
        let (oh, ow) = (c.height + 2 * c.padding - 2, c.width + 2 * c.padding - 2)
        let r = randomTensor([c.batch, c.outChannels, oh, ow], &generator)
        let expected = direct(x.scalars, w.scalars, c.bias ? b.scalars : nil, c)
        let grads = directGradients(x.scalars, w.scalars, r.scalars, c)

        let xs = x.converted(to: S.self).requiringGradient()
        let ws = w.converted(to: S.self).requiringGradient()
        let bs = b.converted(to: S.self).requiringGradient()
        let y = xs.conv2d(weight: ws, bias: c.bias ? bs : nil, padding: (c.padding, c.padding),
                          algorithm: .winograd)
        let what = "\(S.dtypeName) \(c)"
        XCTAssertEqual(y.shape, [c.batch, c.outChannels, oh, ow], what)
        XCTAssertLessThanOrEqual(relativeError(y.scalars.map(Double.init), expected), tolerance, "\(what) forward")
        y.backward(seed: r.converted(to: S.self))
        XCTAssertLessThanOrEqual(relativeError(xs.grad!.scalars.map(Double.init), grads.dx), tolerance,
                                 "\(what) input gradient")
        XCTAssertLessThanOrEqual(relativeError(ws.grad!.scalars.map(Double.init), grads.dw), tolerance,
                                 "\(what) weight gradient")
        if c.bias {
            XCTAssertLessThanOrEqual(relativeError(bs.grad!.scalars.map(Double.init), grads.db), tolerance,
                                     "\(what) bias gradient")
        }
    }

    func testDoubleMatchesDirectConvolution() {
        for (i, c) in cases.enumerated() { run(Double.self, c, tolerance: 1e-12, seed: UInt64(100 + i)) }
    }

    /// Float tolerances: twice the ops' yardstick 1e-5 for F(3x3, 3x3), five times for F(5x5, 3x3), whose
    /// transforms (entries up to 4 and 16 in A^T, 12 in B^T) scale float32's rounding before and after the sums
    /// over channels. Measured worst over these cases: 1.4e-6 to 2.6e-6 and 2.9e-6 to 3.3e-6 with OpenBLAS's
    /// Cooperlake, SkylakeX, Haswell, Zen and Sandybridge kernels (OPENBLAS_CORETYPE) at 1 to 8 threads.
    func testFloatMatchesDirectConvolution() {
        for (i, c) in cases.enumerated() { run(Float.self, c, tolerance: 2e-5, seed: UInt64(200 + i)) }
    }

    /// The backward through the narrow products (forced; they are chosen only without BLAS small-matrix kernels)
    /// meets the same tolerance against direct sums, for layers of 8 and 16 input channels, chunked and all at once;
    /// the products take them only for the shapes they support.
    func testNarrowProductsMatchDirectConvolution() {
        let narrowCases = [
            Case(batch: 3, channels: 8, outChannels: 16, height: 11, width: 9, padding: 0),
            Case(batch: 2, channels: 16, outChannels: 32, height: 8, width: 8, padding: 1),
            Case(batch: 2, channels: 8, outChannels: 8, height: 6, width: 6, padding: 1, bias: false),
            Case(batch: 2, channels: 16, outChannels: 24, height: 7, width: 10, padding: 1),
        ]
        let savedLimit = WinogradGeometry.allAtOnceLimit
        defer {
            WinogradGeometry.forcedNarrowProducts = nil
            WinogradGeometry.allAtOnceLimit = savedLimit
        }
        WinogradGeometry.forcedNarrowProducts = true
        for limit in [savedLimit, 0] {
            WinogradGeometry.allAtOnceLimit = limit
            for (i, c) in narrowCases.enumerated() { run(Float.self, c, tolerance: 2e-5, seed: UInt64(300 + i)) }
        }
        func choice(_ channels: Int, _ outChannels: Int) -> (input: Bool, weight: Bool) {
            Float.narrowProducts(WinogradGeometry(batch: 1, channels: channels, height: 9, width: 9,
                                                  outChannels: outChannels, padding: (1, 1)))
        }
        XCTAssertTrue(choice(8, 16) == (true, true) && choice(16, 32) == (true, true))
        XCTAssertTrue(choice(16, 24) == (true, false) && choice(8, 8) == (true, false))
        XCTAssertTrue(choice(32, 64) == (false, false) && choice(12, 16) == (false, false)
                      && choice(8, 72) == (false, false))
        XCTAssertTrue(Double.narrowProducts(WinogradGeometry(batch: 1, channels: 8, height: 9, width: 9,
                                                             outChannels: 16, padding: (1, 1))) == (false, false))
        WinogradGeometry.forcedNarrowProducts = false
        XCTAssertTrue(choice(8, 16) == (false, false))
    }

    /// `ck_gemm_nt_narrow` and `ck_gemm_tn_narrow` on every path against Double sums, within float32's bound for a
    /// chain of k products, (k + 1) 2^-24 sum |a b| per entry (2^-23 on the accumulated ones), for ragged row
    /// counts, padded leading dimensions and k from 1 to 300; the padding between rows of C is left untouched.
    func testNarrowProductKernelsOnEveryPath() {
        var generator = SeededRandom(seed: 14)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float(generator.normal()) } }
        for (m, n, k) in [(1, 8, 1), (3, 8, 16), (7, 16, 5), (37, 16, 64), (9, 24, 33), (4, 64, 64)] {
            let (lda, ldb, ldc) = (k + 3, k + 1, n + 5)
            let a = values(m * lda), b = values(n * ldb)
            for (path, c) in CPUKernels.onEveryPath({ () -> [Float] in
                var c = [Float](repeating: .nan, count: m * ldc)
                ck_gemm_nt_narrow(m, n, k, a, lda, b, ldb, &c, ldc)
                return c
            }) {
                for i in 0..<m {
                    for j in 0..<ldc {
                        let got = c[i * ldc + j], what = "nt \(m)x\(n)x\(k) on \(path) at (\(i), \(j))"
                        guard j < n else { XCTAssertTrue(got.isNaN, "\(what): padding written"); continue }
                        var exact = 0.0, bound = 0.0
                        for kk in 0..<k {
                            let term = Double(a[i * lda + kk]) * Double(b[j * ldb + kk])
                            exact += term
                            bound += abs(term)
                        }
                        XCTAssertLessThanOrEqual(abs(Double(got) - exact), Double(k + 1) * 0x1p-24 * bound, what)
                    }
                }
            }
        }
        for (m, n, k) in [(4, 16, 1), (8, 16, 7), (16, 32, 300), (12, 48, 40)] {
            let (lda, ldb, ldc) = (m + 2, n + 3, n + 4)
            let a = values(k * lda), b = values(k * ldb), start = values(m * ldc)
            for accumulate in [false, true] {
                for (path, c) in CPUKernels.onEveryPath({ () -> [Float] in
                    var c = start
                    ck_gemm_tn_narrow(m, n, k, a, lda, b, ldb, &c, ldc, accumulate ? 1 : 0)
                    return c
                }) {
                    for i in 0..<m {
                        for j in 0..<ldc {
                            let got = c[i * ldc + j]
                            let what = "tn \(m)x\(n)x\(k) accumulate \(accumulate) on \(path) at (\(i), \(j))"
                            guard j < n else {
                                XCTAssertEqual(got, start[i * ldc + j], "\(what): padding written")
                                continue
                            }
                            var exact = accumulate ? Double(start[i * ldc + j]) : 0, bound = abs(exact)
                            for t in 0..<k {
                                let term = Double(a[t * lda + i]) * Double(b[t * ldb + j])
                                exact += term
                                bound += abs(term)
                            }
                            XCTAssertLessThanOrEqual(abs(Double(got) - exact), Double(k + 2) * 0x1p-23 * bound, what)
                        }
                    }
                }
            }
        }
    }

    /// The same cases through F(5x5, 3x3) blocks (chosen automatically only for small images).
    func testLargeBlocksMatchDirectConvolution() {
        WinogradGeometry.forcedBlock = 5
        defer { WinogradGeometry.forcedBlock = nil }
        for (i, c) in cases.enumerated() {
            run(Double.self, c, tolerance: 1e-11, seed: UInt64(400 + i))
            run(Float.self, c, tolerance: 5e-5, seed: UInt64(500 + i))
        }
    }

    /// The factored F(5x5, 3x3) rows equal the products with the documented matrices, and each adjoint is the
    /// transposed product.
    func testLargeBlockTransformsMatchTheirMatrices() {
        typealias L = SIMD8<Double>
        var generator = SeededRandom(seed: 21)
        func lanes(_ n: Int) -> [L] {
            (0..<n).map { _ in L((0..<8).map { _ in generator.normal() }) }
        }
        func product(_ m: [Double], rows: Int, columns: Int, transposed: Bool, _ x: [L]) -> [L] {
            let outCount = transposed ? columns : rows
            return (0..<outCount).map { o in
                var acc = L()
                for i in 0..<x.count { acc += x[i] * (transposed ? m[i * columns + o] : m[o * columns + i]) }
                return acc
            }
        }
        func close(_ a: [L], _ b: [L], _ what: String) {
            for (u, v) in zip(a, b) {
                XCTAssertLessThanOrEqual(((u - v) * (u - v)).max(), 1e-20, what)
            }
        }
        for _ in 0..<5 {
            let d = lanes(7)
            let r = d.withUnsafeBufferPointer { Double.inputRow5($0.baseAddress!) }
            close([r.0, r.1, r.2, r.3, r.4, r.5, r.6],
                  product(WinogradMatrices5.inputTransform, rows: 7, columns: 7, transposed: false, d), "B^T d")
            let w = d.withUnsafeBufferPointer { Double.inputRowAdjoint5($0.baseAddress!) }
            close([w.0, w.1, w.2, w.3, w.4, w.5, w.6],
                  product(WinogradMatrices5.inputTransform, rows: 7, columns: 7, transposed: true, d), "B w")
            let y = d.withUnsafeBufferPointer { Double.outputRow5($0.baseAddress!) }
            close([y.0, y.1, y.2, y.3, y.4],
                  product(WinogradMatrices5.outputTransform, rows: 5, columns: 7, transposed: false, d), "A^T m")
            let e = lanes(5)
            let a = e.withUnsafeBufferPointer { Double.outputRowAdjoint5($0.baseAddress!) }
            close([a.0, a.1, a.2, a.3, a.4, a.5, a.6],
                  product(WinogradMatrices5.outputTransform, rows: 5, columns: 7, transposed: true, e), "A y")
            let f = lanes(3)
            let u = Double.filterRow5(f[0], f[1], f[2])
            close([u.0, u.1, u.2, u.3, u.4, u.5, u.6],
                  product(WinogradMatrices5.filterTransform, rows: 7, columns: 3, transposed: false, f), "G g")
        }
    }

    /// The automatic block choice: 3 for large images, 5 where a 3x3 tiling wastes most of its tiles.
    func testBlockChoice() {
        func block(_ side: Int) -> Int {
            WinogradGeometry(batch: 1, channels: 8, height: side, width: side, outChannels: 8, padding: (1, 1)).block
        }
        XCTAssertEqual(block(33), 3)
        XCTAssertEqual(block(17), 3)
        XCTAssertEqual(block(9), 3)
        XCTAssertEqual(block(5), 5)
        XCTAssertEqual(block(4), 5)
    }

    /// Enough images for several chunks, so that the per-worker weight-gradient accumulators are summed.
    func testManyImagesAcrossChunks() {
        let c = Case(batch: 37, channels: 8, outChannels: 16, height: 13, width: 13, padding: 1)
        run(Double.self, c, tolerance: 1e-12, seed: 300)
        run(Float.self, c, tolerance: 2e-5, seed: 301)
    }

    /// The backward pass in chunks of images (per-thread weight-gradient sums) instead of all tiles at once.
    func testChunkedBackwardMatchesDirectConvolution() {
        let saved = WinogradGeometry.allAtOnceLimit
        WinogradGeometry.allAtOnceLimit = 0
        defer { WinogradGeometry.allAtOnceLimit = saved }
        for (i, c) in cases.enumerated() {
            run(Double.self, c, tolerance: 1e-12, seed: UInt64(600 + i))
            run(Float.self, c, tolerance: 2e-5, seed: UInt64(700 + i))
        }
        run(Double.self, Case(batch: 37, channels: 8, outChannels: 16, height: 13, width: 13, padding: 1),
            tolerance: 1e-12, seed: 800)
    }

    /// A weight gradient whose sum has no nonzero term is exactly zero (the Winograd sum alone leaves rounding
    /// residue there), and the others match the direct sum.
    func testStructuralZerosInTheWeightGradientAreExact() {
        for block in [3, 5] {
            WinogradGeometry.forcedBlock = block
            defer { WinogradGeometry.forcedBlock = nil }
            var generator = SeededRandom(seed: 31)
            let c = Case(batch: 3, channels: 9, outChannels: 10, height: 8, width: 8, padding: 1)
            // Inputs only in column 2, output gradients only in column 3: of each filter row only tap 0 (which
            // reads column 2 from output column 3) meets a nonzero input.
            var x = [Double](repeating: 0, count: c.batch * c.channels * 64)
            var r = [Double](repeating: 0, count: c.batch * c.outChannels * 64)
            for p in 0..<(c.batch * c.channels) { for y in 0..<8 { x[p * 64 + y * 8 + 2] = generator.normal() } }
            for p in 0..<(c.batch * c.outChannels) { for y in 0..<8 { r[p * 64 + y * 8 + 3] = generator.normal() } }
            let w = randomTensor([c.outChannels, c.channels, 3, 3], &generator)
            let expected = directGradients(x, w.scalars, r, c).dw
            for type in ["F32", "F64"] {
                let got: [Double]
                if type == "F32" {
                    let ws = w.converted(to: Float.self).requiringGradient()
                    let y = Tensor<Float>(shape: [c.batch, c.channels, 8, 8], scalars: x.map(Float.init))
                        .conv2d(weight: ws, padding: (1, 1), algorithm: .winograd)
                    y.backward(seed: Tensor(shape: y.shape, scalars: r.map(Float.init)))
                    got = ws.grad!.scalars.map(Double.init)
                } else {
                    let ws = w.requiringGradient()
                    let y = Tensor<Double>(shape: [c.batch, c.channels, 8, 8], scalars: x)
                        .conv2d(weight: ws, padding: (1, 1), algorithm: .winograd)
                    y.backward(seed: Tensor(shape: y.shape, scalars: r))
                    got = ws.grad!.scalars
                }
                for (index, value) in got.enumerated() where index % 3 != 0 {
                    XCTAssertEqual(value, 0, "\(type) block \(block): tap \(index % 9) of filter \(index / 9)")
                }
                XCTAssertEqual(expected.enumerated().filter { $0.offset % 3 != 0 }.map(\.element).max(), 0)
                // A weight gradient (from im2col products): the gradient yardstick 1e-4 in Float.
                XCTAssertLessThanOrEqual(relativeError(got, expected), type == "F32" ? 1e-4 : 1e-12, type)
            }
        }
    }

    /// A weight gradient is exactly zero when no single image has a nonzero pair for it, even where the nonzeros of
    /// different images line up (the union of the images' masks meets, so only the image-by-image search decides),
    /// on 8x8 planes and on 6x6 ones (whose mask grid of 8x8 cells is one word: the search over a channel's words).
    func testZerosWhoseSupportIsSplitAcrossImagesAreExact() {
        for (block, side) in [(3, 8), (5, 8), (3, 6), (5, 6)] {
            WinogradGeometry.forcedBlock = block
            defer { WinogradGeometry.forcedBlock = nil }
            var generator = SeededRandom(seed: 37)
            let c = Case(batch: 3, channels: 4, outChannels: 5, height: side, width: side, padding: 1)
            let plane = side * side
            // Tap column j reads input column x + j - 1 from output column x. Image 0: inputs in column 3, output
            // gradients in column 0; image 1: inputs in column 6 (5 on 6x6 planes), output gradients in column 4
            // (3): no tap meets in either image, but tap column 0 (1) meets across them (4 -> 3, 3 -> 3), and each
            // image's pair shares Winograd tiles, so its sums leave rounding residue on the filter taps. Image 2
            // gives filter (0, 0) real support in taps 0, 3 and 6 (input column 2, output column 3), which sets the
            // scale of the gradient.
            var x = [Double](repeating: 0, count: c.batch * c.channels * plane)
            var r = [Double](repeating: 0, count: c.batch * c.outChannels * plane)
            for (image, inputColumn, outputColumn) in [(0, 3, 0), side == 8 ? (1, 6, 4) : (1, 5, 3)] {
                for ch in 0..<c.channels {
                    for y in 0..<side {
                        x[(image * c.channels + ch) * plane + y * side + inputColumn] = generator.normal()
                    }
                }
                for k in 0..<c.outChannels {
                    for y in 0..<side {
                        r[(image * c.outChannels + k) * plane + y * side + outputColumn] = generator.normal()
                    }
                }
            }
            for y in 0..<side {
                x[(2 * c.channels) * plane + y * side + 2] = generator.normal()
                r[(2 * c.outChannels) * plane + y * side + 3] = generator.normal()
            }
            let w = randomTensor([c.outChannels, c.channels, 3, 3], &generator)
            let expected = directGradients(x, w.scalars, r, c).dw
            let supported: Set = [0, 3, 6]
            XCTAssertGreaterThan(supported.map { abs(expected[$0]) }.min()!, 0.01)
            XCTAssertEqual(expected.indices.filter { !supported.contains($0) }.map { abs(expected[$0]) }.max(), 0)
            let ws = w.converted(to: Float.self).requiringGradient()
            let out = Tensor<Float>(shape: [c.batch, c.channels, side, side], scalars: x.map(Float.init))
                .conv2d(weight: ws, padding: (1, 1), algorithm: .winograd)
            out.backward(seed: Tensor(shape: out.shape, scalars: r.map(Float.init)))
            let got = ws.grad!.scalars
            for (index, value) in got.enumerated() where !supported.contains(index) {
                XCTAssertEqual(value, 0, "block \(block), \(side)x\(side): tap \(index % 9) of filter \(index / 9)")
            }
            let scale = supported.map { abs(expected[$0]) }.max()!
            for index in supported { XCTAssertEqual(Double(got[index]), expected[index], accuracy: 1e-4 * scale) }
        }
    }

    /// The same chunked computation with one thread and with two gives the same values.
    func testThreadCountsAgree() {
        let saved = Parallel.threads
        defer { Parallel.setThreads(saved) }
        var generator = SeededRandom(seed: 9)
        let x = Tensor<Float>.normal(shape: [20, 16, 12, 12], generator: &generator)
        let w = Tensor<Float>.normal(shape: [24, 16, 3, 3], generator: &generator)
        var results: [[Float]] = []
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            let xs = x.requiringGradient(), ws = w.requiringGradient()
            let y = xs.conv2d(weight: ws, padding: (1, 1), algorithm: .winograd)
            y.sum().backward()
            results.append(y.scalars + xs.grad!.scalars + ws.grad!.scalars)
        }
        // The scale is set by the weight gradients, sums over 2880 positions split among the threads differently
        // for each count: the gradient yardstick 1e-4 (float32's worst case for such a sum is 2880 u = 1.7e-4 of
        // the sum of magnitudes).
        XCTAssertLessThanOrEqual(relativeError(results[1], results[0]), 1e-4)
    }

    /// Small images with many channels hold every tile at once and take the weight gradient row by row of tile
    /// positions; where a row's 5 or 7 positions do not divide among the threads, each position's products are
    /// split into blocks of input channels. At 1, 2 and 3 threads both gradients stay within the Winograd tolerance
    /// of im2col's (block 5 on 5x5 maps and block 3 on 6x6 maps, 96 input channels: split in 2 and in 3).
    func testSplitProductsOfTheRowByRowWeightGradient() {
        let saved = Parallel.threads
        defer { Parallel.setThreads(saved) }
        var generator = SeededRandom(seed: 31)
        for side in [5, 6] {
            let x = Tensor<Float>.normal(shape: [3, 96, side, side], generator: &generator)
            let w = Tensor<Float>.normal(shape: [24, 96, 3, 3], std: 0.1, generator: &generator)
            let g = WinogradGeometry(batch: 3, channels: 96, height: side, width: side, outChannels: 24,
                                     padding: (1, 1))
            XCTAssertTrue(g.allAtOnce)
            XCTAssertEqual(g.block, side == 5 ? 5 : 3)
            func gradients(_ algorithm: ConvolutionAlgorithm) -> [Float] {
                let xs = x.requiringGradient(), ws = w.requiringGradient()
                let y = xs.conv2d(weight: ws, padding: (1, 1), algorithm: algorithm)
                (y * y).sum().backward()
                return xs.grad!.scalars + ws.grad!.scalars
            }
            Parallel.setThreads(1)
            let direct = gradients(.im2col)
            for threads in [1, 2, 3] {
                Parallel.setThreads(threads)
                XCTAssertLessThanOrEqual(relativeError(gradients(.winograd), direct), 1e-4,
                                         "\(side)x\(side), \(threads) threads")
            }
        }
    }

    /// With several threads the weight gradients (summed per slot, then over slots) are the same bits from run to
    /// run: the chunks are scheduled to slots by index, not by which thread is free first.
    func testSeveralThreadsGiveTheSameBitsEveryRun() {
        let saved = Parallel.threads
        defer { Parallel.setThreads(saved) }
        Parallel.setThreads(3)
        var generator = SeededRandom(seed: 12)
        let x = Tensor<Float>.normal(shape: [23, 8, 17, 17], generator: &generator)
        let w = Tensor<Float>.normal(shape: [16, 8, 3, 3], generator: &generator)
        for algorithm in [ConvolutionAlgorithm.winograd, .im2col] {
            var runs: [[Float]] = []
            for _ in 0..<6 {
                let ws = w.requiringGradient()
                x.conv2d(weight: ws, padding: (1, 1), algorithm: algorithm).sum().backward()
                runs.append(ws.grad!.scalars)
            }
            let differing = runs.dropFirst().filter { $0 != runs[0] }.count
            XCTAssertEqual(differing, 0, "\(algorithm): \(differing) of 5 repeated runs gave other weight gradients")
        }
    }

    /// `.fastest` takes Winograd for Float (close to im2col) and im2col for Double (bitwise equal); the default is
    /// im2col.
    func testAlgorithmSelection() {
        var generator = SeededRandom(seed: 11)
        let x = Tensor<Double>.normal(shape: [3, 8, 10, 10], generator: &generator)
        let w = Tensor<Double>.normal(shape: [16, 8, 3, 3], generator: &generator)
        let fastestDouble = x.conv2d(weight: w, padding: (1, 1), algorithm: .fastest)
        let im2col = x.conv2d(weight: w, padding: (1, 1), algorithm: .im2col)
        XCTAssertEqual(fastestDouble.scalars, im2col.scalars)
        let xf = x.converted(to: Float.self), wf = w.converted(to: Float.self)
        let fast = xf.conv2d(weight: wf, padding: (1, 1), algorithm: .fastest)
        let reference = xf.conv2d(weight: wf, padding: (1, 1))
        XCTAssertEqual(reference.scalars, xf.conv2d(weight: wf, padding: (1, 1), algorithm: .im2col).scalars)
        XCTAssertNotEqual(fast.scalars, reference.scalars, "the Winograd path was not taken")
        // Winograd within 2e-5 of the exact result (see testFloatMatchesDirectConvolution), im2col within 1e-5.
        XCTAssertLessThanOrEqual(relativeError(fast.scalars, reference.scalars), 3e-5)
    }

    /// `.fastestBackward` gives im2col's outputs and `.fastest`'s gradients, bit for bit, where `.fastest` takes
    /// Winograd (with and without padding, a 3x3 and a 5x5 tile), and im2col's both ways where it does not (a 1x1
    /// output, 2 input channels, a stride, Double); with every subset of the gradients asked for.
    func testFastestBackwardHasTheDirectForwardAndTheWinogradGradients() {
        var generator = SeededRandom(seed: 13)
        func run<S: TensorScalar>(_ x: Tensor<S>, _ w: Tensor<S>, _ b: Tensor<S>, _ gy: Tensor<S>, padding: Int,
                                  stride: Int, needs: (Bool, Bool, Bool),
                                  _ algorithm: ConvolutionAlgorithm) -> [[S]] {
            let xs = needs.0 ? x.requiringGradient() : x
            let ws = needs.1 ? w.requiringGradient() : w
            let bs = needs.2 ? b.requiringGradient() : b
            let y = xs.conv2d(weight: ws, bias: bs, stride: (stride, stride), padding: (padding, padding),
                              algorithm: algorithm)
            if needs != (false, false, false) { y.backward(seed: gy) }
            return [y.scalars, xs.grad?.scalars ?? [], ws.grad?.scalars ?? [], bs.grad?.scalars ?? []]
        }
        func check<S: TensorScalar>(_: S.Type, channels: Int, side: Int, padding: Int, stride: Int = 1,
                                    winograd: Bool) {
            let x = Tensor<S>.normal(shape: [3, channels, side, side], generator: &generator)
            let w = Tensor<S>.normal(shape: [5, channels, 3, 3], generator: &generator)
            let b = Tensor<S>.normal(shape: [5], generator: &generator)
            let outSide = (side + 2 * padding - 3) / stride + 1
            let gy = Tensor<S>.normal(shape: [3, 5, outSide, outSide], generator: &generator)
            let label = "\(S.self), \(channels) channels, \(side)x\(side), padding \(padding), stride \(stride)"
            for needs in [(true, true, true), (true, false, false), (false, true, false), (false, false, true),
                          (false, false, false)] {
                let both = run(x, w, b, gy, padding: padding, stride: stride, needs: needs, .fastestBackward)
                let direct = run(x, w, b, gy, padding: padding, stride: stride, needs: needs, .im2col)
                let fastest = run(x, w, b, gy, padding: padding, stride: stride, needs: needs, .fastest)
                XCTAssertEqual(both[0], direct[0], "\(label): the forward is not im2col's")
                let gradients = winograd ? fastest : direct
                for (k, name) in [(1, "input"), (2, "weight"), (3, "bias")] {
                    XCTAssertEqual(both[k], gradients[k], "\(label), needs \(needs): the \(name) gradient")
                }
                if winograd && needs.0 {
                    XCTAssertNotEqual(both[1], direct[1], "\(label): the Winograd backward was not taken")
                    XCTAssertLessThanOrEqual(relativeError(both[1], direct[1]), 3e-5, label)
                }
            }
        }
        check(Float.self, channels: 8, side: 11, padding: 0, winograd: true)
        check(Float.self, channels: 6, side: 9, padding: 1, winograd: true)
        check(Float.self, channels: 8, side: 7, padding: 0, winograd: true)
        check(Float.self, channels: 8, side: 3, padding: 0, winograd: false)
        check(Float.self, channels: 2, side: 9, padding: 1, winograd: false)
        check(Float.self, channels: 8, side: 9, padding: 1, stride: 2, winograd: false)
        check(Double.self, channels: 8, side: 9, padding: 1, winograd: false)
    }

    /// `.fastest` keeps im2col for outputs smaller than 3x3 (where a tile is mostly waste) and takes Winograd from
    /// 3x3 outputs on, with and without padding.
    func testFastestTakesWinogradFromThreeByThreeOutputsOn() {
        var generator = SeededRandom(seed: 12)
        let w = Tensor<Float>.normal(shape: [16, 8, 3, 3], generator: &generator)
        for (side, padding, winograd) in [(3, 0, false), (4, 0, false), (5, 0, true), (7, 0, true), (1, 1, false),
                                          (2, 1, false), (3, 1, true)] {
            let x = Tensor<Float>.normal(shape: [2, 8, side, side], generator: &generator)
            let fast = x.conv2d(weight: w, padding: (padding, padding), algorithm: .fastest)
            let exact = x.conv2d(weight: w, padding: (padding, padding), algorithm: .im2col)
            let output = "\(fast.shape[2])x\(fast.shape[3]) output"
            if winograd {
                XCTAssertNotEqual(fast.scalars, exact.scalars, "\(output): the Winograd path was not taken")
                XCTAssertLessThanOrEqual(relativeError(fast.scalars, exact.scalars), 3e-5, output)
            } else {
                XCTAssertEqual(fast.scalars, exact.scalars, "\(output): im2col was not taken")
            }
        }
    }

    /// A filter cache transforms a weight once and reuses the transform for the same weight array; a changed weight
    /// (a write to the array copies it) or another tile size is transformed again. Every result has the uncached
    /// bits.
    func testFilterCacheReusesTheTransformOnlyForTheSameWeight() {
        var generator = SeededRandom(seed: 13)
        var w = Tensor<Float>.normal(shape: [8, 4, 3, 3], generator: &generator)
        let x = Tensor<Float>.normal(shape: [2, 4, 9, 9], generator: &generator)
        let cache = WinogradFilterCache<Float>()
        func check(_ input: Tensor<Float>, computed: Int, _ message: String) {
            let cached = input.conv2d(weight: w, padding: (1, 1), algorithm: .fastest, filterCache: cache)
            let fresh = input.conv2d(weight: w, padding: (1, 1), algorithm: .fastest)
            XCTAssertEqual(cached.scalars, fresh.scalars, message)
            XCTAssertEqual(cache.computed, computed, message)
        }
        check(x, computed: 1, "first call")
        check(x, computed: 1, "same weight")
        let copy = w
        w.scalars[5] += 0.25
        check(x, computed: 2, "weight changed in place")
        XCTAssertNotEqual(copy.scalars, w.scalars)
        w = Tensor(shape: w.shape, scalars: w.scalars.map { $0 })
        check(x, computed: 3, "equal values in new storage")
        // A 5x5 map takes the 5x5 tiles, a 9x9 one the 3x3 tiles.
        check(Tensor<Float>.normal(shape: [2, 4, 5, 5], generator: &generator), computed: 4, "other tile size")
        check(x, computed: 5, "back to 3x3 tiles")
        cache.clear()
        check(x, computed: 6, "after clear")
        // The same storage in another shape: (4, 8) filters on 8 channels.
        let reshaped = w.reshaped([4, 8, 3, 3])
        let wide = Tensor<Float>.normal(shape: [2, 8, 9, 9], generator: &generator)
        XCTAssertEqual(wide.conv2d(weight: reshaped, padding: (1, 1), algorithm: .fastest, filterCache: cache).scalars,
                       wide.conv2d(weight: reshaped, padding: (1, 1), algorithm: .fastest).scalars)
        XCTAssertEqual(cache.computed, 7, "same storage, other shape")
    }

    /// `forRanges` covers every index once, in contiguous ranges of at least the minimum (up to 4 per thread, so that
    /// a thread done first takes more), and runs inline on one thread or below the minimum.
    func testForRangesCoversEveryIndexOnceInRangesOfTheMinimum() {
        let saved = Parallel.threads
        defer { Parallel.setThreads(saved) }
        for (threads, count, minimum, expected) in [(1, 1000, 10, 1), (2, 1000, 10, 8), (2, 35, 10, 3), (2, 9, 10, 1),
                                                    (3, 100_000, 1 << 14, 6), (2, 0, 1, 1)] {
            Parallel.setThreads(threads)
            let lock = NSLock()
            var ranges: [Range<Int>] = []
            Parallel.forRanges(count, minimumPerThread: minimum) { range in
                lock.lock()
                ranges.append(range)
                lock.unlock()
            }
            ranges.sort { $0.lowerBound < $1.lowerBound }
            XCTAssertEqual(ranges.count, expected, "\(threads) threads, \(count) / \(minimum)")
            XCTAssertEqual(ranges.first?.lowerBound, 0)
            XCTAssertEqual(ranges.last?.upperBound, count)
            XCTAssertTrue(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            if expected > 1 { XCTAssertTrue(ranges.allSatisfy { $0.count >= minimum }) }
        }
    }

    /// The worker pool the chunked kernels run on: every chunk exactly once, worker indices within the slots, nested
    /// regions inline, and thread counts changed back and forth.
    func testWorkerPoolRunsEveryChunkOnce() {
        let saved = Parallel.threads
        defer { Parallel.setThreads(saved) }
        for threads in [2, 1, 3, 2] {
            Parallel.setThreads(threads)
            let chunks = 37
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: chunks)
            let workers = UnsafeMutablePointer<Int>.allocate(capacity: chunks)
            seen.initialize(repeating: 0, count: chunks)
            defer { seen.deallocate(); workers.deallocate() }
            Parallel.forEachWorker(chunks) { chunk, worker in
                seen[chunk] += 1
                workers[chunk] = worker
                // A nested region runs inline on this thread.
                var inner = 0
                Parallel.forEach(4) { _ in inner += 1 }
                XCTAssertEqual(inner, 4)
            }
            XCTAssertEqual((0..<chunks).map { seen[$0] }, [Int](repeating: 1, count: chunks), "threads \(threads)")
            XCTAssertTrue((0..<chunks).allSatisfy { workers[$0] >= 0 && workers[$0] < Parallel.workerSlots })
        }
    }

    /// Finite differences through the Winograd path in Double.
    func testFiniteDifferences() {
        var generator = SeededRandom(seed: 12)
        let x = randomTensor([2, 3, 5, 4], &generator)
        let w = randomTensor([2, 3, 3, 3], &generator)
        let b = randomTensor([2], &generator)
        checkGradients([x, w, b], tolerance: 1e-7, "winograd conv2d") { t in
            t[0].conv2d(weight: t[1], bias: t[2], padding: (1, 1), algorithm: .winograd)
        }
    }
}
