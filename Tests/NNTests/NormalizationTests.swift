import Autograd
import NN
import XCTest

/// Batch norm and dropout: the forward pass against the definition computed in Double, gradients against central
/// differences in Double, running statistics, evaluation mode, and equivariance on group feature maps.
final class NormalizationTests: XCTestCase {
    // MARK: Reference in Double

    /// Batch norm in training mode, straight from the definition: per channel (axis 1), the mean and the biased
    /// variance over every other axis. Returns the output and each channel's mean and biased variance.
    private func referenceBatchNorm(_ x: [Double], shape: [Int], gamma: [Double], beta: [Double], epsilon: Double)
        -> (output: [Double], mean: [Double], variance: [Double]) {
        let channels = shape[1], inner = shape[2...].reduce(1, *), outer = shape[0]
        var mean = [Double](repeating: 0, count: channels), variance = mean
        let count = Double(outer * inner)
        for c in 0..<channels {
            var sum = 0.0
            for n in 0..<outer { for i in 0..<inner { sum += x[(n * channels + c) * inner + i] } }
            mean[c] = sum / count
            var squares = 0.0
            for n in 0..<outer {
                for i in 0..<inner {
                    let d = x[(n * channels + c) * inner + i] - mean[c]
                    squares += d * d
                }
            }
            variance[c] = squares / count
        }
        var output = x
        for n in 0..<outer {
            for c in 0..<channels {
                for i in 0..<inner {
                    let k = (n * channels + c) * inner + i
                    output[k] = (x[k] - mean[c]) / (variance[c] + epsilon).squareRoot() * gamma[c] + beta[c]
                }
            }
        }
        return (output, mean, variance)
    }

    private func randomFloats(_ count: Int, _ generator: inout SeededRandom, scale: Double = 1, offset: Double = 0)
        -> [Float] {
        (0..<count).map { _ in Float(offset + scale * generator.normal()) }
    }

    /// A batch norm with non-trivial gamma and beta.
    private func makeNorm(_ channels: Int, _ generator: inout SeededRandom) -> BatchNorm {
        let norm = BatchNorm(channels)
        norm.weight.assign(randomFloats(channels, &generator, scale: 0.5, offset: 1))
        norm.bias.assign(randomFloats(channels, &generator, scale: 0.5))
        return norm
    }

    // MARK: Batch norm

    func testTrainingForwardMatchesTheDefinition() throws {
        var generator = SeededRandom(seed: 11)
        for shape in [[4, 3, 5, 5], [3, 2, 4, 5, 5], [2, 3, 8, 3, 3], [6, 4]] {
            let norm = makeNorm(shape[1], &generator)
            let count = shape.reduce(1, *)
            let x = Tensor(shape: shape, scalars: randomFloats(count, &generator, scale: 2, offset: 0.7))
            let y = try norm(x)
            let reference = referenceBatchNorm(x.scalars.map(Double.init), shape: shape,
                                               gamma: norm.weight.value.scalars.map(Double.init),
                                               beta: norm.bias.value.scalars.map(Double.init), epsilon: 1e-5)
            XCTAssertEqual(y.shape, shape)
            // The ops' forward yardstick, 1e-5: per-channel means and variances over up to 100 float32 values round
            // by up to 100 u = 6e-6 relative, in an order that depends on the thread count.
            XCTAssertLessThanOrEqual(relative(y.scalars.map(Double.init), reference.output), 1e-5, "\(shape)")
        }
    }

    /// d/dx, d/dgamma, d/dbeta of sum(BN(x) * r) from the module's backward pass (Float) against central differences
    /// of the Double definition.
    func testGradientsMatchFiniteDifferencesOfTheDefinition() throws {
        var generator = SeededRandom(seed: 12)
        let shape = [3, 2, 4, 3, 3]
        let count = shape.reduce(1, *)
        let norm = makeNorm(2, &generator)
        let x = Tensor(shape: shape, scalars: randomFloats(count, &generator, scale: 1.5, offset: -0.3))
            .requiringGradient()
        let r = randomFloats(count, &generator)
        let loss = (try norm(x) * Tensor(shape: shape, scalars: r)).sum()
        norm.zeroGradients()
        loss.backward()

        let gamma = norm.weight.value.scalars.map(Double.init), beta = norm.bias.value.scalars.map(Double.init)
        let xs = x.scalars.map(Double.init), rs = r.map(Double.init)
        func objective(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> Double {
            let y = referenceBatchNorm(x, shape: shape, gamma: gamma, beta: beta, epsilon: 1e-5).output
            return zip(y, rs).reduce(0) { $0 + $1.0 * $1.1 }
        }
        func numeric(_ values: [Double], _ evaluate: ([Double]) -> Double) -> [Double] {
            let eps = 1e-5
            return values.indices.map { j in
                var plus = values, minus = values
                plus[j] += eps
                minus[j] -= eps
                return (evaluate(plus) - evaluate(minus)) / (2 * eps)
            }
        }
        let dx = numeric(xs) { objective($0, gamma, beta) }
        let dgamma = numeric(gamma) { objective(xs, $0, beta) }
        let dbeta = numeric(beta) { objective(xs, gamma, $0) }
        XCTAssertLessThanOrEqual(relative(x.grad!.scalars.map(Double.init), dx), 1e-4, "d/dx")
        XCTAssertLessThanOrEqual(relative(norm.weight.grad!.scalars.map(Double.init), dgamma), 1e-4, "d/dgamma")
        XCTAssertLessThanOrEqual(relative(norm.bias.grad!.scalars.map(Double.init), dbeta), 1e-4, "d/dbeta")
    }

    /// The hand-derived input gradient, dx = gamma / sigma * (dy - mean(dy) - xhat * mean(dy * xhat)): it sums to
    /// zero over each channel, and so does its product with xhat.
    func testInputGradientIsOrthogonalToShiftAndScale() throws {
        var generator = SeededRandom(seed: 13)
        let shape = [4, 3, 4, 2, 2]
        let count = shape.reduce(1, *)
        let norm = makeNorm(3, &generator)
        let x = Tensor(shape: shape, scalars: randomFloats(count, &generator)).requiringGradient()
        let r = Tensor(shape: shape, scalars: randomFloats(count, &generator))
        (try norm(x) * r).sum().backward()
        let reference = referenceBatchNorm(x.scalars.map(Double.init), shape: shape,
                                           gamma: [1, 1, 1], beta: [0, 0, 0], epsilon: 1e-5)
        let grad = x.grad!.scalars.map(Double.init)
        let inner = shape[2...].reduce(1, *)
        for c in 0..<3 {
            var sum = 0.0, weighted = 0.0, scale = 0.0
            for n in 0..<shape[0] {
                for i in 0..<inner {
                    let k = (n * 3 + c) * inner + i
                    sum += grad[k]
                    weighted += grad[k] * reference.output[k]
                    scale = max(scale, abs(grad[k]))
                }
            }
            XCTAssertLessThan(abs(sum) / scale, 1e-4, "channel \(c): sum of dx")
            XCTAssertLessThan(abs(weighted) / scale, 1e-4, "channel \(c): sum of dx * xhat")
        }
    }

    func testRunningStatisticsUpdateWithMomentumAndUnbiasedVariance() throws {
        var generator = SeededRandom(seed: 14)
        let shape = [2, 3, 4, 3, 3]
        let count = shape.reduce(1, *)
        let norm = makeNorm(3, &generator)
        var expectedMean = [Double](repeating: 0, count: 3), expectedVariance = [Double](repeating: 1, count: 3)
        let n = Double(count / 3)
        for step in 0..<3 {
            let x = Tensor(shape: shape, scalars: randomFloats(count, &generator, scale: 1 + Double(step), offset: 2))
            _ = try norm(x)
            let batch = referenceBatchNorm(x.scalars.map(Double.init), shape: shape, gamma: [1, 1, 1],
                                           beta: [0, 0, 0], epsilon: 1e-5)
            for c in 0..<3 {
                expectedMean[c] = 0.9 * expectedMean[c] + 0.1 * batch.mean[c]
                expectedVariance[c] = 0.9 * expectedVariance[c] + 0.1 * batch.variance[c] * n / (n - 1)
            }
            XCTAssertLessThanOrEqual(relative(norm.runningMean.value.scalars.map(Double.init), expectedMean), 1e-5,
                                     "running mean after step \(step)")
            XCTAssertLessThanOrEqual(relative(norm.runningVariance.value.scalars.map(Double.init), expectedVariance),
                                     1e-5, "running variance after step \(step)")
        }
    }

    func testEvaluationModeUsesRunningStatistics() throws {
        var generator = SeededRandom(seed: 15)
        let norm = makeNorm(2, &generator)
        norm.runningMean.value = Tensor(shape: [2], scalars: [0.5, -1])
        norm.runningVariance.value = Tensor(shape: [2], scalars: [4, 0.25])
        norm.eval()
        let shape = [3, 2, 4, 2, 2]
        let count = shape.reduce(1, *)
        let x = Tensor(shape: shape, scalars: randomFloats(count, &generator)).requiringGradient()
        let r = Tensor(shape: shape, scalars: randomFloats(count, &generator))
        let y = try norm(x)
        (y * r).sum().backward()
        let gamma = norm.weight.value.scalars, beta = norm.bias.value.scalars
        let mean: [Float] = [0.5, -1], variance: [Float] = [4, 0.25]
        let inner = 4 * 2 * 2
        for k in 0..<count {
            let c = (k / inner) % 2
            let scale = gamma[c] / (variance[c] + 1e-5).squareRoot()
            XCTAssertEqual(y.scalars[k], (x.scalars[k] - mean[c]) * scale + beta[c], accuracy: 1e-5)
            // In evaluation mode the map is affine per channel: dx = scale * dy.
            XCTAssertEqual(x.grad!.scalars[k], scale * r.scalars[k], accuracy: 1e-5)
        }
        // dgamma = sum(dy * (x - mean) / sqrt(var + eps)), dbeta = sum(dy), per channel.
        var dgamma = [Double](repeating: 0, count: 2), dbeta = dgamma
        for k in 0..<count {
            let c = (k / inner) % 2
            dgamma[c] += Double(r.scalars[k]) * Double(x.scalars[k] - mean[c]) / Double(variance[c] + 1e-5).squareRoot()
            dbeta[c] += Double(r.scalars[k])
        }
        // Gradients: the yardstick 1e-4 of the largest magnitude (sums of 48 float32 terms, whose worst-case rounding
        // relative to a sum with cancellation exceeds 1e-5).
        XCTAssertLessThanOrEqual(relative(norm.weight.grad!.scalars.map(Double.init), dgamma), 1e-4)
        XCTAssertLessThanOrEqual(relative(norm.bias.grad!.scalars.map(Double.init), dbeta), 1e-4)
        // Statistics are left alone, and each sample is normalised independently of the others.
        XCTAssertEqual(norm.runningMean.value.scalars, mean)
        XCTAssertEqual(norm.runningVariance.value.scalars, variance)
        let single = try norm(x.sliced(axis: 0, 1..<2))
        XCTAssertEqual(single.scalars, y.sliced(axis: 0, 1..<2).scalars)
    }

    func testBuffersAreSavedWithTheParameters() throws {
        var generator = SeededRandom(seed: 16)
        let norm = makeNorm(3, &generator)
        _ = try norm(Tensor(shape: [4, 3, 2, 2], scalars: randomFloats(48, &generator, offset: 1)))
        XCTAssertEqual(Set(norm.stateDict().keys), ["weight", "bias", "running_mean", "running_var"])
        XCTAssertEqual(norm.namedParameters.map(\.name), ["weight", "bias"])
        let copy = BatchNorm(3)
        try copy.load(stateDict: norm.stateDict())
        XCTAssertEqual(copy.runningMean.value.scalars, norm.runningMean.value.scalars)
        XCTAssertEqual(copy.runningVariance.value.scalars, norm.runningVariance.value.scalars)
    }

    /// Statistics shared over the group axis make batch norm commute with the group's action on (N, C, |G|, H, W),
    /// in training mode (batch statistics) and in evaluation mode (running statistics).
    func testBatchNormIsEquivariantOnGroupFeatureMaps() throws {
        var generator = SeededRandom(seed: 17)
        for group in [PlanarGroup.c4, .d4] {
            let shape = [2, 3, group.order, 5, 5]
            let x = Tensor(shape: shape, scalars: randomFloats(shape.reduce(1, *), &generator, scale: 2, offset: 1))
            let norm = makeNorm(3, &generator)
            let training = try EquivarianceCheck.groupToGroup(norm, input: x, group: group)
            XCTAssertTrue(training.holds(tolerance: 1e-5), "training mode: \(training)")
            norm.eval()
            let evaluation = try EquivarianceCheck.groupToGroup(norm, input: x, group: group)
            XCTAssertTrue(evaluation.holds(tolerance: 1e-5), "evaluation mode: \(evaluation)")
            XCTAssertNotEqual(norm.runningMean.value.scalars, [0, 0, 0], "training updated the statistics")
        }
    }

    func testWrongChannelCountIsAnError() {
        XCTAssertThrowsError(try BatchNorm(3)(Tensor(zeros: [2, 4, 5, 5]))) { error in
            XCTAssertTrue("\(error)".contains("BatchNorm(3)"), "\(error)")
        }
    }

    func testCumulativeAverageAndRecalibration() throws {
        var generator = SeededRandom(seed: 19)
        let shape = [4, 2, 4, 3, 3]
        let count = shape.reduce(1, *)
        let batches = (0..<3).map { k in
            Tensor(shape: shape, scalars: randomFloats(count, &generator, scale: 1 + Double(k), offset: Double(k)))
        }
        let n = Double(count / 2)
        var expectedMean = [Double](repeating: 0, count: 2), expectedVariance = expectedMean
        for batch in batches {
            let reference = referenceBatchNorm(batch.scalars.map(Double.init), shape: shape, gamma: [1, 1],
                                               beta: [0, 0], epsilon: 1e-5)
            for c in 0..<2 {
                expectedMean[c] += reference.mean[c] / 3
                expectedVariance[c] += reference.variance[c] * n / (n - 1) / 3
            }
        }
        // A network whose second batch norm sees the first one's output through dropout: recalibration averages
        // over the batches, with dropout off (else the second variance would be about 1 / (1 - p) = 2).
        let first = makeNorm(2, &generator), second = BatchNorm(2)
        let model = Sequential(first, Dropout(0.5), second)
        model.eval()
        try model.recalibrateBatchNorm(batches)
        XCTAssertFalse(model.isTraining)
        XCTAssertTrue(model.layers.allSatisfy { !$0.isTraining }, "the mode is restored")
        XCTAssertFalse(first.cumulativeAverage)
        XCTAssertLessThanOrEqual(relative(first.runningMean.value.scalars.map(Double.init), expectedMean), 1e-5)
        XCTAssertLessThanOrEqual(relative(first.runningVariance.value.scalars.map(Double.init), expectedVariance), 1e-5)
        let beta = first.bias.value.scalars, gamma = first.weight.value.scalars
        for c in 0..<2 {
            XCTAssertEqual(second.runningMean.value.scalars[c], beta[c], accuracy: 1e-4)
            let variance = Double(gamma[c] * gamma[c]) * n / (n - 1)
            XCTAssertEqual(Double(second.runningVariance.value.scalars[c]), variance, accuracy: 1e-3 * variance)
        }
        // The exponential average resumes afterwards.
        model.train()
        let before = second.runningMean.value.scalars
        _ = try second(batches[0])
        let batchMean = referenceBatchNorm(batches[0].scalars.map(Double.init), shape: shape, gamma: [1, 1],
                                           beta: [0, 0], epsilon: 1e-5).mean
        for c in 0..<2 {
            XCTAssertEqual(Double(second.runningMean.value.scalars[c]), 0.9 * Double(before[c]) + 0.1 * batchMean[c],
                           accuracy: 1e-5)
        }
    }

    // MARK: Dropout

    func testDropoutIsTheIdentityInEvaluationMode() throws {
        var generator = SeededRandom(seed: 18)
        let dropout = Dropout(0.5)
        dropout.eval()
        let x = Tensor(shape: [4, 50], scalars: randomFloats(200, &generator))
        XCTAssertEqual(try dropout(x).scalars, x.scalars)
        XCTAssertEqual(try Dropout(0)(x).scalars, x.scalars, "p = 0 keeps everything in training mode too")
    }

    func testDropoutZeroesAndRescalesInTrainingMode() throws {
        let p = 0.3
        let dropout = Dropout(p)
        dropout.reseed(42)
        let x = Tensor<Float>(repeating: 2, shape: [100, 100]).requiringGradient()
        let y = try dropout(x)
        let kept = Float(2 / (1 - p))
        var zeros = 0
        for v in y.scalars {
            if v == 0 { zeros += 1 } else { XCTAssertEqual(v, kept, accuracy: 1e-5) }
        }
        // 10000 draws: the fraction dropped is within a few standard deviations (0.0046) of p.
        XCTAssertEqual(Double(zeros) / 10000, p, accuracy: 0.02)
        // The gradient is the same mask: 0 where dropped, 1 / (1 - p) where kept.
        y.sum().backward()
        for (g, v) in zip(x.grad!.scalars, y.scalars) {
            XCTAssertEqual(g, v == 0 ? 0 : Float(1 / (1 - p)), accuracy: 1e-5)
        }
    }

    func testDropoutMasksAreDeterministicAfterReseeding() throws {
        let x = Tensor<Float>(repeating: 1, shape: [8, 64])
        let model = Sequential(Dropout(0.5), Dropout(0.2))
        model.reseed(7)
        let first = try model(x).scalars, second = try model(x).scalars
        XCTAssertNotEqual(first, second, "successive batches draw new masks")
        model.reseed(7)
        XCTAssertEqual(try model(x).scalars, first, "the same seed gives the same masks")
        XCTAssertEqual(try model(x).scalars, second)
        model.reseed(8)
        XCTAssertNotEqual(try model(x).scalars, first, "another seed, other masks")
    }

    // MARK: Helpers

    private func relative(_ a: [Double], _ b: [Double]) -> Double {
        EquivarianceCheck.relativeError(Tensor(shape: [a.count], scalars: a), Tensor(shape: [b.count], scalars: b))
    }
}
