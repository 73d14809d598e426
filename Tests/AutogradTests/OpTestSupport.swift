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

/// Compares the gradients of sum(f(inputs) * r) (r random) from backward with central differences, in Double.
/// The error of each input's gradient is relative to its largest magnitude.
func checkGradients(_ inputs: [Tensor<Double>], seed: UInt64 = 7, eps: Double = 1e-6, tolerance: Double = 1e-6,
                    _ what: String, file: StaticString = #filePath, line: UInt = #line,
                    _ f: ([Tensor<Double>]) -> Tensor<Double>) {
    var generator = SeededRandom(seed: seed)
    let leaves = inputs.map { $0.requiringGradient() }
    let output = f(leaves)
    let weights = randomTensor(output.shape, &generator)
    (output * weights).sum().backward()

    func objective(_ values: [Tensor<Double>]) -> Double {
        withoutGradients { (f(values) * weights).sum().item }
    }
    for (index, input) in inputs.enumerated() {
        let analytic = leaves[index].grad?.scalars ?? [Double](repeating: 0, count: input.count)
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
