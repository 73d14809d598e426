import XCTest
@testable import Autograd

final class LossTests: XCTestCase {
    // MARK: Reference cases

    func testLogSoftmaxReference() throws {
        let c = try loadReferenceCase("log_softmax")
        let axis = try c.intArgument("dim", count: 1)[0]
        let x = try c.tensor("input").tensor.requiringGradient()
        let y = x.logSoftmax(axis: axis)
        assertMatches(y, try c.tensor("output"), tolerance: 1e-5, "log_softmax output")
        y.backward(seed: try c.tensor("grad.output").tensor)
        assertMatches(x.grad, try c.tensor("grad.input"), tolerance: 1e-4, "log_softmax grad.input")
    }

    func testCrossEntropyReference() throws {
        let c = try loadReferenceCase("cross_entropy")
        let x = try c.tensor("input").tensor.requiringGradient()
        let targets = try c.tensor("target").floats.map { Int($0) }
        let loss = x.crossEntropy(targets: targets)
        XCTAssertEqual(loss.shape, [])
        assertMatches(loss, try c.tensor("output"), tolerance: 1e-5, "cross_entropy output")
        let seed = try c.tensor("grad.output").floats[0]
        loss.backward(seed: Tensor(seed))
        assertMatches(x.grad, try c.tensor("grad.input"), tolerance: 1e-4, "cross_entropy grad.input")
    }

    // MARK: Forward checks

    func testLogSoftmaxIsStableAndMatchesDefinition() {
        var g = SeededRandom(seed: 30)
        let x = randomTensor([2, 3, 4], &g)
        for axis in [0, 1, -1] {
            let expected = x - x.exp().sum(axes: [axis], keepingDimensions: true).log()
            XCTAssertLessThan(relativeError(x.logSoftmax(axis: axis).scalars, expected.scalars), 1e-12)
        }
        // Large logits would overflow exp without the max shift.
        let big = Tensor<Float>(shape: [1, 3], scalars: [1000, 1001, 999]).logSoftmax()
        XCTAssertTrue(big.scalars.allSatisfy { $0.isFinite })
        // Float spacing near 1000 is 6e-5, which bounds the accuracy of x - logsumexp(x) there.
        XCTAssertEqual(Double(big.scalars[1]), -0.40760596, accuracy: 1e-4)
    }

    func testCrossEntropyMatchesLogSoftmax() {
        var g = SeededRandom(seed: 31)
        let x = randomTensor([4, 5], &g)
        let targets = [0, 4, 2, 2]
        let logp = x.logSoftmax()
        var picked = 0.0
        for (row, target) in targets.enumerated() { picked += logp.scalars[row * 5 + target] }
        let expected = -picked / 4
        XCTAssertEqual(x.crossEntropy(targets: targets).item, expected, accuracy: 1e-12)
    }

    // MARK: Finite differences

    func testLogSoftmaxGradients() {
        var g = SeededRandom(seed: 32)
        checkGradients([randomTensor([3, 5], &g)], "logSoftmax last axis") { $0[0].logSoftmax() }
        checkGradients([randomTensor([2, 4, 3], &g)], "logSoftmax middle axis") { $0[0].logSoftmax(axis: 1) }
    }

    func testCrossEntropyGradients() {
        var g = SeededRandom(seed: 33)
        checkGradients([randomTensor([4, 6], &g)], "crossEntropy") { $0[0].crossEntropy(targets: [5, 0, 3, 3]) }
    }
}
