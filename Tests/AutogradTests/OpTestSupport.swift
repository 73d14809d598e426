import XCTest
@testable import Autograd

// Shared checks for the op tests: comparisons against reference values and finite-difference gradient checks.

/// max |actual - expected| / max |expected| (absolute error when expected is all zeros).
func relativeError<S: BinaryFloatingPoint>(_ actual: [S], _ expected: [S]) -> Double {
    precondition(actual.count == expected.count, "relativeError: \(actual.count) vs \(expected.count) values")
    var maxError = 0.0, maxReference = 0.0
    for (a, e) in zip(actual, expected) {
        maxError = max(maxError, abs(Double(a) - Double(e)))
        maxReference = max(maxReference, abs(Double(e)))
    }
    return maxReference > 0 ? maxError / maxReference : maxError
}

/// Asserts that `actual` matches the reference tensor in shape (ignoring size-1 axes) and within `tolerance`.
func assertMatches(_ actual: Tensor<Float>?, _ expected: ReferenceTensor, tolerance: Double, _ what: String,
                   file: StaticString = #filePath, line: UInt = #line) {
    guard let actual else {
        XCTFail("\(what): no value", file: file, line: line)
        return
    }
    XCTAssertEqual(actual.shape.filter { $0 != 1 }, expected.shape.filter { $0 != 1 },
                   "\(what): shape", file: file, line: line)
    guard actual.count == expected.floats.count else { return }
    let error = relativeError(actual.scalars, expected.floats)
    XCTAssertLessThanOrEqual(error, tolerance, "\(what): relative error \(error)", file: file, line: line)
}

extension ReferenceTensor {
    var tensor: Tensor<Float> { Tensor(shape: shape, scalars: floats) }
}

/// Random Double tensor with entries from N(0, 1).
func randomTensor(_ shape: [Int], _ generator: inout SeededRandom) -> Tensor<Double> {
    Tensor.normal(shape: shape, generator: &generator)
}

/// Random Double tensor with entries of magnitude in [low, high) and random sign (or positive only): inputs kept away
/// from 0 for ops with a kink or a pole there (relu, log, sqrt, division).
func randomTensor(_ shape: [Int], magnitude low: Double, _ high: Double, positive: Bool = false,
                  _ generator: inout SeededRandom) -> Tensor<Double> {
    let count = shape.reduce(1, *)
    return Tensor(shape: shape, scalars: (0..<count).map { _ in
        let value = generator.uniform(low, high)
        return positive || generator.uniform(0, 1) < 0.5 ? value : -value
    })
}

/// Checks the tape's gradients of `f` at `inputs` against central differences, in Double.
///
/// Every input becomes a leaf; the output is back-propagated with a random upstream gradient r through
/// `backward(seed: r)`, which gives d sum(f(inputs) * r) / d input for an output of any shape. The same sum is then
/// differenced one element at a time, (F(x + eps e_j) - F(x - eps e_j)) / (2 eps), with `f` evaluated untracked.
/// Each input's error is relative to the largest magnitude of its numeric gradient. The check also asserts that the
/// tracked forward equals the untracked one and that backward leaves the tape empty.
func checkGradients(_ inputs: [Tensor<Double>], seed: UInt64 = 7, eps: Double = 1e-6, tolerance: Double = 1e-6,
                    _ what: String, file: StaticString = #filePath, line: UInt = #line,
                    _ f: ([Tensor<Double>]) -> Tensor<Double>) {
    var generator = SeededRandom(seed: seed)
    Tape.current.reset()
    let leaves = inputs.map { $0.requiringGradient() }
    let output = f(leaves)
    let upstream = randomTensor(output.shape, &generator)

    let untracked = withoutGradients { f(inputs) }
    XCTAssertEqual(untracked.shape, output.shape, "\(what): untracked output shape", file: file, line: line)
    XCTAssertEqual(untracked.scalars, output.scalars, "\(what): untracked output values", file: file, line: line)
    guard output.requiresGradient else {
        XCTFail("\(what): the output does not require a gradient", file: file, line: line)
        return
    }
    output.backward(seed: upstream)
    XCTAssertEqual(Tape.current.count, 0, "\(what): ops left on the tape after backward", file: file, line: line)

    // F(values) = sum(f(values) * upstream), accumulated in plain Double arithmetic.
    func objective(_ values: [Tensor<Double>]) -> Double {
        let y = withoutGradients { f(values) }
        return zip(y.scalars, upstream.scalars).reduce(0) { $0 + $1.0 * $1.1 }
    }
    for (index, input) in inputs.enumerated() {
        let analytic = leaves[index].grad?.scalars ?? [Double](repeating: 0, count: input.count)
        XCTAssertEqual(leaves[index].grad?.shape ?? input.shape, input.shape,
                       "\(what): gradient shape of input \(index)", file: file, line: line)
        var numeric = [Double](repeating: 0, count: input.count)
        for j in 0..<input.count {
            var values = inputs
            var plus = input.scalars, minus = input.scalars
            plus[j] += eps
            minus[j] -= eps
            values[index] = Tensor(shape: input.shape, scalars: plus)
            let fPlus = objective(values)
            values[index] = Tensor(shape: input.shape, scalars: minus)
            let fMinus = objective(values)
            numeric[j] = (fPlus - fMinus) / (2 * eps)
        }
        let error = relativeError(analytic, numeric)
        XCTAssertLessThanOrEqual(error, tolerance, "\(what): gradient of input \(index), relative error \(error)",
                                 file: file, line: line)
    }
}
