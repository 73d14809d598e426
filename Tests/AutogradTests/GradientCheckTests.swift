import XCTest
@testable import Autograd

/// Finite-difference checks of every core op's backward pass (`checkGradients` in OpTestSupport.swift), with
/// broadcasting, several axes and both signs of indices, plus forward values of the movement ops against direct
/// index arithmetic.
final class GradientCheckTests: XCTestCase {
    private var generator = SeededRandom(seed: 2024)

    private func random(_ shape: [Int]) -> Tensor<Double> { randomTensor(shape, &generator) }

    /// Random signs, magnitudes in [0.5, 2): away from the kinks and poles at 0.
    private func awayFromZero(_ shape: [Int], positive: Bool = false) -> Tensor<Double> {
        randomTensor(shape, magnitude: 0.5, 2, positive: positive, &generator)
    }

    /// Fails when a and b (broadcast) come closer than `gap` anywhere: a finite difference across a tie of
    /// `maximum` would measure the kink, not the derivative.
    private func assertApart(_ a: Tensor<Double>, _ b: Tensor<Double>, gap: Double = 1e-3,
                             file: StaticString = #filePath, line: UInt = #line) {
        let distance = withoutGradients { (a - b).scalars.map(abs).min() ?? .infinity }
        XCTAssertGreaterThan(distance, gap, "inputs too close to a tie", file: file, line: line)
    }

    // MARK: - Elementwise binary ops, with broadcasting

    /// Shape pairs: equal, trailing broadcast, both directions, rank-0, and broadcasting inside the shape.
    private let broadcastPairs: [([Int], [Int])] = [
        ([2, 3], [2, 3]), ([2, 3], [3]), ([3], [2, 3]), ([3, 1], [1, 4]), ([4], [2, 3, 4]),
        ([2, 1, 4], [3, 1]), ([], [2, 3]), ([2, 3], []), ([2, 1, 3], [2, 4, 1]),
    ]

    func testAdd() {
        for (sa, sb) in broadcastPairs {
            checkGradients([random(sa), random(sb)], "add \(sa) + \(sb)") { $0[0] + $0[1] }
        }
    }

    func testSub() {
        for (sa, sb) in broadcastPairs {
            checkGradients([random(sa), random(sb)], "sub \(sa) - \(sb)") { $0[0] - $0[1] }
        }
    }

    func testMul() {
        for (sa, sb) in broadcastPairs {
            checkGradients([random(sa), random(sb)], "mul \(sa) * \(sb)") { $0[0] * $0[1] }
        }
    }

    func testDiv() {
        for (sa, sb) in broadcastPairs {
            checkGradients([random(sa), awayFromZero(sb)], "div \(sa) / \(sb)") { $0[0] / $0[1] }
        }
    }

    func testMaximumWithoutTies() {
        for (sa, sb) in broadcastPairs {
            let a = random(sa), b = random(sb)
            assertApart(a, b)
            checkGradients([a, b], "maximum \(sa), \(sb)") { Tensor.maximum($0[0], $0[1]) }
        }
    }

    func testBinaryOpsWithOneConstantOperand() {
        let a = random([2, 3]), c = awayFromZero([3])
        checkGradients([a], "mul by constant") { $0[0] * c }
        checkGradients([a], "constant times") { c * $0[0] }
        checkGradients([a], "div by constant") { $0[0] / c }
        checkGradients([c], "constant over") { a / $0[0] }
        assertApart(a, c)
        checkGradients([a], "maximum with constant") { Tensor.maximum($0[0], c) }
        checkGradients([c], "maximum of constant") { Tensor.maximum(a, $0[0]) }
    }

    // MARK: - Scalar forms, on either side

    func testScalarForms() {
        let x = awayFromZero([2, 3])
        checkGradients([x], "x + s") { $0[0] + 2.5 }
        checkGradients([x], "s + x") { 2.5 + $0[0] }
        checkGradients([x], "x - s") { $0[0] - 1.5 }
        checkGradients([x], "s - x") { 1.5 - $0[0] }
        checkGradients([x], "x * s") { $0[0] * -3 }
        checkGradients([x], "s * x") { -3 * $0[0] }
        checkGradients([x], "x / s") { $0[0] / 4 }
        checkGradients([x], "s / x") { 4 / $0[0] }
        checkGradients([random([])], "rank-0 s / x") { 0.5 / ($0[0] + 3) }
    }

    // MARK: - Unary ops

    func testNeg() {
        checkGradients([random([2, 3])], "neg") { -$0[0] }
    }

    func testExp() {
        checkGradients([random([2, 3])], "exp") { $0[0].exp() }
        checkGradients([random([])], "exp rank 0") { $0[0].exp() }
    }

    func testLog() {
        checkGradients([awayFromZero([2, 3], positive: true)], "log") { $0[0].log() }
    }

    func testSqrt() {
        checkGradients([awayFromZero([2, 3], positive: true)], "sqrt") { $0[0].sqrt() }
    }

    func testPow() {
        let signed = awayFromZero([2, 3]), positive = awayFromZero([2, 3], positive: true)
        for p: Double in [0, 1, 2, 3, -1, -2] {
            checkGradients([signed], "pow \(p)") { $0[0].pow(p) }
        }
        for p: Double in [0.5, 1.5, -0.5, 2.25] {
            checkGradients([positive], "pow \(p)") { $0[0].pow(p) }
        }
    }

    /// x^0 is constant: its gradient is 0 everywhere, at x = 0 too (x^-1 * 0 would be NaN there), as in PyTorch.
    func testPowZeroAtZero() {
        let x = Tensor<Double>(shape: [3], scalars: [0, -1, 2]).requiringGradient()
        x.pow(0).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [0, 0, 0])
        let y = Tensor<Double>(shape: [2], scalars: [0, 3]).requiringGradient()
        y.pow(2).sum().backward()
        XCTAssertEqual(y.grad?.scalars, [0, 6])
    }

    func testReluAwayFromZero() {
        let x = awayFromZero([3, 4])
        XCTAssertTrue(x.scalars.contains { $0 < 0 } && x.scalars.contains { $0 > 0 })
        checkGradients([x], "relu") { $0[0].relu() }
    }

    // MARK: - Reductions

    /// Axis choices for a rank-3 input: nil (all), single axes (also negative), pairs, all three, none.
    private let axisChoices: [[Int]?] = [nil, [0], [1], [2], [-1], [0, 2], [1, -1], [0, 1, 2], []]

    func testSum() {
        let x = random([2, 3, 4])
        for axes in axisChoices {
            for keep in [false, true] {
                checkGradients([x], "sum axes \(axes as Any) keep \(keep)") {
                    $0[0].sum(axes: axes, keepingDimensions: keep)
                }
            }
        }
        checkGradients([random([])], "sum of rank 0") { $0[0].sum() }
    }

    func testMean() {
        let x = random([2, 3, 4])
        for axes in axisChoices {
            for keep in [false, true] {
                checkGradients([x], "mean axes \(axes as Any) keep \(keep)") {
                    $0[0].mean(axes: axes, keepingDimensions: keep)
                }
            }
        }
    }

    func testMaxWithoutTies() {
        let x = random([2, 3, 4])
        XCTAssertEqual(Set(x.scalars).count, x.count, "ties in the input")
        for axes in axisChoices {
            for keep in [false, true] {
                checkGradients([x], "max axes \(axes as Any) keep \(keep)") {
                    $0[0].max(axes: axes, keepingDimensions: keep)
                }
            }
        }
    }

    func testReductionShapes() {
        let x = random([2, 3, 4])
        XCTAssertEqual(x.sum().shape, [])
        XCTAssertEqual(x.sum(keepingDimensions: true).shape, [1, 1, 1])
        XCTAssertEqual(x.sum(axes: [1]).shape, [2, 4])
        XCTAssertEqual(x.mean(axes: [0, -1], keepingDimensions: true).shape, [1, 3, 1])
        XCTAssertEqual(x.max(axes: [2]).shape, [2, 3])
        XCTAssertEqual(x.sum(axes: []).shape, [2, 3, 4])
        XCTAssertEqual(x.sum(axes: [1, 1]).shape, [2, 4], "a repeated axis reduces once")
        // Values against direct loops.
        var sums = [Double](repeating: 0, count: 8), maxima = [Double](repeating: -.infinity, count: 8)
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 {
            let v = x.scalars[i * 12 + j * 4 + k]
            sums[i * 4 + k] += v
            maxima[i * 4 + k] = Swift.max(maxima[i * 4 + k], v)
        } } }
        XCTAssertLessThan(relativeError(x.sum(axes: [1]).scalars, sums), 1e-15)
        XCTAssertEqual(x.max(axes: [1]).scalars, maxima)
        XCTAssertLessThan(relativeError(x.mean(axes: [1]).scalars, sums.map { $0 / 3 }), 1e-15)
    }

    func testSumToShape() {
        for (target, shape) in [([3], [2, 3]), ([3, 1], [3, 4]), ([1, 4], [3, 4]), ([], [2, 3]), ([2, 1, 4], [5, 2, 3, 4])] {
            checkGradients([random(shape)], "sum \(shape) to \(target)") { $0[0].sum(toShape: target) }
        }
    }

    // MARK: - Movement ops

    func testReshape() {
        let x = random([2, 3, 4])
        for shape in [[6, 4], [4, -1], [24], [-1], [2, 12], [1, 24, 1], [2, 3, 4]] {
            checkGradients([x], "reshape to \(shape)") { $0[0].reshaped(shape) }
        }
        checkGradients([random([])], "reshape rank 0 to [1, 1]") { $0[0].reshaped([1, 1]) }
        XCTAssertEqual(x.reshaped([4, -1]).shape, [4, 6])
    }

    func testPermuteAndTranspose() {
        let x = random([2, 3, 4])
        for order in [[2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0], [0, 1, 2]] {
            checkGradients([x], "permute \(order)") { $0[0].permuted(order) }
        }
        checkGradients([x], "transpose last two") { $0[0].transposed() }
        checkGradients([x], "transpose 0, 2") { $0[0].transposed(0, 2) }
        checkGradients([x], "transpose -3, 1") { $0[0].transposed(-3, 1) }
        // Forward: y[k, i, j] = x[i, j, k] for the order [2, 0, 1].
        let y = x.permuted([2, 0, 1])
        XCTAssertEqual(y.shape, [4, 2, 3])
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 {
            XCTAssertEqual(y.scalars[k * 6 + i * 3 + j], x.scalars[i * 12 + j * 4 + k])
        } } }
    }

    func testExpand() {
        for (shape, target) in [([3, 1], [3, 4]), ([4], [3, 4]), ([], [2, 2]), ([1, 3, 1], [2, 3, 4]),
                                ([2, 1, 4], [2, 3, 4]), ([3], [3])] {
            checkGradients([random(shape)], "expand \(shape) to \(target)") { $0[0].expanded(to: target) }
        }
    }

    func testFlip() {
        let x = random([2, 3, 4])
        for axes in [[0], [1], [2], [-1], [1, 2], [0, 2], [0, 1, 2], []] {
            checkGradients([x], "flip \(axes)") { $0[0].flipped(axes) }
        }
        // Forward: y[i, j, k] = x[i, 2 - j, 3 - k].
        let y = x.flipped([1, -1])
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 {
            XCTAssertEqual(y.scalars[i * 12 + j * 4 + k], x.scalars[i * 12 + (2 - j) * 4 + (3 - k)])
        } } }
    }

    private let rotationAxes: [(Int, Int)] = [(0, 1), (1, 2), (0, 2), (2, 0), (-1, -2), (-2, -1)]

    func testRot90Gradients() {
        let x = random([2, 3, 4])
        for axes in rotationAxes {
            for k in -5...5 {
                checkGradients([x], "rot90 k \(k) axes \(axes)") { $0[0].rotated90(k, axes: axes) }
            }
        }
    }

    /// Copies large enough to be split over threads (2^16 elements or more: a p4 map's rotation, a permutation, a
    /// flip of a slice-shaped view, a padding) give, at two threads, the elements the definition puts there.
    func testLargeMovementsSplitOverThreadsKeepEveryElement() {
        let savedThreads = Parallel.threads
        defer { Parallel.setThreads(savedThreads) }
        Parallel.setThreads(2)
        let shape = [6, 5, 4, 23, 29]
        let x = Tensor<Float>(shape: shape, scalars: (0..<shape.reduce(1, *)).map { Float($0) })
        XCTAssertGreaterThanOrEqual(x.count, 1 << 16)
        let rotated = x.rotated90(1, axes: (3, 4))
        XCTAssertEqual(rotated.shape, [6, 5, 4, 29, 23])
        let permuted = x.permuted([4, 0, 3, 1, 2])
        let flipped = x.flipped([0, 3])
        let padded = x.padded(before: [0, 1, 0, 2, 0], after: [1, 0, 0, 0, 3])
        var checked = 0
        for n in 0..<6 { for c in 0..<5 { for g in 0..<4 { for i in 0..<23 { for j in 0..<29 {
            let value = x.scalars[(((n * 5 + c) * 4 + g) * 23 + i) * 29 + j]
            // rot90: out[.., p, q] = in[.., q, n - 1 - p], so in[i, j] lands at p = 28 - j, q = i.
            XCTAssertEqual(rotated.scalars[(((n * 5 + c) * 4 + g) * 29 + (28 - j)) * 23 + i], value)
            XCTAssertEqual(permuted.scalars[(((j * 6 + n) * 23 + i) * 5 + c) * 4 + g], value)
            XCTAssertEqual(flipped.scalars[((((5 - n) * 5 + c) * 4 + g) * 23 + (22 - i)) * 29 + j], value)
            XCTAssertEqual(padded.scalars[((((n * 6) + c + 1) * 4 + g) * 25 + i + 2) * 32 + j], value)
            checked += 1
        } } } } }
        XCTAssertEqual(checked, x.count)
    }

    /// rot90 against its definition: each step maps the plane (p, q) of sizes (m, n) to (n, m) with
    /// out[i, j] = in[j, n - 1 - i] (as `torch.rot90` with k = 1), the other axes untouched.
    func testRot90ForwardMatchesDefinition() {
        let x = random([2, 3, 4])
        for axes in rotationAxes {
            for k in -5...5 {
                var expected = x
                for _ in 0..<(((k % 4) + 4) % 4) { expected = rotateOnce(expected, axes) }
                let actual = x.rotated90(k, axes: axes)
                XCTAssertEqual(actual.shape, expected.shape, "rot90 k \(k) axes \(axes)")
                XCTAssertEqual(actual.scalars, expected.scalars, "rot90 k \(k) axes \(axes)")
            }
        }
        // The 2-D example of torch.rot90's documentation: [[0, 1], [2, 3]] -> [[1, 3], [0, 2]].
        let m = Tensor<Double>(shape: [2, 2], scalars: [0, 1, 2, 3])
        XCTAssertEqual(m.rotated90().scalars, [1, 3, 0, 2])
        XCTAssertEqual(m.rotated90(-1).scalars, [2, 0, 3, 1])
        XCTAssertEqual(m.rotated90(2).scalars, [3, 2, 1, 0])
    }

    /// One counter-clockwise quarter turn by direct index arithmetic.
    private func rotateOnce(_ x: Tensor<Double>, _ axes: (Int, Int)) -> Tensor<Double> {
        let p = (axes.0 + x.rank) % x.rank, q = (axes.1 + x.rank) % x.rank
        var outShape = x.shape
        outShape.swapAt(p, q)
        let inStrides = ShapeMath.strides(x.shape), outStrides = ShapeMath.strides(outShape)
        var out = [Double](repeating: 0, count: x.count)
        for flat in 0..<x.count {
            // The output index of `flat`, then the input index it reads.
            var index = outShape.indices.map { (flat / outStrides[$0]) % outShape[$0] }
            let (i, j) = (index[p], index[q])
            index[p] = j
            index[q] = x.shape[q] - 1 - i
            out[flat] = x.scalars[zip(index, inStrides).reduce(0) { $0 + $1.0 * $1.1 }]
        }
        return Tensor(shape: outShape, scalars: out)
    }

    func testSlice() {
        let x = random([3, 4, 5])
        checkGradients([x], "slice box") { $0[0].sliced(lower: [1, 0, 2], upper: [3, 3, 5]) }
        checkGradients([x], "slice one element") { $0[0].sliced(lower: [2, 3, 4], upper: [3, 4, 5]) }
        checkGradients([x], "slice axis 1") { $0[0].sliced(axis: 1, 1..<3) }
        checkGradients([x], "slice axis -1") { $0[0].sliced(axis: -1, 0..<1) }
        checkGradients([x], "slice everything") { $0[0].sliced(axis: 0, 0..<3) }
        // Forward: y[i, j, k] = x[1 + i, j, 2 + k].
        let y = x.sliced(lower: [1, 0, 2], upper: [3, 3, 5])
        XCTAssertEqual(y.shape, [2, 3, 3])
        for i in 0..<2 { for j in 0..<3 { for k in 0..<3 {
            XCTAssertEqual(y.scalars[i * 9 + j * 3 + k], x.scalars[(1 + i) * 20 + j * 5 + (2 + k)])
        } } }
    }

    func testPad() {
        let x = random([2, 3, 2])
        checkGradients([x], "pad") { $0[0].padded(before: [1, 0, 2], after: [0, 2, 1]) }
        checkGradients([x], "pad with a value") { $0[0].padded(before: [0, 1, 0], after: [1, 1, 3], value: -2) }
        checkGradients([x], "pad nothing") { $0[0].padded(before: [0, 0, 0], after: [0, 0, 0]) }
        // Forward of a 1-D pad with a value.
        let v = Tensor<Double>(shape: [2], scalars: [1, 2]).padded(before: [2], after: [1], value: 9)
        XCTAssertEqual(v.scalars, [9, 9, 1, 2, 9])
    }

    func testConcatenate() {
        // Three inputs of different sizes along each axis.
        checkGradients([random([1, 3, 2]), random([2, 3, 2]), random([4, 3, 2])], "concat axis 0") {
            Tensor.concatenated($0, axis: 0)
        }
        checkGradients([random([2, 1, 2]), random([2, 3, 2]), random([2, 2, 2])], "concat axis 1") {
            Tensor.concatenated($0, axis: 1)
        }
        checkGradients([random([2, 3, 3]), random([2, 3, 1]), random([2, 3, 2])], "concat axis -1") {
            Tensor.concatenated($0, axis: -1)
        }
        checkGradients([random([4])], "concat of one") { Tensor.concatenated($0, axis: 0) }
        // Forward.
        let a = Tensor<Double>(shape: [2, 1], scalars: [1, 2]), b = Tensor<Double>(shape: [2, 2], scalars: [3, 4, 5, 6])
        XCTAssertEqual(Tensor.concatenated([a, b], axis: 1).scalars, [1, 3, 4, 2, 5, 6])
        XCTAssertEqual(Tensor.concatenated([b, a.reshaped([1, 2])], axis: 0).scalars, [3, 4, 5, 6, 1, 2])
    }

    func testConcatenateWithAConstant() {
        let constant = random([1, 3])
        checkGradients([random([2, 3]), random([3, 3])], "concat with a constant between") {
            Tensor.concatenated([$0[0], constant, $0[1]], axis: 0)
        }
    }

    func testStack() {
        for axis in [0, 1, 2, -1, -3] {
            checkGradients([random([2, 3]), random([2, 3]), random([2, 3])], "stack axis \(axis)") {
                Tensor.stacked($0, axis: axis)
            }
        }
        let a = Tensor<Double>(shape: [2], scalars: [1, 2]), b = Tensor<Double>(shape: [2], scalars: [3, 4])
        XCTAssertEqual(Tensor.stacked([a, b]).scalars, [1, 2, 3, 4])
        XCTAssertEqual(Tensor.stacked([a, b], axis: 1).scalars, [1, 3, 2, 4])
        XCTAssertEqual(Tensor.stacked([a, b], axis: -1).shape, [2, 2])
    }

    func testUnsqueezeAndFlatten() {
        let x = random([2, 3, 4])
        for axis in [0, 1, 3, -1, -4] {
            checkGradients([x], "unsqueeze \(axis)") { $0[0].unsqueezed(axis) }
        }
        XCTAssertEqual(x.unsqueezed(-1).shape, [2, 3, 4, 1])
        XCTAssertEqual(x.unsqueezed(-4).shape, [1, 2, 3, 4])
        for start in [0, 1, 2, -1, -2] {
            checkGradients([x], "flatten from \(start)") { $0[0].flattened(from: start) }
        }
        XCTAssertEqual(x.flattened().shape, [2, 12])
        XCTAssertEqual(x.flattened(from: 0).shape, [24])
        XCTAssertEqual(x.flattened(from: -1).shape, [2, 3, 4])
    }

    // MARK: - Einops

    func testRearrange() throws {
        let x = random([2, 6, 3])
        let cases: [(String, [String: Int])] = [
            ("a (b c) d -> c (a d) b", ["c": 2]),
            ("a b c -> c b a", [:]),
            ("a b c -> a (b c)", [:]),
            ("a ... -> (...) a", [:]),
            ("a (b c) d -> (a b) c 1 d", ["b": 3]),
        ]
        for (pattern, axes) in cases {
            checkGradients([x], "rearrange \(pattern)") { try! $0[0].rearranged(pattern, axes) }
        }
    }

    func testRepeat() throws {
        let x = random([2, 3])
        let cases: [(String, [String: Int])] = [
            ("h w -> (r h) w c", ["r": 2, "c": 3]),
            ("h w -> h (w 2)", [:]),
            ("h w -> (h r) w", ["r": 3]),
            ("h w -> w k h", ["k": 2]),
        ]
        for (pattern, axes) in cases {
            checkGradients([x], "repeat \(pattern)") { try! $0[0].repeated(pattern, axes) }
        }
    }

    func testReduce() throws {
        let x = random([2, 4, 6])
        XCTAssertEqual(Set(x.scalars).count, x.count, "ties in the input")
        for op in EinopsReduction.allCases {
            for pattern in ["a b c -> a", "a (b 2) (c 3) -> c a b", "a b c -> ", "a b c -> c b a"] {
                checkGradients([x], "reduce \(pattern) \(op)") { try! $0[0].reduced(pattern, op) }
            }
        }
    }

    // MARK: - Compositions

    /// A small network-like expression mixing ops, shapes and reuse of intermediate values.
    func testComposite() {
        let x = random([3, 4]), w = random([4]), b = random([3, 1])
        checkGradients([x, w, b], "composite") { t in
            let h = (t[0] * t[1] + t[2]).relu() + (t[0] - t[2]).exp() * 0.1
            let s = Tensor.concatenated([h, h.flipped([0]).rotated90(1).transposed()], axis: 1)
            return (s.pow(2) + 1).log().mean(axes: [1], keepingDimensions: true) / (h.max() + 3)
        }
    }
}
