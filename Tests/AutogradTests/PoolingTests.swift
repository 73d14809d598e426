import XCTest
@testable import Autograd

final class PoolingTests: XCTestCase {
    // MARK: Reference cases

    func testMaxPool2dReference() throws {
        let c = try loadReferenceCase("maxpool2d_0")
        let k = try c.intArgument("kernel", count: 2), s = try c.intArgument("stride", count: 2)
        let p = try c.intArgument("padding", count: 2)
        let x = try c.tensor("input").tensor.requiringGradient()
        let y = x.maxPool2d(kernel: (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]))
        assertMatches(y, try c.tensor("output"), tolerance: 1e-5, "maxpool2d_0 output")
        y.backward(seed: try c.tensor("grad.output").tensor)
        assertMatches(x.grad, try c.tensor("grad.input"), tolerance: 1e-4, "maxpool2d_0 grad.input")
    }

    private func checkReference3d(_ name: String) throws {
        let c = try loadReferenceCase(name)
        let k = try c.intArgument("kernel", count: 3), s = try c.intArgument("stride", count: 3)
        let p = try c.intArgument("padding", count: 3)
        let x = try c.tensor("input").tensor.requiringGradient()
        let y = x.maxPool3d(kernel: (k[0], k[1], k[2]), stride: (s[0], s[1], s[2]), padding: (p[0], p[1], p[2]))
        assertMatches(y, try c.tensor("output"), tolerance: 1e-5, "\(name) output")
        y.backward(seed: try c.tensor("grad.output").tensor)
        assertMatches(x.grad, try c.tensor("grad.input"), tolerance: 1e-4, "\(name) grad.input")
    }

    func testMaxPool3dReference0() throws { try checkReference3d("maxpool3d_0") }
    func testMaxPool3dReference1() throws { try checkReference3d("maxpool3d_1") }

    // MARK: Forward against a direct loop

    /// Direct 3-D max pooling of one (D, H, W) volume per plane, windows clipped to the input.
    private func directPool(_ x: [Double], planes: Int, size: [Int], kernel: [Int], stride: [Int],
                            padding: [Int]) -> [Double] {
        var out = [Int]()
        for a in 0..<3 {
            let span: Int = size[a] + 2 * padding[a] - kernel[a]
            out.append(span / stride[a] + 1)
        }
        var result = [Double]()
        for p in 0..<planes { for od in 0..<out[0] { for oh in 0..<out[1] { for ow in 0..<out[2] {
            var best = -Double.infinity
            for d in 0..<kernel[0] { for h in 0..<kernel[1] { for w in 0..<kernel[2] {
                let (id, ih, iw) = (od * stride[0] - padding[0] + d, oh * stride[1] - padding[1] + h,
                                    ow * stride[2] - padding[2] + w)
                if id >= 0 && id < size[0] && ih >= 0 && ih < size[1] && iw >= 0 && iw < size[2] {
                    best = max(best, x[((p * size[0] + id) * size[1] + ih) * size[2] + iw])
                }
            } } }
            result.append(best)
        } } } }
        return result
    }

    func testMaxPoolForwardMatchesDirectLoop() {
        var g = SeededRandom(seed: 20)
        let x2 = randomTensor([2, 3, 7, 6], &g)
        let y2 = x2.maxPool2d(kernel: (3, 2), stride: (2, 1), padding: (1, 1))
        XCTAssertEqual(y2.shape, [2, 3, 4, 7])
        XCTAssertEqual(y2.scalars, directPool(x2.scalars, planes: 6, size: [1, 7, 6], kernel: [1, 3, 2],
                                              stride: [1, 2, 1], padding: [0, 1, 1]))
        let x3 = randomTensor([1, 2, 5, 4, 6], &g)
        let y3 = x3.maxPool3d(kernel: (2, 3, 2), padding: (1, 1, 0))
        XCTAssertEqual(y3.shape, [1, 2, 3, 2, 3])
        XCTAssertEqual(y3.scalars, directPool(x3.scalars, planes: 2, size: [5, 4, 6], kernel: [2, 3, 2],
                                              stride: [2, 3, 2], padding: [1, 1, 0]))
    }

    /// Float's max-pool kernel (CKernels' two vector passes, on every path the CPU supports) gives the scalar scan's
    /// values and indices bit for bit: values from five levels (ties everywhere), a -inf, a plane with a NaN (redone
    /// by the scan) and a plane of -inf only, over 2-D and 3-D windows, strides and paddings, on rows of 5, 9, 16, 21
    /// and 301 columns (shorter than a vector; whole vectors with and without an overlapping last one; more than the
    /// 128 outputs per block of the 3-wide, stride-2 column pass).
    func testFloatKernelMatchesTheScanOnEveryPath() {
        var generator = SeededRandom(seed: 31)
        var checked = 0
        for width in [5, 9, 16, 21, 301] {
            for kernel in [[1, 3, 3], [1, 2, 2], [2, 3, 2], [1, 1, 4], [1, 3, 1], [3, 2, 5]] {
                for stride in [[1, 1, 1], [1, 2, 2], [2, 1, 3], [1, 3, 1], [2, 2, 4]] {
                    for padding in [[0, 0, 0], [0, 1, 1], [1, 1, 0], [1, 0, 2]]
                    where zip(padding, kernel).allSatisfy({ 2 * $0 <= $1 }) {
                        let g = PoolingGeometry(planes: 4, depth: 3, height: 9, width: width, kernel: kernel,
                                                stride: stride, padding: padding)
                        let inPlane = g.inputPlane, outCount = 4 * g.outputPlane
                        var x = (0..<(4 * inPlane)).map { _ in Float(Int.random(in: -2...2, using: &generator)) }
                        x[5] = -.infinity
                        x[inPlane + 17] = .nan
                        for i in (2 * inPlane)..<(3 * inPlane) { x[i] = -.infinity }
                        var scanned = [Float](repeating: 0, count: outCount)
                        var scannedIndices = [Int32](repeating: 0, count: outCount)
                        Float.maxPoolScanning(x, &scanned, &scannedIndices, geometry: g)
                        let results = CPUKernels.onEveryPath { () -> ([Float], [Int32]) in
                            var pooled = [Float](repeating: 0, count: outCount)
                            var indices = [Int32](repeating: 0, count: outCount)
                            Float.maxPool(x, &pooled, &indices, geometry: g)
                            return (pooled, indices)
                        }
                        for (path, (pooled, indices)) in results {
                            let what = "width \(width) kernel \(kernel) stride \(stride) padding \(padding) on \(path)"
                            XCTAssertEqual(pooled.map(\.bitPattern), scanned.map(\.bitPattern), what)
                            XCTAssertEqual(indices, scannedIndices, what)
                        }
                        checked += 1
                    }
                }
            }
        }
        XCTAssertEqual(checked, 325)
    }

    /// The models' pooling, (1, 3, 3) windows at stride (1, 2, 2) with padding (0, 1, 1), has its own kernel
    /// (`ck_max_pool3s2`): the scan's values and indices bit for bit on every path, for odd and even heights and
    /// widths from 1 up (planes narrower than a vector, the CNN's 5x5, the C4CNN's 33x33), a plane taller than one
    /// block of output rows (601 columns: blocks of 6 rows), depth slices, ties, -inf, -0 against +0 and a NaN; and
    /// the same values without indices (`ck_max_pool3s2_values`: planes without -0 or NaN, the calls holding the
    /// NaN and the -0 redone with indices); with three planes, and with forty small ones that share calls.
    func testStrideTwoKernelMatchesTheScanOnEveryPath() {
        var generator = SeededRandom(seed: 33)
        let sizes = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 4), (4, 3), (5, 5), (6, 8), (9, 17), (16, 16), (17, 33),
                     (33, 33), (14, 601)]
        // Three planes (one call each for the larger ones), and 40 (small planes share a call: a block of output
        // rows spans several planes, one of them with a NaN, another with a -0).
        for (height, width, planes) in sizes.map({ ($0.0, $0.1, 3) }) + [(1, 1, 40), (3, 4, 40), (5, 5, 40),
                                                                         (9, 9, 40), (6, 8, 40), (13, 13, 40)] {
            let g = PoolingGeometry(planes: planes, depth: 2, height: height, width: width, kernel: [1, 3, 3],
                                    stride: [1, 2, 2], padding: [0, 1, 1])
            let inPlane = g.inputPlane, outCount = planes * g.outputPlane
            let levels: [Float] = [-1, -0.0, 0, 0.5, 2]
            var x = (0..<(planes * inPlane)).map { _ in levels[Int.random(in: 0..<5, using: &generator)] }
            // -0 only in the last plane (the others without it run values-only); a NaN in the middle one.
            for i in 0..<((planes - 1) * inPlane) where x[i] == 0 { x[i] = 0 }
            x[0] = -.infinity
            x[planes / 2 * inPlane + inPlane / 2] = .nan
            x[(planes - 1) * inPlane + inPlane / 2] = -0.0
            var scanned = [Float](repeating: 0, count: outCount)
            var scannedIndices = [Int32](repeating: 0, count: outCount)
            Float.maxPoolScanning(x, &scanned, &scannedIndices, geometry: g)
            let results = CPUKernels.onEveryPath { () -> ([Float], [Int32], [Float]) in
                var pooled = [Float](repeating: 7, count: outCount)
                var indices = [Int32](repeating: -1, count: outCount)
                Float.maxPool(x, &pooled, &indices, geometry: g)
                var valuesOnly = [Float](repeating: 7, count: outCount)
                Float.maxPool(x, &valuesOnly, nil, geometry: g)
                return (pooled, indices, valuesOnly)
            }
            for (path, (pooled, indices, valuesOnly)) in results {
                let what = "\(height)x\(width) on \(path)"
                XCTAssertEqual(pooled.map(\.bitPattern), scanned.map(\.bitPattern), what)
                XCTAssertEqual(indices, scannedIndices, what)
                XCTAssertEqual(valuesOnly.map(\.bitPattern), scanned.map(\.bitPattern), "\(what), values only")
            }
        }
    }

    /// The backward kernel writes the whole input gradient (the buffer starts full of NaN): each output gradient
    /// added into its argmax, zeros elsewhere, for overlapping windows (where an input takes several terms) and
    /// windows that skip inputs, at one and two threads (128 planes of 286 inputs: enough work for two tasks).
    func testBackwardWritesTheWholeInputGradient() {
        let savedThreads = Parallel.threads
        defer { Parallel.setThreads(savedThreads) }
        var generator = SeededRandom(seed: 32)
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            for (kernel, stride, padding) in [([1, 3, 3], [1, 2, 2], [0, 1, 1]), ([1, 2, 2], [1, 3, 3], [0, 0, 0])] {
                let g = PoolingGeometry(planes: 128, depth: 2, height: 11, width: 13, kernel: kernel, stride: stride,
                                        padding: padding)
                let outCount = g.planes * g.outputPlane
                let x = (0..<(g.planes * g.inputPlane)).map { _ in Float(generator.normal()) }
                var indices = [Int32](repeating: 0, count: outCount)
                var pooled = [Float](repeating: 0, count: outCount)
                Float.maxPool(x, &pooled, &indices, geometry: g)
                let gy = (0..<outCount).map { _ in Float(Int.random(in: 1...9, using: &generator)) }
                var expected = [Float](repeating: 0, count: x.count)
                for o in 0..<outCount { expected[o / g.outputPlane * g.inputPlane + Int(indices[o])] += gy[o] }
                var dx = [Float](repeating: .nan, count: x.count)
                Float.maxPoolBackward(gy, indices, &dx, geometry: g)
                // Small integers: the sums are exact in any order.
                XCTAssertEqual(dx, expected, "\(threads) thread(s), kernel \(kernel) stride \(stride)")
            }
        }
    }

    func testMaxPoolTiesGoToFirstAndNaNPropagates() {
        // One 2x2 window of equal values: the whole gradient goes to the first in scan order.
        let x = Tensor<Double>(repeating: 1, shape: [1, 1, 2, 2]).requiringGradient()
        x.maxPool2d(kernel: (2, 2)).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [1, 0, 0, 0])

        let withNaN = Tensor<Double>(shape: [1, 1, 1, 4], scalars: [1, .nan, 5, 2])
        let y = withNaN.maxPool2d(kernel: (1, 2))
        XCTAssertTrue(y.scalars[0].isNaN)
        XCTAssertEqual(y.scalars[1], 5)
    }

    /// Where no gradient will be asked for (`withoutGradients`, or an input that requires none) the pooling keeps no
    /// indices; its values are the bits of the recorded pooling, for the models' windows and others, with ties of
    /// -0 and +0 (the first in scan order wins) and a NaN.
    func testPoolingWithoutGradientsGivesTheRecordedValues() {
        var generator = SeededRandom(seed: 24)
        let levels: [Float] = [-1, -0.0, 0, 3]
        let values = (0..<(2 * 3 * 4 * 11 * 10)).map { _ in levels[Int.random(in: 0..<4, using: &generator)] }
        var withNaN = values
        withNaN[17] = .nan
        let pools: [(Tensor<Float>) -> Tensor<Float>] = [
            { $0.maxPool3d(kernel: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1)) },
            { $0.maxPool3d(kernel: (2, 3, 2), stride: (1, 2, 2), padding: (1, 1, 0)) },
            { $0.reshaped([2, 12, 11, 10]).maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)) },
        ]
        for (index, pool) in pools.enumerated() {
            for scalars in [values, withNaN] {
                let recorded = pool(Tensor<Float>(shape: [2, 3, 4, 11, 10], scalars: scalars).requiringGradient())
                XCTAssertTrue(recorded.requiresGradient)
                let plain = pool(Tensor<Float>(shape: [2, 3, 4, 11, 10], scalars: scalars))
                let unrecorded = withoutGradients {
                    pool(Tensor<Float>(shape: [2, 3, 4, 11, 10], scalars: scalars).requiringGradient())
                }
                XCTAssertFalse(unrecorded.requiresGradient)
                XCTAssertEqual(plain.scalars.map(\.bitPattern), recorded.scalars.map(\.bitPattern), "pool \(index)")
                XCTAssertEqual(unrecorded.scalars.map(\.bitPattern), recorded.scalars.map(\.bitPattern),
                               "pool \(index)")
            }
        }
    }

    /// The CNN and the C4CNN pool before their ReLUs: the same values and input gradients as ReLU then pooling,
    /// checked on small integers (ties within windows, windows of zeros, windows with no positive value).
    func testPoolingThenReLUIsReLUThenPooling() {
        var generator = SeededRandom(seed: 23)
        let cases: [(shape: [Int], pool: (Tensor<Float>) -> Tensor<Float>)] = [
            ([3, 4, 9, 9], { $0.maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }),
            ([2, 3, 4, 9, 9], { $0.maxPool3d(kernel: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1)) }),
            ([2, 2, 3, 7, 6], { $0.maxPool3d(kernel: (2, 2, 3), stride: (1, 2, 1)) }),
        ]
        for (index, c) in cases.enumerated() {
            let count = c.shape.reduce(1, *)
            let values = (0..<count).map { _ in Float(Int.random(in: -3...2, using: &generator)) }
            let seedCount = c.pool(Tensor(shape: c.shape, scalars: values)).count
            let seed = (0..<seedCount).map { _ in Float(Int.random(in: 1...9, using: &generator)) }
            var results: [(values: [Float], gradient: [Float])] = []
            for reluFirst in [true, false] {
                let x = Tensor<Float>(shape: c.shape, scalars: values).requiringGradient()
                let y = reluFirst ? c.pool(x.relu()) : c.pool(x).relu()
                y.backward(seed: Tensor(shape: y.shape, scalars: seed))
                results.append((y.scalars, x.grad!.scalars))
            }
            XCTAssertEqual(results[0].values, results[1].values, "case \(index): values")
            XCTAssertEqual(results[0].gradient, results[1].gradient, "case \(index): input gradients")
            XCTAssertGreaterThan(results[0].gradient.filter { $0 != 0 }.count, 0, "case \(index): a gradient reaches x")
        }
    }

    // MARK: Finite differences (random normal values: no ties)

    /// Fails unless every two values of `x` are more than 2 eps apart (eps: the finite-difference step, 1e-6): only
    /// then can no step of +-eps reorder a window, and the differences measure the derivative, not the kink.
    private func assertNoNearTies(_ x: Tensor<Double>, file: StaticString = #filePath, line: UInt = #line) -> Tensor<Double> {
        let sorted = x.scalars.sorted()
        let gap = zip(sorted, sorted.dropFirst()).map { $1 - $0 }.min() ?? .infinity
        XCTAssertGreaterThan(gap, 2e-6, "inputs too close to a tie", file: file, line: line)
        return x
    }

    func testMaxPool2dGradients() {
        var g = SeededRandom(seed: 21)
        checkGradients([assertNoNearTies(randomTensor([2, 2, 7, 6], &g))], "maxPool2d overlapping, padded") {
            $0[0].maxPool2d(kernel: (3, 2), stride: (2, 1), padding: (1, 1))
        }
        checkGradients([assertNoNearTies(randomTensor([1, 3, 6, 6], &g))], "maxPool2d default stride") {
            $0[0].maxPool2d(kernel: (2, 3))
        }
    }

    func testMaxPool3dGradients() {
        var g = SeededRandom(seed: 22)
        checkGradients([assertNoNearTies(randomTensor([1, 2, 4, 5, 5], &g))], "maxPool3d") {
            $0[0].maxPool3d(kernel: (2, 3, 3), stride: (1, 2, 2), padding: (1, 1, 1))
        }
    }
}
