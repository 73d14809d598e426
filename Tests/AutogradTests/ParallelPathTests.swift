import XCTest
@testable import Autograd

/// The generic kernels that split large work over the threads: axis reductions, the gradient of `gathered`, and the
/// zero mask's largest magnitude. Each gives the same bits at every thread count and the values of a direct loop.
final class ParallelPathTests: XCTestCase {
    private var savedThreads = 1

    override func setUp() { savedThreads = Parallel.threads }
    override func tearDown() { Parallel.setThreads(savedThreads) }

    // MARK: - Reductions

    /// Reductions over many axis subsets of tensors large enough to split (a leading kept axis split over the
    /// threads, runs of axes merged): sums within float32's bound of the Double sums, max / min / prod against a
    /// direct loop, a NaN kept in its own output only, and the same bits at 1, 2 and 3 threads.
    func testLargeReductionsMatchDirectLoopsAtEveryThreadCount() {
        var generator = SeededRandom(seed: 41)
        let shape = [37, 3, 31, 21]  // 72,261 elements
        var values = (0..<shape.reduce(1, *)).map { _ in
            Float(generator.uniform(0.5, 1.5)) * (generator.uniform(0, 1) < 0.5 ? -1 : 1)
        }
        values[12_345] = .nan
        let x = Tensor(shape: shape, scalars: values)
        let subsets: [[Int]] = [[1], [2], [3], [0], [1, 3], [2, 3], [0, 2], [1, 2, 3], [0, 1, 2, 3], []]
        for axes in subsets {
            let reduced = (0..<shape.count).map { axes.contains($0) }
            let expected = directReductions(values, shape: shape, reduced: reduced)
            // Products only over few terms (factors of 0.5 to 1.5 leave float32's range over hundreds).
            let terms = zip(shape, reduced).reduce(1) { $1.1 ? $0 * $1.0 : $0 }
            for op in [ReduceOp.sum, .max, .min, .prod] where op != .prod || terms <= 40 {
                var results: [[Float]] = []
                for threads in [1, 2, 3] {
                    Parallel.setThreads(threads)
                    results.append(x.reducing(op, reduced).scalars)
                }
                for t in 1...2 {
                    XCTAssertEqual(results[t].map(\.bitPattern), results[0].map(\.bitPattern),
                                   "\(op) over \(axes): \(t + 1) threads against 1")
                }
                let (want, bound) = expected[op]!
                XCTAssertEqual(results[0].count, want.count, "\(op) over \(axes): count")
                for (i, (got, exact)) in zip(results[0], want).enumerated() {
                    if exact.isNaN {
                        XCTAssertTrue(got.isNaN, "\(op) over \(axes) [\(i)]: \(got), expected NaN")
                    } else if op == .sum {
                        XCTAssertLessThanOrEqual(abs(Double(got) - exact), bound[i], "sum over \(axes) [\(i)]")
                    } else if op == .prod {
                        XCTAssertLessThanOrEqual(abs(Double(got) - exact), 1e-5 * abs(exact),
                                                 "prod over \(axes) [\(i)]")
                    } else {
                        XCTAssertEqual(Double(got), exact, "\(op) over \(axes) [\(i)]")
                    }
                }
            }
        }
    }

    /// Per op, each output's Double value (NaN where a NaN is among its terms) and, for sums, float32's bound for a
    /// chain of n additions, n 2^-24 sum |x|.
    private func directReductions(_ values: [Float], shape: [Int],
                                  reduced: [Bool]) -> [ReduceOp: ([Double], [Double])] {
        let outShape = zip(shape, reduced).map { $1 ? 1 : $0 }
        let outStrides = ShapeMath.strides(outShape), strides = ShapeMath.strides(shape)
        let outCount = outShape.reduce(1, *)
        var sum = [Double](repeating: 0, count: outCount), absolute = sum, terms = sum
        var largest = [Double](repeating: -.infinity, count: outCount)
        var smallest = [Double](repeating: .infinity, count: outCount)
        var product = [Double](repeating: 1, count: outCount)
        var nan = [Bool](repeating: false, count: outCount)
        for (i, value) in values.enumerated() {
            var o = 0
            for axis in shape.indices where !reduced[axis] { o += (i / strides[axis]) % shape[axis] * outStrides[axis] }
            let v = Double(value)
            if value.isNaN {
                nan[o] = true
                continue
            }
            sum[o] += v
            absolute[o] += abs(v)
            terms[o] += 1
            largest[o] = max(largest[o], v)
            smallest[o] = min(smallest[o], v)
            product[o] *= v
        }
        func withNaN(_ x: [Double]) -> [Double] { x.indices.map { nan[$0] ? .nan : x[$0] } }
        let bound = (0..<outCount).map { terms[$0] * absolute[$0] * 0x1p-24 }
        return [.sum: (withNaN(sum), bound), .max: (withNaN(largest), []), .min: (withNaN(smallest), []),
                .prod: (withNaN(product), [])]
    }

    // MARK: - The gradient of gathered

    /// A gather with repeated indices over a large result: the forward reads each index, and the gradient adds each
    /// result element onto its source in the order of the result (a loop here), the same bits at 1, 2 and 3 threads.
    func testGatheredGradientAddsInResultOrderAtEveryThreadCount() {
        var generator = SeededRandom(seed: 42)
        let sourceCount = 5003, n = 200_000
        let source = (0..<sourceCount).map { _ in Float(generator.uniform(-1, 1)) }
        // Every source element is read, most of them many times; the first and last indices included.
        var indices = (0..<n).map { _ in Int32(Int(generator.uniform(0, 1) * Double(sourceCount)) % sourceCount) }
        indices[0] = 0
        indices[n - 1] = Int32(sourceCount - 1)
        let seed = (0..<n).map { _ in Float(generator.uniform(-1, 1)) }
        var expected = [Float](repeating: 0, count: sourceCount)
        for i in 0..<n { expected[Int(indices[i])] += seed[i] }
        for threads in [1, 2, 3] {
            Parallel.setThreads(threads)
            let x = Tensor(shape: [sourceCount], scalars: source).requiringGradient()
            let y = x.gathered(indices, shape: [400, 500])
            XCTAssertEqual(y.scalars, indices.map { source[Int($0)] }, "forward at \(threads) threads")
            y.backward(seed: Tensor(shape: [400, 500], scalars: seed))
            XCTAssertEqual(x.grad!.scalars.map(\.bitPattern), expected.map(\.bitPattern),
                           "gradient at \(threads) threads")
        }
    }

    /// The bounds gathered checks its indices with: over 16-lane blocks and a tail, with the extremes in either.
    func testIndexBoundsOverBlocksAndTail() {
        for count in [0, 1, 15, 16, 17, 100, 1000] {
            for (lowAt, highAt) in [(0, count - 1), (count - 1, 0), (count / 2, count / 3)] where count > 0 {
                var indices = (0..<count).map { Int32(100 + $0 % 7) }
                indices[highAt] = 9000
                indices[lowAt] = -3
                let bounds = indices.withUnsafeBufferPointer { indexBounds($0) }
                XCTAssertEqual(bounds.low, indices.min(), "low of \(count), at \(lowAt)")
                XCTAssertEqual(bounds.high, indices.max(), "high of \(count), at \(highAt)")
            }
            if count == 0 {
                let bounds = [Int32]().withUnsafeBufferPointer { indexBounds($0) }
                XCTAssertTrue(bounds.low == .max && bounds.high == .min, "no indices")
            }
        }
    }

    // MARK: - Largest magnitude

    /// The largest |x| over a buffer large enough to split, with a NaN (skipped) and the largest value in each part
    /// in turn: the direct loop's value at 1, 2 and 3 threads, for Float (`ck_max_magnitude`) and Double.
    func testLargestMagnitudeSkipsNaNAndFindsTheLargestInEveryPart() {
        var generator = SeededRandom(seed: 43)
        let count = 300_001
        var values = (0..<count).map { _ in Float(generator.uniform(-1, 1)) }
        values[7] = .nan
        values[count - 2] = .nan
        for place in [3, count / 2 - 1, count / 2 + 1, count - 1] {
            var x = values
            x[place] = -4.5
            for threads in [1, 2, 3] {
                Parallel.setThreads(threads)
                let float = x.withUnsafeBufferPointer { Float.largestMagnitude($0.baseAddress!, count: count) }
                let double = x.map(Double.init).withUnsafeBufferPointer {
                    Double.largestMagnitude($0.baseAddress!, count: count)
                }
                XCTAssertEqual(float, 4.5, "Float, largest at \(place), \(threads) threads")
                XCTAssertEqual(double, 4.5, "Double, largest at \(place), \(threads) threads")
            }
        }
    }
}
