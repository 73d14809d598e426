import XCTest
@testable import Autograd

// MARK: - The wide-column im2col path
//
// Large output planes at stride 1 unfold each padded image into wide column rows (Kernels/
// ConvolutionWideColumns.swift). Its output and gradients must be those of the compact columns: each sum has the
// same nonzero terms in the same order, so in Double they agree to rounding, and both agree with a Double direct
// sum. The geometries cover no padding, symmetric and asymmetric padding, a 5x5 and a 3x5 kernel, one input
// channel (the lifting convolution's case), and bias or none.

final class WideColumnTests: XCTestCase {
    private struct Case {
        var input: [Int]
        var weight: [Int]
        var padding: (Int, Int)
        var bias: Bool
    }

    private let cases: [Case] = [
        Case(input: [3, 2, 20, 20], weight: [4, 2, 3, 3], padding: (0, 0), bias: true),
        Case(input: [2, 3, 18, 17], weight: [5, 3, 3, 3], padding: (1, 1), bias: false),
        Case(input: [2, 2, 20, 36], weight: [3, 2, 5, 5], padding: (2, 2), bias: true),
        Case(input: [2, 2, 18, 40], weight: [3, 2, 3, 5], padding: (1, 2), bias: true),
        Case(input: [3, 1, 33, 33], weight: [8, 1, 3, 3], padding: (1, 1), bias: true),
        Case(input: [1, 2, 17, 18], weight: [2, 2, 3, 3], padding: (0, 1), bias: false),
    ]

    private func geometry(_ c: Case) -> ConvolutionGeometry {
        ConvolutionGeometry(batch: c.input[0], channels: c.input[1], height: c.input[2], width: c.input[3],
                            kernel: (c.weight[2], c.weight[3]), stride: (1, 1), padding: c.padding,
                            dilation: (1, 1))
    }

    /// Output and gradients (input, weight, bias) of one convolution with the wide path on or off.
    private func run<S: TensorScalar>(_ c: Case, wide: Bool, _ type: S.Type) -> [[S]] {
        ConvolutionGeometry.wideColumnsEnabled = wide
        defer { ConvolutionGeometry.wideColumnsEnabled = true }
        var generator = SeededRandom(seed: 11)
        let x = Tensor<Double>.normal(shape: c.input, generator: &generator).converted(to: S.self)
            .requiringGradient()
        let w = Tensor<Double>.normal(shape: c.weight, generator: &generator).converted(to: S.self)
            .requiringGradient()
        let b = c.bias
            ? Tensor<Double>.normal(shape: [c.weight[0]], generator: &generator).converted(to: S.self)
                .requiringGradient()
            : nil
        let y = x.conv2d(weight: w, bias: b, padding: c.padding)
        let seed = Tensor<Double>.normal(shape: y.shape, generator: &generator).converted(to: S.self)
        y.backward(seed: seed)
        return [y.scalars, x.grad!.scalars, w.grad!.scalars] + (b.map { [$0.grad!.scalars] } ?? [])
    }

    func testCasesTakeTheWidePath() {
        for c in cases {
            XCTAssertTrue(geometry(c).usesWideColumns, "\(c.input) * \(c.weight) should take the wide path")
        }
        // Strided, dilated and small-plane convolutions keep the compact columns.
        var strided = geometry(cases[0])
        strided.strideWidth = 2
        XCTAssertFalse(strided.usesWideColumns)
        var small = geometry(cases[0])
        (small.height, small.width) = (8, 8)
        XCTAssertFalse(small.usesWideColumns)
    }

    func testWideEqualsCompactInDouble() {
        for c in cases {
            let (wide, compact) = (run(c, wide: true, Double.self), run(c, wide: false, Double.self))
            for (name, (a, b)) in zip(["output", "grad input", "grad weight", "grad bias"], zip(wide, compact)) {
                XCTAssertLessThan(relativeError(a, b), 1e-13, "\(c.input) * \(c.weight): \(name)")
            }
        }
    }

    func testWideEqualsCompactInFloat() {
        for c in cases {
            let (wide, compact) = (run(c, wide: true, Float.self), run(c, wide: false, Float.self))
            let exact = run(c, wide: false, Double.self)
            for (name, ((a, b), e)) in zip(["output", "grad input", "grad weight", "grad bias"],
                                          zip(zip(wide, compact), exact)) {
                // Same terms, same order: the two Float results are within a few roundings of each other and of
                // the Double sums (BLAS may block the weight gradient's long sums differently).
                XCTAssertLessThan(relativeError(a, b), 2e-6, "\(c.input) * \(c.weight): \(name)")
                XCTAssertLessThan(relativeError(a.map(Double.init), e), 2e-6, "\(c.input) * \(c.weight): \(name)")
            }
        }
    }
}
