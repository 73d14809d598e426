import Autograd
import Foundation
import Models
import ReferenceCases
import XCTest

// MARK: - Gradient accuracy over random model cases
//
// Max pooling routes a gradient to the larger of two pooled values, so wherever two of them are closer than float32
// rounding, a float32 pass may route it elsewhere than the float64 truth, and some parameter's gradient is then off
// by far more than 1e-4. Any float32 implementation does this on some random cases; what is kept here is that the
// framework's Float path does it no more often than PyTorch float32 on the same cases.
//
// The bound. `scripts/gradient_accuracy.py` counted PyTorch float32's exceeding cases (any parameter's gradient off
// PyTorch float64 by more than 1e-4 of its largest magnitude) on the cases `gradient-accuracy --batch 4` writes:
// 42 of 600 C4CNN cases (seeds 0..<600) and 5 of 1000 CNN cases (seeds 0..<1000). With a rate p per case, the count
// over K cases is Binomial(K, p); the test allows the count that a float32 implementation as accurate as PyTorch's
// exceeds with probability below 1e-3: the smallest b with P(Binomial(K, p) > b) < 1e-3, taking for p the upper end
// of a 95 % interval of PyTorch's measured rate ((count + 2 sqrt(count) + 1) / cases: 0.093 for the C4CNN, 0.0105
// for the CNN), so that a lucky measurement of PyTorch does not make the bound too tight. For K = 24 that is 8 C4CNN
// cases and 3 CNN cases. (The framework's own counts on the same cases: README, "Checking against PyTorch".)

final class GradientAccuracyTests: XCTestCase {
    /// Cases per model, and images per case (as in the PyTorch measurement).
    static let cases = 24, batch = 4

    /// PyTorch float32's exceeding cases and the cases measured (seeds 0..<cases, batch 4), by model.
    static let pytorch: [ModelName: (exceeding: Int, cases: Int)] = [.c4cnn: (42, 600), .cnn: (5, 1000)]

    func testC4CNNExceedsNoMoreOftenThanPyTorchFloat32() throws {
        try checkCount(model: .c4cnn)
    }

    func testCNNExceedsNoMoreOftenThanPyTorchFloat32() throws {
        try checkCount(model: .cnn)
    }

    /// The count check: measures `cases` cases of `model` and compares the exceeding ones with the bound; also checks
    /// that the measurement measures (nonzero errors of float32 size, a perturbed gradient counted).
    func checkCount(model: ModelName) throws {
        let count = Self.cases
        var exceeding: [UInt64] = [], worstErrors: [Double] = []
        var perturbedCounted = 0
        for seed in 0..<UInt64(count) {
            let testCase = ModelGradientCase(model: model, seed: seed, batch: Self.batch)
            let float = try testCase.floatPass(), truth = try testCase.doublePass()
            let errors = GradientErrors(float.gradients, truth: truth.gradients)
            if errors.exceeds() { exceeding.append(seed) }
            worstErrors.append(errors.worst.error)
            // The same gradients with one element of the first parameter moved by twice the tolerance of its scale.
            var perturbed = float.gradients
            let name = truth.gradients.keys.sorted()[0]
            let scale = truth.gradients[name]!.scalars.map { abs($0) }.max()!
            var g = perturbed[name]!.scalars
            g[0] += Float(2 * GradientErrors.tolerance * scale)
            perturbed[name] = Tensor(shape: perturbed[name]!.shape, scalars: g)
            if GradientErrors(perturbed, truth: truth.gradients).exceeds() { perturbedCounted += 1 }
        }
        let measured = Self.pytorch[model]!
        let bound = Self.bound(cases: count, pytorchExceeding: measured.exceeding, of: measured.cases)
        XCTAssertLessThanOrEqual(exceeding.count, bound,
                                 "\(model.rawValue): \(exceeding.count) of \(count) cases exceed "
                                 + "\(GradientErrors.tolerance) (seeds \(exceeding)); PyTorch float32's rate allows "
                                 + "\(bound)")
        // The measurement compares two different computations: no Float gradient equals the Double truth exactly...
        XCTAssertTrue(worstErrors.allSatisfy { $0 > 0 }, "\(model.rawValue): a case's Float gradients equal the "
                      + "Double truth exactly, so the comparison is not between the two paths: \(worstErrors)")
        // ...and, away from the rerouted cases, they differ by float32 rounding: sums of a few thousand products
        // rounded to 2^-24 relative each, a few 1e-6 of the largest magnitude (1e-5 = 84 * 2^-23 leaves room).
        let median = worstErrors.sorted()[count / 2]
        XCTAssertLessThan(median, 1e-5, "\(model.rawValue): the median case's worst error \(median) is beyond "
                          + "float32 rounding")
        XCTAssertEqual(perturbedCounted, count, "\(model.rawValue): a gradient moved by twice the tolerance was "
                       + "not counted as exceeding in \(count - perturbedCounted) cases")
    }

    // MARK: - The bound

    /// The smallest b with P(Binomial(cases, p) > b) < 1e-3, for p the upper end of a 95 % interval of the rate
    /// `count` / `total`: (count + 2 sqrt(count) + 1) / total.
    static func bound(cases: Int, pytorchExceeding count: Int, of total: Int) -> Int {
        let p = min(1, (Double(count) + 2 * Double(count).squareRoot() + 1) / Double(total))
        var tail = 1.0  // P(X > b - 1) = P(X >= b)
        for b in 0...cases {
            tail -= binomialProbability(b, cases, p)
            if tail < 1e-3 { return b }
        }
        return cases
    }

    /// P(X = k) for X ~ Binomial(n, p).
    static func binomialProbability(_ k: Int, _ n: Int, _ p: Double) -> Double {
        let logChoose = lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
        return exp(logChoose + Double(k) * log(p) + Double(n - k) * log1p(-p))
    }

    func testBound() {
        // Binomial(24, 0.093): P(X > 7) = 0.0011, P(X > 8) = 0.0002.
        XCTAssertEqual(Self.bound(cases: 24, pytorchExceeding: 42, of: 600), 8)
        // Binomial(24, 0.0105): P(X > 1) = 0.026, P(X > 2) = 0.002, P(X > 3) = 0.0001.
        XCTAssertEqual(Self.bound(cases: 24, pytorchExceeding: 5, of: 1000), 3)
    }

    // MARK: - The truth

    /// The Double mirror against PyTorch's float64 gradients of the reference model cases (stored in float32): the
    /// truth the counts are measured against is PyTorch's float64 up to that storage.
    func testDoubleMirrorReproducesPyTorchFloat64() throws {
        for model in ModelGradientCase.models {
            let url = try referenceDirectory().appendingPathComponent("model_\(model.rawValue).safetensors")
            let file = try SafetensorsFile(contentsOf: url)
            var parameters: [String: Tensor<Double>] = [:]
            for (name, entry) in file.entries where name.hasPrefix("param.") {
                parameters[String(name.dropFirst(6))] = Tensor(shape: entry.shape, scalars: entry.doubles)
                    .requiringGradient()
            }
            let input = try XCTUnwrap(file.entries["input"]), target = try XCTUnwrap(file.entries["target"])
            let logits = try DoubleModelMirror.logits(model: model, parameters: parameters,
                                                      input: Tensor(shape: input.shape, scalars: input.doubles))
            logits.crossEntropy(targets: target.doubles.map { Int($0) }).backward()
            for (name, parameter) in parameters {
                let stored = try XCTUnwrap(file.entries["grad.\(name)"])
                let grad = try XCTUnwrap(parameter.grad)
                let scale = stored.doubles.map(abs).max()!
                let error = zip(grad.scalars, stored.doubles).map { abs($0 - $1) }.max()! / scale
                // float32 storage: half an ulp of the largest magnitude is 2^-24 = 6e-8 of it.
                XCTAssertLessThan(error, 2e-7, "\(model.rawValue) \(name)")
            }
        }
    }
}
