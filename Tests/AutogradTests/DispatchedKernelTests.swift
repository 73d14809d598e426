import XCTest
import CKernels
@testable import Autograd

/// The CPU-dispatched Float kernels (`Kernels/DispatchedKernels.swift`, the C target CKernels): every path this CPU
/// supports (baseline, AVX2, AVX-512) gives the same bits, and they agree with the generic Swift kernels (Double's
/// table).
final class DispatchedKernelTests: XCTestCase {
    override func tearDown() {
        CPUKernels.select(baseline: false)
        super.tearDown()
    }

    /// Random floats with some exact zeros, negative zeros and ties, in a length that leaves a vector tail.
    private func values(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SeededRandom(seed: seed)
        return (0..<count).map { i in
            switch i % 11 {
            case 3: return 0
            case 7: return -0.0
            default: return Float(generator.normal())
            }
        }
    }

    /// `body` on every path the CPU supports, baseline first: the paths' names and results.
    private func everyPath<T>(_ body: () -> T) -> [(path: String, value: T)] {
        let results = CPUKernels.onEveryPath(body)
        XCTAssertEqual(results.first?.path, "baseline")
        return results
    }

    private func bits(_ x: [Float]) -> [UInt32] { x.map(\.bitPattern) }

    func testBaselineCanBeForcedAndNamed() {
        XCTAssertEqual(CPUKernels.select(baseline: true), "baseline")
        XCTAssertTrue(["baseline", "avx2+fma", "avx512f"].contains(CPUKernels.select(baseline: false)))
    }

    func testElementwiseKernelsGiveTheSameBitsOnEveryPath() {
        let n = 1000 + 13
        let a = Tensor(shape: [n], scalars: values(n, seed: 1))
        let b = Tensor(shape: [n], scalars: values(n, seed: 2).map { $0 == 0 ? 0.5 : $0 })
        for name in ["add", "sub", "mul", "div", "maximum", "relu", "scale"] {
            let results = everyPath { withoutGradients { apply(name, a, b).scalars } }
            for (path, value) in results.dropFirst() {
                XCTAssertEqual(bits(results[0].value), bits(value), "\(name): baseline and \(path) differ")
            }
            // The generic kernels in Double, rounded to Float, give the same values (each op is one rounding).
            let reference = withoutGradients {
                apply(name, Tensor(shape: [n], scalars: a.scalars.map(Double.init)),
                      Tensor(shape: [n], scalars: b.scalars.map(Double.init))).scalars
            }
            XCTAssertEqual(results[0].value, reference.map { Float($0) },
                           "\(name): dispatched kernel against the generic one")
        }
    }

    private func apply<S: TensorScalar>(_ name: String, _ a: Tensor<S>, _ b: Tensor<S>) -> Tensor<S> {
        switch name {
        case "add": return a + b
        case "sub": return a - b
        case "mul": return a * b
        case "div": return a / b
        case "maximum": return Tensor.maximum(a, b)
        case "relu": return a.relu()
        default: return a * 0.375
        }
    }

    func testReluGradientAndAccumulationGiveTheSameBitsOnEveryPath() {
        let n = 777
        let x0 = Tensor(shape: [n], scalars: values(n, seed: 3))
        let seed = Tensor(shape: [n], scalars: values(n, seed: 4))
        let results = everyPath { () -> [Float] in
            let x = x0.requiringGradient()
            // x used twice: its gradient is accumulated from both uses.
            (x.relu() + x * 2).backward(seed: seed)
            return x.grad!.scalars
        }
        let expected = zip(x0.scalars, seed.scalars).map { x, g in (x > 0 ? g : 0) + g * 2 }
        for (path, value) in results {
            XCTAssertEqual(bits(value), bits(results[0].value), "baseline and \(path) differ")
            XCTAssertEqual(value, expected, path)
        }
    }

    /// The convolution's output pass (reorder with the bias add) and its bias gradient (channel sums), through
    /// im2col and Winograd: the same bits on every path, and the direct sums within float32 rounding.
    func testConvolutionBiasPassesAgreeOnEveryPath() {
        var generator = SeededRandom(seed: 5)
        let x0 = Tensor<Float>.normal(shape: [3, 5, 9, 7], generator: &generator)
        let w0 = Tensor<Float>.normal(shape: [6, 5, 3, 3], std: 0.3, generator: &generator)
        let b0 = Tensor<Float>.normal(shape: [6], generator: &generator)
        let g = Tensor<Float>.normal(shape: [3, 6, 9, 7], generator: &generator)
        for algorithm in [ConvolutionAlgorithm.im2col, .fastest] {
            let results = everyPath { () -> [[Float]] in
                let (x, w, b) = (x0.requiringGradient(), w0.requiringGradient(), b0.requiringGradient())
                let y = x.conv2d(weight: w, bias: b, padding: (1, 1), algorithm: algorithm)
                y.backward(seed: g)
                return [y.scalars, x.grad!.scalars, w.grad!.scalars, b.grad!.scalars]
            }
            let baseline = results[0].value, best = results.last!.value
            for (path, value) in results.dropFirst() {
                for part in 0..<4 {
                    XCTAssertEqual(bits(baseline[part]), bits(value[part]), "\(algorithm) part \(part) on \(path)")
                }
            }
            // The bias gradient against the sum in Double.
            var sums = [Double](repeating: 0, count: 6)
            for (i, v) in g.scalars.enumerated() { sums[(i / 63) % 6] += Double(v) }
            XCTAssertLessThanOrEqual(relativeError(best[3], sums.map { Float($0) }), 1e-5, "\(algorithm) bias gradient")
        }
    }

    /// Blocks of short rows (im2col's copies, col2im's adds) on every path: every width from 0 to 40 (copies with
    /// masked tails on AVX-512, overlapping vectors of eight, four or two elsewhere and for every add), one or
    /// several planes and rows, strides wider than the rows, and nothing written outside them.
    func testRowBlocksGiveTheGenericValuesOnEveryPath() {
        let source = values(900, seed: 11)
        var checked = 0
        for width in 0...40 {
            for (planes, rows, pad) in [(1, 1, 0), (1, 3, 5), (2, 4, 1), (3, 2, 9)] {
                let block = RowBlock(planes: planes, rows: rows, width: width,
                                     source: .init(plane: rows * (width + pad) + 2, row: width + pad),
                                     destination: .init(plane: rows * (width + 9 - pad), row: width + 9 - pad))
                let start = values(planes * block.destination.plane + 16, seed: UInt64(20 + width))
                var expectedCopy = start, expectedAdd = start
                for p in 0..<planes {
                    for r in 0..<rows {
                        for x in 0..<width {
                            let (s, d) = (block.source.offset(p, r) + x, block.destination.offset(p, r) + x)
                            expectedCopy[d] = source[s]
                            expectedAdd[d] += source[s]
                        }
                    }
                }
                var generic = start
                Float.copyRowsKernel(source, block, &generic)
                XCTAssertEqual(generic, expectedCopy, "generic copy, width \(width)")
                generic = start
                Float.addRowsKernel(source, block, &generic)
                XCTAssertEqual(generic, expectedAdd, "generic add, width \(width)")
                let results = everyPath { () -> [Float] in
                    var copied = start, added = start
                    Float.copyRows(source, block, &copied)
                    Float.addRows(source, block, &added)
                    return copied + added
                }
                for (path, value) in results {
                    XCTAssertEqual(value, expectedCopy + expectedAdd,
                                   "\(path), width \(width), \(planes) planes of \(rows) rows")
                }
                checked += 1
            }
        }
        XCTAssertEqual(checked, 164)
    }

    /// The nonzero masks of the Winograd zero mask: on every path the bits of the generic kernel (set where a value is
    /// nonzero, NaN included, -0 not; other bits kept), for rows of lengths up to 130 (over two words) starting at
    /// every bit offset of a word, one row or blocks of two planes of three strided rows, over words that already
    /// hold bits.
    func testNonzeroMasksGiveTheGenericBitsOnEveryPath() {
        var data = values(1000, seed: 9)
        for i in stride(from: 4, to: 1000, by: 37) { data[i] = .nan }
        for i in stride(from: 12, to: 1000, by: 41) { data[i] = .infinity }
        for i in stride(from: 20, to: 1000, by: 43) { data[i] = -.leastNonzeroMagnitude }
        var checked = 0
        for count in [0, 1, 7, 8, 9, 17, 40, 64, 65, 130] {
            for first in [0, 3, 56, 57, 63, 64, 100] {
                for (planes, rows) in [(1, 1), (2, 3)] {
                    let (rowStride, bitRowStride) = (count + 3, count + 7)
                    let planeStride = rows * rowStride + 1
                    let words = (first + (rows - 1) * bitRowStride + count + 63) / 64 + 1
                    let block = CKNonzeroBlock(planes: planes, rows: rows, width: count, srcPlaneStride: planeStride,
                                               srcRowStride: rowStride, first: first, bitRowStride: bitRowStride,
                                               bitPlaneWords: words)
                    let start = [UInt64](repeating: 0x8000_0000_0000_0001, count: planes * words)
                    var expected = start
                    for p in 0..<planes {
                        for r in 0..<rows {
                            for x in 0..<count where data[p * planeStride + r * rowStride + x] != 0 {
                                let bit = first + r * bitRowStride + x
                                expected[p * words + bit / 64] |= 1 << UInt64(bit % 64)
                            }
                        }
                    }
                    let what = "\(planes) x \(rows) rows of \(count) from bit \(first)"
                    var generic = start
                    Float.markNonzeroKernel(data, block, &generic)
                    XCTAssertEqual(generic, expected, "generic, \(what)")
                    let results = everyPath { () -> [UInt64] in
                        var bits = start
                        Float.markNonzero(data, block, &bits)
                        return bits
                    }
                    for (path, value) in results {
                        XCTAssertEqual(value, expected, "\(path), \(what)")
                    }
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 140)
    }

    /// The largest magnitude the zero mask's threshold comes from: on every path that of a scan in Double, NaN
    /// skipped, for lengths with and without a vector tail and the largest value anywhere.
    func testLargestMagnitudeIsTheScansOnEveryPath() {
        var checked = 0
        for count in [0, 1, 7, 8, 9, 17, 40, 203] {
            for place in Set([0, count / 2, Swift.max(0, count - 1)]) {
                var x = values(count, seed: UInt64(60 + count))
                if count > 0 {
                    x[place] = -9.5
                    x[(place + 3) % count] = .nan
                }
                let expected = x.filter { !$0.isNaN }.map { Double(abs($0)) }.max() ?? 0
                for (path, value) in everyPath({ Float.largestMagnitude(x, count: count) }) {
                    XCTAssertEqual(Double(value), expected, "\(path), \(count) values, largest at \(place)")
                }
                let double = x.map(Double.init)
                XCTAssertEqual(Double.largestMagnitude(double, count: count), expected, "Double, \(count) values")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 20)
    }

    /// The Winograd filter transform U = G g G^T (both blocks; filter counts that fill the 8 lanes and that leave
    /// some empty; U written directly and through blocks of channels): on every path the bits of the generic Swift
    /// kernel written directly, the empty lanes zero, the padding between positions untouched, and U within float32
    /// rounding of G g G^T in Double.
    func testWinogradFilterTransformGivesTheGenericBitsOnEveryPath() {
        var (checked, padded) = (0, 0)
        // The last bank's U (2 and 4 MiB) is transformed in blocks of input channels through a scratch.
        for (k, c) in [(16, 3), (13, 5), (3, 2), (70, 300)] {
            for block in [3, 5] {
                let g = WinogradGeometry(batch: 1, channels: c, height: 9, width: 9, outChannels: k,
                                         padding: (1, 1), block: block)
                let weight = values(k * c * 9, seed: UInt64(40 + k + block))
                let count = g.filterCount
                var generic = [Float](repeating: .nan, count: count)
                weight.withUnsafeBufferPointer { w in
                    generic.withUnsafeMutableBufferPointer { u in
                        Float.winogradFiltersGeneric(w.baseAddress!, u.baseAddress!, stride: g.filterStride,
                                                     channels: 0..<c, geometry: g)
                    }
                }
                let results = everyPath { () -> [Float] in
                    var u = [Float](repeating: .nan, count: count)
                    weight.withUnsafeBufferPointer { w in
                        u.withUnsafeMutableBufferPointer { Float.winogradFiltersKernel(w.baseAddress!, $0.baseAddress!,
                                                                                        geometry: g) }
                    }
                    return u
                }
                for (path, value) in results {
                    let differing = zip(bits(value), bits(generic)).filter { $0 != $1 }.count
                    XCTAssertEqual(differing, 0, "values differing, k \(k), c \(c), block \(block) on \(path)")
                }
                // The padding after each position's rows is never written.
                let rows = c * g.outLanes
                let padding = (0..<g.positions).flatMap { xi in
                    (rows..<g.filterStride).map { xi * g.filterStride + $0 }
                }
                if !padding.isEmpty { padded += 1 }
                XCTAssertTrue(padding.allSatisfy { generic[$0].isNaN }, "padding written, k \(k), c \(c)")
                // U[position (a, b)][ci][ko] against G g G^T in Double; the lanes from k on are zero.
                let (n, m) = (g.tile, g.filterMatrix)
                var worst = 0.0
                for a in 0..<n {
                    for b in 0..<n {
                        for ci in 0..<c {
                            for ko in 0..<g.outLanes {
                                let got = Double(generic[(a * n + b) * g.filterStride + ci * g.outLanes + ko])
                                guard ko < k else {
                                    XCTAssertEqual(got, 0, "empty lane \(ko), block \(block)")
                                    continue
                                }
                                var sum = 0.0
                                let filter = (ko * c + ci) * 9
                                for i in 0..<3 {
                                    for j in 0..<3 {
                                        sum += m[a * 3 + i] * Double(weight[filter + i * 3 + j]) * m[b * 3 + j]
                                    }
                                }
                                worst = max(worst, abs(got - sum))
                            }
                        }
                    }
                }
                XCTAssertLessThanOrEqual(worst, 1e-5, "G g G^T, k \(k), c \(c), block \(block)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 8)
        XCTAssertGreaterThan(padded, 0)
    }
}
