import XCTest
@testable import Autograd

/// The ops of a PyTorch user's first hour: finite-difference gradient checks in Double (`checkGradients`), and
/// forward values against direct formulas or index arithmetic written here, with PyTorch's conventions at kinks,
/// ties and bounds. (The PyTorch reference cases of these ops run in NNTests' LibraryCaseTests.)
final class LibraryOpTests: XCTestCase {
    private var generator = SeededRandom(seed: 11)

    private func random(_ shape: [Int]) -> Tensor<Double> { randomTensor(shape, &generator) }

    /// Random signs, magnitudes in [0.1, 2): away from the kinks at 0.
    private func awayFromZero(_ shape: [Int]) -> Tensor<Double> {
        randomTensor(shape, magnitude: 0.1, 2, &generator)
    }

    private func assertClose(_ actual: [Double], _ expected: [Double], _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        assertClose(actual, expected, 1e-12, what, file: file, line: line)
    }

    private func assertClose(_ actual: [Double], _ expected: [Double], _ tolerance: Double, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "\(what): count", file: file, line: line)
        guard actual.count == expected.count else { return }
        let error = relativeError(actual, expected)
        XCTAssertLessThanOrEqual(error, tolerance, "\(what): relative error \(error)", file: file, line: line)
    }

    // MARK: - Activations

    func testActivationValues() {
        let x = random([3, 5])
        let v = x.scalars
        assertClose(x.tanh().scalars, v.map { Foundation.tanh($0) }, "tanh")
        assertClose(x.sigmoid().scalars, v.map { 1 / (1 + Foundation.exp(-$0)) }, "sigmoid")
        assertClose(x.gelu().scalars, v.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }, "gelu")
        assertClose(x.gelu(approximate: "tanh").scalars, v.map {
            0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0)))
        }, "gelu tanh")
        assertClose(x.leakyRelu(negativeSlope: 0.2).scalars, v.map { $0 > 0 ? $0 : 0.2 * $0 }, "leaky_relu")
        assertClose(x.abs().scalars, v.map { Swift.abs($0) }, "abs")
        assertClose(x.softplus().scalars, v.map { Foundation.log(1 + Foundation.exp($0)) }, "softplus")
        assertClose(x.clamped(min: -0.3, max: 0.4).scalars, v.map { Swift.min(Swift.max($0, -0.3), 0.4) }, "clamp")
        // Far from 0 the stable forms neither overflow nor lose the value.
        let far = Tensor<Float>(shape: [4], scalars: [-100, -30, 30, 100])
        XCTAssertEqual(far.sigmoid().scalars, [-100.0, -30, 30, 100].map { Float(1 / (1 + Foundation.exp(-$0))) })
        XCTAssertEqual(far.softplus().scalars, [-100.0, -30, 30, 100].map {
            Float(Swift.max($0, 0) + Foundation.log1p(Foundation.exp(-Swift.abs($0)))) })
        XCTAssertEqual(far.tanh().scalars, [-1, -1, 1, 1])
    }

    func testActivationGradients() {
        let x = random([3, 4]), away = awayFromZero([3, 4])
        checkGradients([x], "tanh") { $0[0].tanh() }
        checkGradients([x], "sigmoid") { $0[0].sigmoid() }
        checkGradients([x], "softplus") { $0[0].softplus() }
        checkGradients([x * 3], "gelu") { $0[0].gelu() }
        checkGradients([x * 3], "gelu tanh") { $0[0].gelu(approximate: "tanh") }
        checkGradients([away], "leaky_relu") { $0[0].leakyRelu(negativeSlope: 0.2) }
        checkGradients([away], "abs") { $0[0].abs() }
        // Bounds away from every element.
        let inside = withoutGradients { away.scalars.allSatisfy { Swift.abs(Swift.abs($0) - 0.5) > 1e-3 } }
        XCTAssertTrue(inside)
        checkGradients([away], "clamp") { $0[0].clamped(min: -0.5, max: 0.5) }
        checkGradients([away], "clamp min") { $0[0].clamped(min: -0.5) }
        checkGradients([away], "clamp max") { $0[0].clamped(max: 0.5) }
    }

    /// PyTorch's choices at the kinks: abs and relu-like ops pass 0 or the slope at 0; clamp passes nothing at its
    /// bounds, nor anywhere when min > max (where every value is max).
    func testGradientsAtKinksAndBounds() {
        let x = Tensor<Double>(shape: [5], scalars: [-0.5, 0, 0.7, -1, 0.2]).requiringGradient()
        x.abs().backward()
        XCTAssertEqual(x.grad?.scalars, [-1, 0, 1, -1, 1])
        let y = x.detached().requiringGradient()
        y.leakyRelu(negativeSlope: 0.2).backward()
        XCTAssertEqual(y.grad?.scalars, [0.2, 0.2, 1, 0.2, 1])
        let z = x.detached().requiringGradient()
        z.clamped(min: -0.5, max: 0.7).backward()
        XCTAssertEqual(z.grad?.scalars, [0, 1, 0, 0, 1])
        let w = x.detached().requiringGradient()
        let inverted = w.clamped(min: 0.7, max: -0.5)
        XCTAssertEqual(inverted.scalars, [-0.5, -0.5, -0.5, -0.5, -0.5])
        inverted.backward()
        XCTAssertEqual(w.grad?.scalars, [0, 0, 0, 0, 0])
        XCTAssertTrue(Tensor<Float>(shape: [1], scalars: [.nan]).clamped(min: 0, max: 1).scalars[0].isNaN)
    }

    // MARK: - Softmax and logsumexp

    func testSoftmaxAndLogSumExp() {
        let x = random([2, 3, 4]) * 5
        for axis in [0, 1, 2, -1, -2] {
            let a = (axis + 3) % 3
            let y = x.softmax(axis: axis)
            // Every line along the axis sums to 1 and is proportional to exp(x).
            assertClose(y.sum(axes: [axis]).scalars, [Double](repeating: 1, count: x.count / x.shape[a]), 1e-14,
                        "softmax(\(axis)) sums")
            let direct = x.exp() / x.exp().sum(axes: [axis], keepingDimensions: true)
            assertClose(y.scalars, direct.scalars, 1e-13, "softmax(\(axis))")
            assertClose(x.logSumExp(axis: axis).scalars, x.exp().sum(axes: [axis]).log().scalars, 1e-13,
                        "logsumexp(\(axis))")
            checkGradients([x], "softmax(\(axis))") { $0[0].softmax(axis: axis) }
            checkGradients([x], "logsumexp(\(axis))") { $0[0].logSumExp(axis: axis) }
        }
        XCTAssertEqual(x.logSumExp(axes: [0, 2], keepingDimensions: true).shape, [1, 3, 1])
        assertClose(x.logSumExp(axes: [2, 0]).scalars, x.exp().sum(axes: [0, 2]).log().scalars, 1e-13,
                    "logsumexp over two axes")
        checkGradients([x], "logsumexp over [0, -1]") { $0[0].logSumExp(axes: [0, -1], keepingDimensions: true) }
        // Large values do not overflow; a line of -inf gives -inf.
        let big = Tensor<Float>(shape: [2, 2], scalars: [1000, 1000, -.infinity, -.infinity])
        XCTAssertEqual(big.logSumExp(axis: 1).scalars, [1000 + Float(Foundation.log(2.0)), -.infinity])
        XCTAssertEqual(big.softmax(axis: 1).scalars[0 ..< 2], [0.5, 0.5])
        XCTAssertEqual(Tensor<Float>(shape: [2], scalars: [1000, 1000]).logSoftmax().scalars,
                       [-Float(Foundation.log(2.0)), -Float(Foundation.log(2.0))])
        // Large logits keep float precision (1e-5 relative is PyTorch's tolerance; exp(log_softmax) misses it).
        assertClose(Tensor<Float>(shape: [3], scalars: [1000, 999, 0]).softmax().scalars.map(Double.init),
                    [1 / (1 + Foundation.exp(-1.0)), 1 / (1 + Foundation.exp(1.0)), 0], 1e-6, "softmax of large logits")
    }

    // MARK: - Pooling

    /// Direct average pooling with zero padding counted: the sum over the window / (kh kw).
    private func directAvgPool(_ x: Tensor<Double>, _ k: (Int, Int), _ s: (Int, Int), _ p: (Int, Int)) -> [Double] {
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let oh = (h + 2 * p.0 - k.0) / s.0 + 1, ow = (w + 2 * p.1 - k.1) / s.1 + 1
        var out: [Double] = []
        for plane in 0..<planes {
            for i in 0..<oh {
                for j in 0..<ow {
                    var total = 0.0
                    for a in 0..<k.0 {
                        for b in 0..<k.1 {
                            let (y, xx) = (i * s.0 - p.0 + a, j * s.1 - p.1 + b)
                            if y >= 0 && y < h && xx >= 0 && xx < w { total += x.scalars[(plane * h + y) * w + xx] }
                        }
                    }
                    out.append(total / Double(k.0 * k.1))
                }
            }
        }
        return out
    }

    func testAvgPool2d() {
        let geometries: [((Int, Int), (Int, Int), (Int, Int), [Int])] = [
            ((2, 2), (2, 2), (0, 0), [2, 3, 6, 6]), ((3, 3), (2, 2), (1, 1), [1, 2, 7, 5]),
            ((3, 2), (1, 2), (1, 1), [2, 1, 5, 6]), ((4, 4), (3, 3), (2, 2), [1, 1, 7, 8]),
        ]
        for (k, s, p, shape) in geometries {
            let x = random(shape)
            let y = x.avgPool2d(kernel: k, stride: s, padding: p)
            XCTAssertEqual(y.shape, [shape[0], shape[1], (shape[2] + 2 * p.0 - k.0) / s.0 + 1,
                                     (shape[3] + 2 * p.1 - k.1) / s.1 + 1])
            assertClose(y.scalars, directAvgPool(x, k, s, p), 1e-14, "avgpool2d \(k) \(s) \(p)")
            checkGradients([x], "avgpool2d \(k) \(s) \(p)") { $0[0].avgPool2d(kernel: k, stride: s, padding: p) }
        }
        // Stride defaults to the kernel; (C, H, W) input.
        let x = random([3, 4, 6])
        XCTAssertEqual(x.avgPool2d(kernel: (2, 3)).shape, [3, 2, 2])
        assertClose(x.avgPool2d(kernel: (2, 3)).scalars,
                    directAvgPool(x.reshaped([1, 3, 4, 6]), (2, 3), (2, 3), (0, 0)), 1e-14, "avgpool2d (C, H, W)")
    }

    func testAdaptiveAvgPool2d() {
        for (shape, size) in [([1, 2, 7, 7], (1, 1)), ([2, 1, 9, 6], (3, 3)), ([1, 2, 10, 7], (4, 3)),
                              ([1, 1, 3, 3], (5, 5)), ([3, 7, 11], (2, 5))] {
            let x = random(shape)
            let y = x.adaptiveAvgPool2d(outputSize: size)
            let (h, w) = (shape[shape.count - 2], shape[shape.count - 1])
            XCTAssertEqual(y.shape, Array(shape.dropLast(2)) + [size.0, size.1])
            // PyTorch's bins: start floor(i * in / out), end ceil((i + 1) * in / out).
            var expected: [Double] = []
            for plane in 0 ..< x.count / (h * w) {
                for i in 0..<size.0 {
                    let (r0, r1) = (i * h / size.0, ((i + 1) * h + size.0 - 1) / size.0)
                    for j in 0..<size.1 {
                        let (c0, c1) = (j * w / size.1, ((j + 1) * w + size.1 - 1) / size.1)
                        var total = 0.0
                        for r in r0..<r1 { for c in c0..<c1 { total += x.scalars[(plane * h + r) * w + c] } }
                        expected.append(total / Double((r1 - r0) * (c1 - c0)))
                    }
                }
            }
            assertClose(y.scalars, expected, 1e-14, "adaptive_avg_pool2d \(shape) -> \(size)")
            checkGradients([x], "adaptive_avg_pool2d \(shape) -> \(size)") { $0[0].adaptiveAvgPool2d(outputSize: size) }
        }
    }

    // MARK: - Normalisation

    func testLayerNorm() {
        let x = random([2, 3, 4]) * 3 + 1, weight = random([3, 4]), bias = random([3, 4])
        let y = x.layerNorm(normalizedShape: [3, 4], epsilon: 1e-5)
        for n in 0..<2 {
            let line = Array(x.scalars[n * 12 ..< (n + 1) * 12])
            let mean = line.reduce(0, +) / 12
            let variance = line.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 12
            assertClose(Array(y.scalars[n * 12 ..< (n + 1) * 12]),
                        line.map { ($0 - mean) / (variance + 1e-5).squareRoot() }, 1e-13, "layer_norm row \(n)")
        }
        checkGradients([x, weight, bias], "layer_norm [3, 4]") {
            $0[0].layerNorm(normalizedShape: [3, 4], weight: $0[1], bias: $0[2])
        }
        checkGradients([x], "layer_norm [4]") { $0[0].layerNorm(normalizedShape: [4], epsilon: 1e-3) }
    }

    func testBatchNorm() {
        let x = random([4, 3, 2, 2]) * 2 + 1, weight = random([3]), bias = random([3])
        let y = x.batchNorm(training: true)
        // Each channel of the result has mean 0 and biased variance 1 / (1 + eps / var).
        for c in 0..<3 {
            let channel = (0..<4).flatMap { n in (0..<4).map { y.scalars[(n * 3 + c) * 4 + $0] } }
            XCTAssertEqual(channel.reduce(0, +) / 16, 0, accuracy: 1e-14)
        }
        checkGradients([x, weight, bias], "batch_norm training") {
            $0[0].batchNorm(weight: $0[1], bias: $0[2], training: true)
        }
        checkGradients([random([5, 2, 3]), random([2]), random([2])], "batch_norm training (N, C, L)") {
            $0[0].batchNorm(weight: $0[1], bias: $0[2], training: true, epsilon: 1e-3)
        }
        // Training updates the running statistics with momentum and the unbiased variance; eval uses them.
        let running = RunningStatistics<Double>(channels: 3)
        _ = x.batchNorm(running: running, training: true, momentum: 0.25)
        let mean0 = (0..<4).flatMap { n in (0..<4).map { x.scalars[(n * 3) * 4 + $0] } }
        let mu = mean0.reduce(0, +) / 16
        let unbiased = mean0.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / 15
        XCTAssertEqual(running.mean.scalars[0], 0.25 * mu, accuracy: 1e-14)
        XCTAssertEqual(running.variance.scalars[0], 0.75 + 0.25 * unbiased, accuracy: 1e-14)
        let eval = x.batchNorm(running: running, weight: weight, bias: bias, training: false)
        XCTAssertEqual(eval.scalars[0], (x.scalars[0] - running.mean.scalars[0])
                       / (running.variance.scalars[0] + 1e-5).squareRoot() * weight.scalars[0] + bias.scalars[0],
                       accuracy: 1e-13)
        checkGradients([x, weight, bias], "batch_norm eval") {
            $0[0].batchNorm(running: running, weight: $0[1], bias: $0[2], training: false)
        }
    }

    // MARK: - Losses

    func testLosses() {
        let x = random([4, 3]), t = random([4, 3])
        XCTAssertEqual(x.mseLoss(target: t).item, zip(x.scalars, t.scalars).map { ($0 - $1) * ($0 - $1) }
            .reduce(0, +) / 12, accuracy: 1e-14)
        XCTAssertEqual(x.mseLoss(target: t, reduction: .none).shape, [4, 3])
        for reduction in LossReduction.allCases {
            checkGradients([x, t], "mse_loss \(reduction)") { $0[0].mseLoss(target: $0[1], reduction: reduction) }
        }
        // BCE with logits: the textbook -(t log s + (1 - t) log(1 - s)), and no overflow for large logits.
        let p = Tensor<Double>(shape: [4, 3], scalars: (0..<12).map { Double($0) / 11 })
        let s = x.scalars.map { 1 / (1 + Foundation.exp(-$0)) }
        let textbook = zip(s, p.scalars).map { -($1 * Foundation.log($0) + (1 - $1) * Foundation.log(1 - $0)) }
        XCTAssertEqual(x.binaryCrossEntropyWithLogits(target: p).item, textbook.reduce(0, +) / 12, accuracy: 1e-14)
        let large = Tensor<Float>(shape: [2], scalars: [100, -100])
        XCTAssertEqual(large.binaryCrossEntropyWithLogits(target: Tensor(shape: [2], scalars: [0, 1])).item, 100)
        let weight = random([4, 3]).abs(), positive = random([3]).abs()
        checkGradients([x, p], "bce_with_logits") { $0[0].binaryCrossEntropyWithLogits(target: $0[1]) }
        checkGradients([x, p], "bce_with_logits weighted") {
            $0[0].binaryCrossEntropyWithLogits(target: $0[1], weight: weight, positiveWeight: positive,
                                               reduction: .sum)
        }
        // NLL: mean of -x[n, t_n]; ignored targets drop out; class weights give a weighted mean.
        let logp = random([4, 3]).logSoftmax(axis: 1)
        let targets = [2, 0, 1, 2]
        let picked: [Double] = (0..<4).map { logp.scalars[$0 * 3 + targets[$0]] }
        XCTAssertEqual(logp.nllLoss(targets: targets).item, -picked.reduce(0, +) / 4, accuracy: 1e-14)
        let classWeight = Tensor<Double>(shape: [3], scalars: [0.5, 2, 1])
        let kept = [(0, 2), (2, 1), (3, 2)]
        let weighted: [Double] = kept.map { logp.scalars[$0.0 * 3 + $0.1] * classWeight.scalars[$0.1] }
        let totalWeight: Double = kept.map { classWeight.scalars[$0.1] }.reduce(0, +)
        XCTAssertEqual(logp.nllLoss(targets: [2, -100, 1, 2], weight: classWeight).item,
                       -weighted.reduce(0, +) / totalWeight, accuracy: 1e-14)
        checkGradients([logp], "nll_loss") { $0[0].nllLoss(targets: targets) }
        checkGradients([random([2, 4, 3])], "nll_loss (N, C, d)") {
            $0[0].nllLoss(targets: [0, 3, 1, 2, -100, 3], weight: Tensor(shape: [4], scalars: [1, 2, 3, 4]))
        }
    }

    // MARK: - Reductions

    func testMinAndProductAndArgmax() {
        let x = random([2, 3, 4])
        var minima: [Double] = [], products: [Double] = []
        for a in 0..<2 {
            for c in 0..<4 { minima.append((0..<3).map { x.scalars[(a * 3 + $0) * 4 + c] }.min()!) }
        }
        for b in 0..<3 {
            var p = 1.0
            for a in 0..<2 { for c in 0..<4 { p *= x.scalars[(a * 3 + b) * 4 + c] } }
            products.append(p)
        }
        XCTAssertEqual(x.min(axes: [1]).scalars, minima)
        assertClose(x.product(axes: [0, 2]).scalars, products, 1e-14, "prod")
        checkGradients([x], "min") { $0[0].min(axes: [1, 2], keepingDimensions: true) }
        checkGradients([x], "prod") { $0[0].product(axes: [0, 2]) }
        checkGradients([x], "prod all") { $0[0].product() }
        // Zeros: the gradient is the product of the others, also where the element itself is 0.
        let z = Tensor<Double>(shape: [2, 3], scalars: [2, 0, 3, 0, 0, 5]).requiringGradient()
        z.product(axes: [1]).backward()
        XCTAssertEqual(z.grad?.scalars, [0, 6, 0, 0, 0, 0])
        // Ties share the gradient evenly, as torch.amin / amax.
        let ties = Tensor<Double>(shape: [4], scalars: [1, 3, 1, 3]).requiringGradient()
        ties.min().backward()
        XCTAssertEqual(ties.grad?.scalars, [0.5, 0, 0.5, 0])
        // argmax / argmin: the first extremum; negative axes; keepdim; a NaN wins.
        let a = Tensor<Float>(shape: [2, 3], scalars: [1, 5, 5, 7, 2, 7])
        XCTAssertEqual(a.argmax(axis: 1), IndexTensor(shape: [2], indices: [1, 0]))
        XCTAssertEqual(a.argmax(axis: -2, keepingDimensions: true), IndexTensor(shape: [1, 3], indices: [1, 0, 1]))
        XCTAssertEqual(a.argmin(axis: 0), IndexTensor(shape: [3], indices: [0, 1, 0]))
        XCTAssertEqual(a.argmax(), IndexTensor(shape: [], indices: [3]))
        XCTAssertEqual(Tensor<Float>(shape: [3], scalars: [1, .nan, 9]).argmax().indices, [1])
    }

    func testEinopsReduceProdAndMin() throws {
        let x = random([2, 6, 3])
        let y = try x.reduced("a (b k) c -> (c a) b", .prod, ["k": 3])
        XCTAssertEqual(y.shape, [6, 2])
        // Element (c a, b) is the product over k of x[a, b * 3 + k, c].
        var expected: [Double] = []
        for c in 0..<3 { for a in 0..<2 { for b in 0..<2 {
            expected.append((0..<3).map { x.scalars[(a * 6 + b * 3 + $0) * 3 + c] }.reduce(1, *))
        } } }
        assertClose(y.scalars, expected, 1e-14, "reduce prod")
        let m = try x.reduced("a b c -> c", .min)
        XCTAssertEqual(m.scalars, (0..<3).map { c in (0..<12).map { x.scalars[$0 * 3 + c] }.min()! })
        checkGradients([x], "reduce prod with a group") { try! $0[0].reduced("a (b k) c -> (c a) b", .prod, ["k": 3]) }
    }

    /// reduce accepts and rejects what einops 0.8 accepts and rejects (checked against einops for an input of shape
    /// (2, 3, 4)).
    func testEinopsReduceAcceptsAndRejectsAsEinops() {
        let x = Tensor<Float>(zeros: [2, 3, 4])
        let rejected: [(String, [String: Int])] = [
            ("a b c -> a d", [:]), ("a b c -> a 2", [:]), ("a b c -> a", ["d": 2]), ("a b -> a", [:]),
            ("a b c -> a a", [:]), ("(a b) c d -> a", [:]), ("a b c -> (a ...)", [:]), ("... a -> ... a b", [:]),
            ("a b c -> c", ["a": 3]),
        ]
        for (pattern, axes) in rejected {
            XCTAssertThrowsError(try x.reduced(pattern, .sum, axes), "\(pattern) \(axes)")
        }
        for (pattern, axes, shape) in [("a b c -> a 1", [String: Int](), [2, 1]), ("a b c -> () a", [:], [1, 2]),
                                       ("a (b 3) c -> b", [:], [1])] {
            XCTAssertEqual(try x.reduced(pattern, .prod, axes).shape, shape, pattern)
        }
    }

    // MARK: - Indexing

    func testGatherAndIndexSelect() {
        let x = random([3, 4, 2])
        let index = IndexTensor(shape: [2, 3, 2], indices: [0, 3, 2, 1, 1, 1, 3, 0, 0, 2, 1, 3])
        let g = x.gather(axis: 1, index: index)
        XCTAssertEqual(g.shape, [2, 3, 2])
        var expected: [Double] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<2 {
            expected.append(x.scalars[(i * 4 + index.indices[(i * 3 + j) * 2 + k]) * 2 + k])
        } } }
        XCTAssertEqual(g.scalars, expected)
        XCTAssertEqual(x.gather(axis: -2, index: index).scalars, expected)
        checkGradients([x], "gather") { $0[0].gather(axis: 1, index: index) }
        checkGradients([x], "gather axis 0") {
            $0[0].gather(axis: 0, index: IndexTensor(shape: [2, 1, 2], indices: [2, 0, 2, 2]))
        }
        let s = x.indexSelect(axis: 1, indices: [3, 0, 3])
        XCTAssertEqual(s.shape, [3, 3, 2])
        var selected: [Double] = []
        for i in 0..<3 { for j in [3, 0, 3] { for k in 0..<2 { selected.append(x.scalars[(i * 4 + j) * 2 + k]) } } }
        XCTAssertEqual(s.scalars, selected)
        XCTAssertEqual(x.indexSelect(axis: -1, indices: [1]).scalars, stride(from: 1, to: 24, by: 2).map { x.scalars[$0] })
        checkGradients([x], "index_select with repeats") { $0[0].indexSelect(axis: 1, indices: [3, 0, 3]) }
    }

    func testWhereAndMasks() {
        let a = random([2, 3]), b = random([3])
        let mask = a .> b
        XCTAssertEqual(mask.shape, [2, 3])
        XCTAssertEqual(mask.values, (0..<6).map { a.scalars[$0] > b.scalars[$0 % 3] })
        let w = Tensor.where(mask, a, b)
        XCTAssertEqual(w.scalars, (0..<6).map { mask.values[$0] ? a.scalars[$0] : b.scalars[$0 % 3] })
        checkGradients([a, b], "where") { Tensor.where(mask, $0[0], $0[1]) }
        checkGradients([a], "masked_fill") { $0[0].maskedFill(.!mask, -1) }
        XCTAssertEqual(a.maskedFill(mask, 0).scalars, (0..<6).map { mask.values[$0] ? 0 : a.scalars[$0] })
        // The branch not taken does not leak an infinity or NaN into the value, and gets a zero gradient.
        let x = Tensor<Double>(shape: [3], scalars: [0, 1, 4])
        XCTAssertEqual(Tensor.where(x .> 0, x.log(), 0).scalars, [0, 0, Foundation.log(4)])
        let y = x.requiringGradient(), inf = Tensor<Double>(shape: [3], scalars: [1, .infinity, .nan])
        let infLeaf = inf.requiringGradient()
        let picked = Tensor.where(y .> 0, y * 2, infLeaf)
        XCTAssertEqual(picked.scalars[1...], [2, 8])
        picked.sum().backward()
        XCTAssertEqual(y.grad?.scalars, [0, 2, 2])
        XCTAssertEqual(infLeaf.grad?.scalars, [1, 0, 0])
        XCTAssertEqual(((a .>= 0) .& (a .< 1)).values, a.scalars.map { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(((a .== 0) .| (a .!= 0)).values, [Bool](repeating: true, count: 6))
    }

    // MARK: - Gradient clipping

    func testClipGradientNorm() {
        let a = Tensor<Double>(shape: [2], scalars: [1, 2]).requiringGradient()
        let b = Tensor<Double>(shape: [1], scalars: [3]).requiringGradient()
        let c = Tensor<Double>(shape: [1], scalars: [3]).requiringGradient()  // no gradient: skipped
        ((a * Tensor(shape: [2], scalars: [3, 0])).sum() + (b * 4).sum()).backward()
        // Gradients (3, 0) and (4): total 2-norm 5.
        XCTAssertEqual(clipGradientNorm([a, b, c], maxNorm: 10), 5, accuracy: 1e-12)
        XCTAssertEqual(a.grad?.scalars, [3, 0])
        XCTAssertEqual(clipGradientNorm([a, b, c], maxNorm: 1), 5, accuracy: 1e-12)
        XCTAssertEqual(a.grad!.scalars[0], 3 / (5 + 1e-6), accuracy: 1e-12)
        XCTAssertEqual(b.grad!.scalars[0], 4 / (5 + 1e-6), accuracy: 1e-12)
        XCTAssertNil(c.grad)
        XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 100, normType: .infinity), 4 / (5 + 1e-6), accuracy: 1e-12)
        XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 100, normType: 1), 7 / (5 + 1e-6), accuracy: 1e-12)
    }
}
