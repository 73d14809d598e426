import Autograd

/// Batch normalisation over every axis but the channel axis 1, as `torch.nn.BatchNorm2d` (on (N, C, H, W)) and,
/// on group feature maps (N, C, |G|, H, W), with statistics shared over the group axis, which keeps equivariance.
///
/// Training mode normalises with the batch's mean and biased variance and updates the running statistics
/// (momentum 0.1, unbiased variance), or averages them over all batches since `resetRunningStatistics` while
/// `cumulativeAverage` is on (PyTorch's momentum=None); evaluation mode uses the running statistics. Parameters
/// `weight` (gamma) and `bias` (beta) of shape (C); buffers `running_mean`, `running_var`.
public final class BatchNorm: Module {
    /// The size C of axis 1.
    public let channels: Int
    /// Added to the variance before the square root.
    public let epsilon: Float
    /// Weight of the new batch in the running statistics (PyTorch's momentum).
    public let momentum: Float
    /// Scale gamma (C), initially 1.
    public let weight: Parameter
    /// Shift beta (C), initially 0.
    public let bias: Parameter
    /// Running mean (C), `running_mean`.
    public let runningMean: Buffer
    /// Running unbiased variance (C), `running_var`.
    public let runningVariance: Buffer
    /// When true, training-mode batches update the running statistics as a plain average of all batches since the
    /// last `resetRunningStatistics()` instead of the exponential average with `momentum`.
    public var cumulativeAverage = false
    /// Batches averaged since the last reset (for `cumulativeAverage`).
    private var averagedBatches = 0

    /// Batch norm over `channels` channels: gamma 1, beta 0, running mean 0 and variance 1.
    public init(_ channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        self.channels = channels
        self.epsilon = epsilon
        self.momentum = momentum
        weight = Parameter(Tensor(repeating: 1, shape: [channels]))
        bias = Parameter(Tensor(zeros: [channels]))
        runningMean = Buffer(Tensor(zeros: [channels]))
        runningVariance = Buffer(Tensor(repeating: 1, shape: [channels]))
    }

    /// PyTorch's names of the running statistics; `weight` and `bias` are found under their own names.
    override public var stateDictNames: [String: String] {
        ["runningMean": "running_mean", "runningVariance": "running_var"]
    }

    /// Running mean 0 and variance 1, as at initialisation; the cumulative average starts again.
    public func resetRunningStatistics() {
        runningMean.value = Tensor(zeros: [channels])
        runningVariance.value = Tensor(repeating: 1, shape: [channels])
        averagedBatches = 0
    }

    /// Scale and shift that evaluation mode applies: y = x * scale + shift, per channel.
    public func evaluationAffine() -> (scale: [Float], shift: [Float]) {
        let gamma = weight.value.scalars, beta = bias.value.scalars
        let mean = runningMean.value.scalars, variance = runningVariance.value.scalars
        let scale = (0..<channels).map { gamma[$0] / (variance[$0] + epsilon).squareRoot() }
        return (scale, (0..<channels).map { beta[$0] - mean[$0] * scale[$0] })
    }

    /// (N, C, ...) -> the same shape, normalised per channel (batch statistics in training mode, running ones in
    /// evaluation mode).
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank >= 2, input.shape[1] == channels else {
            throw ShapeError(layer: "BatchNorm(\(channels))", expected: "(N, \(channels), ...)", given: input.shape)
        }
        return isTraining ? normaliseWithBatchStatistics(input) : normaliseWithRunningStatistics(input)
    }

    // MARK: Fused kernels
    //
    // Both modes are single ops with hand-written gradients: the input is seen as (N, C, inner) with the channel's
    // elements in N contiguous runs of `inner`, and every per-channel sum is accumulated in Double.

    /// Training mode: y = xhat * gamma + beta with xhat = (x - mean) / sqrt(var + eps), mean and biased variance over
    /// every axis but 1. With m elements per channel, the gradients are
    /// dbeta = sum(dy), dgamma = sum(dy * xhat), dx = gamma / sqrt(var + eps) * (dy - dbeta / m - xhat * dgamma / m).
    private func normaliseWithBatchStatistics(_ input: Tensor<Float>) -> Tensor<Float> {
        let channels = self.channels
        let (outer, inner) = (input.shape[0], input.count / max(input.shape[0] * channels, 1))
        let m = outer * inner
        var mean = [Double](repeating: 0, count: channels), variance = mean
        var normalised = [Float](repeating: 0, count: input.count)
        var inverseDeviation = [Float](repeating: 0, count: channels)
        input.scalars.withUnsafeBufferPointer { x in
            normalised.withUnsafeMutableBufferPointer { xhat in
                for c in 0..<channels {
                    var sum = 0.0
                    for n in 0..<outer {
                        let base = (n * channels + c) * inner
                        for i in base ..< base + inner { sum += Double(x[i]) }
                    }
                    let mu = sum / Double(max(m, 1))
                    var squares = 0.0
                    for n in 0..<outer {
                        let base = (n * channels + c) * inner
                        for i in base ..< base + inner {
                            let d = Double(x[i]) - mu
                            squares += d * d
                        }
                    }
                    mean[c] = mu
                    variance[c] = squares / Double(max(m, 1))
                    let inverse = Float(1 / (variance[c] + Double(epsilon)).squareRoot())
                    inverseDeviation[c] = inverse
                    let muFloat = Float(mu)
                    for n in 0..<outer {
                        let base = (n * channels + c) * inner
                        for i in base ..< base + inner { xhat[i] = (x[i] - muFloat) * inverse }
                    }
                }
            }
        }
        // Running statistics (no gradient): momentum (or 1 / batches for the cumulative average), unbiased variance.
        averagedBatches += 1
        let momentum = cumulativeAverage ? 1 / Double(averagedBatches) : Double(self.momentum)
        let correction = Double(m) / Double(max(m - 1, 1))
        let oldMean = runningMean.value.scalars, oldVariance = runningVariance.value.scalars
        runningMean.value = Tensor(shape: [channels], scalars: (0..<channels).map {
            Float((1 - momentum) * Double(oldMean[$0]) + momentum * mean[$0]) })
        runningVariance.value = Tensor(shape: [channels], scalars: (0..<channels).map {
            Float((1 - momentum) * Double(oldVariance[$0]) + momentum * variance[$0] * correction) })

        let gamma = weight.value, beta = bias.value
        let output = affine(normalised, shape: input.shape, scale: gamma.scalars, shift: beta.scalars)
        return Tensor.record(output, inputs: [input, gamma, beta]) { upstream in
            var dgamma = [Double](repeating: 0, count: channels), dbeta = dgamma
            var dx = [Float](repeating: 0, count: upstream.count)
            upstream.scalars.withUnsafeBufferPointer { dy in
                normalised.withUnsafeBufferPointer { xhat in
                    dx.withUnsafeMutableBufferPointer { dx in
                        for c in 0..<channels {
                            var sumDy = 0.0, sumDyXhat = 0.0
                            for n in 0..<outer {
                                let base = (n * channels + c) * inner
                                for i in base ..< base + inner {
                                    sumDy += Double(dy[i])
                                    sumDyXhat += Double(dy[i]) * Double(xhat[i])
                                }
                            }
                            dbeta[c] = sumDy
                            dgamma[c] = sumDyXhat
                            let scale = gamma.scalars[c] * inverseDeviation[c]
                            let meanDy = Float(sumDy / Double(max(m, 1)))
                            let meanDyXhat = Float(sumDyXhat / Double(max(m, 1)))
                            for n in 0..<outer {
                                let base = (n * channels + c) * inner
                                for i in base ..< base + inner {
                                    dx[i] = scale * (dy[i] - meanDy - xhat[i] * meanDyXhat)
                                }
                            }
                        }
                    }
                }
            }
            return [Tensor(shape: upstream.shape, scalars: dx),
                    Tensor(shape: [channels], scalars: dgamma.map { Float($0) }),
                    Tensor(shape: [channels], scalars: dbeta.map { Float($0) })]
        }
    }

    /// Evaluation mode: y = x * scale + shift per channel, scale = gamma / sqrt(running var + eps), shift = beta -
    /// running mean * scale. Gradients: dx = dy * scale, dgamma = sum(dy * (x - running mean)) / sqrt(running var +
    /// eps), dbeta = sum(dy).
    private func normaliseWithRunningStatistics(_ input: Tensor<Float>) -> Tensor<Float> {
        let channels = self.channels, epsilon = self.epsilon
        let (scale, shift) = evaluationAffine()
        let output = affine(input.scalars, shape: input.shape, scale: scale, shift: shift)
        let (outer, inner) = (input.shape[0], input.count / max(input.shape[0] * channels, 1))
        let mean = runningMean.value.scalars, variance = runningVariance.value.scalars
        return Tensor.record(output, inputs: [input, weight.value, bias.value]) { upstream in
            var dgamma = [Double](repeating: 0, count: channels), dbeta = dgamma
            var dx = [Float](repeating: 0, count: upstream.count)
            upstream.scalars.withUnsafeBufferPointer { dy in
                input.scalars.withUnsafeBufferPointer { x in
                    for c in 0..<channels {
                        let inverse = 1 / (variance[c] + epsilon).squareRoot()
                        var sumDy = 0.0, sumDyXhat = 0.0
                        for n in 0..<outer {
                            let base = (n * channels + c) * inner
                            for i in base ..< base + inner {
                                sumDy += Double(dy[i])
                                sumDyXhat += Double(dy[i]) * Double((x[i] - mean[c]) * inverse)
                                dx[i] = dy[i] * scale[c]
                            }
                        }
                        dbeta[c] = sumDy
                        dgamma[c] = sumDyXhat
                    }
                }
            }
            return [Tensor(shape: upstream.shape, scalars: dx),
                    Tensor(shape: [channels], scalars: dgamma.map { Float($0) }),
                    Tensor(shape: [channels], scalars: dbeta.map { Float($0) })]
        }
    }

    /// values * scale[c] + shift[c] for the channel c of each element, as a new tensor of `shape`.
    private func affine(_ values: [Float], shape: [Int], scale: [Float], shift: [Float]) -> Tensor<Float> {
        let channels = self.channels
        let outer = shape[0], inner = values.count / max(shape[0] * channels, 1)
        return Tensor(shape: shape) { out in
            values.withUnsafeBufferPointer { v in
                for n in 0..<outer {
                    for c in 0..<channels {
                        let base = (n * channels + c) * inner
                        let a = scale[c], b = shift[c]
                        for i in base ..< base + inner { out[i] = v[i] * a + b }
                    }
                }
            }
        }
    }
}

// MARK: - Recalibration

extension Module {
    /// Recomputes the running statistics of every batch norm in the tree from `batches`, with the parameters as
    /// they are: each batch norm's statistics become the average over the batches of its batch means and unbiased
    /// variances. Dropout is off meanwhile, nothing is recorded, and the tree's mode is restored afterwards.
    ///
    /// Running statistics accumulated during training average over parameters that kept changing; with a high
    /// learning rate they can lag far behind the current ones, and evaluation suffers. Recalibrating after (or
    /// during) training removes that lag.
    public func recalibrateBatchNorm<Batches: Sequence>(_ batches: Batches) throws
        where Batches.Element == Tensor<Float> {
        let norms = namedModules.compactMap { $0.module as? BatchNorm }
        guard !norms.isEmpty else { return }
        let wasTraining = isTraining
        setTraining(true)
        for (_, module) in namedModules where module is Dropout { module.setTraining(false) }
        for norm in norms {
            norm.resetRunningStatistics()
            norm.cumulativeAverage = true
        }
        defer {
            for norm in norms { norm.cumulativeAverage = false }
            setTraining(wasTraining)
        }
        try withoutGradients {
            for batch in batches { _ = try forward(batch) }
        }
    }
}

/// Zeroes each element with probability `p` in training mode and scales the rest by 1 / (1 - p); the identity in
/// evaluation mode.
public final class Dropout: Module {
    /// The probability p of zeroing an element, in [0, 1).
    public let probability: Double
    private var generator = SeededRandom(seed: 0)

    /// Dropout with probability `probability`; its random stream starts from seed 0 until `reseed`.
    public init(_ probability: Double) {
        check((0..<1).contains(probability), "Dropout: probability \(probability) not in [0, 1)")
        self.probability = probability
    }

    /// Restarts the dropout mask stream from `seed`.
    override public func reseed(_ seed: UInt64) { generator = SeededRandom(seed: seed) }

    /// Same shape as the input: masked and rescaled in training mode, unchanged in evaluation mode.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard isTraining, probability > 0 else { return input }
        let keep = Float(1 / (1 - probability))
        let mask = Tensor<Float>(shape: input.shape, scalars: (0..<input.count).map { _ in
            generator.uniform() < probability ? 0 : keep
        })
        return input * mask
    }
}
