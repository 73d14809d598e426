import Autograd

/// Batch normalisation over every axis but the channel axis 1, as `torch.nn.BatchNorm2d` (on (N, C, H, W)) and,
/// on group feature maps (N, C, |G|, H, W), with statistics shared over the group axis, which keeps equivariance.
///
/// Training mode normalises with the batch's mean and biased variance and updates the running statistics
/// (momentum 0.1, unbiased variance); evaluation mode uses the running statistics. Parameters `weight` (gamma) and
/// `bias` (beta) of shape (C); buffers `running_mean`, `running_var`.
public final class BatchNorm: Module {
    public let channels: Int
    public let epsilon: Float
    public let momentum: Float
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Buffer
    public let runningVariance: Buffer

    public init(_ channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        self.channels = channels
        self.epsilon = epsilon
        self.momentum = momentum
        weight = Parameter(Tensor(repeating: 1, shape: [channels]))
        bias = Parameter(Tensor(zeros: [channels]))
        runningMean = Buffer(Tensor(zeros: [channels]))
        runningVariance = Buffer(Tensor(repeating: 1, shape: [channels]))
    }

    override public var localParameters: [(name: String, parameter: Parameter)] { [("weight", weight), ("bias", bias)] }
    override public var localBuffers: [(name: String, buffer: Buffer)] {
        [("running_mean", runningMean), ("running_var", runningVariance)]
    }

    /// (C) reshaped to broadcast against an input of rank `rank` along axis 1.
    private func channelShape(_ rank: Int) -> [Int] { [1, channels] + Array(repeating: 1, count: rank - 2) }

    /// Scale and shift that evaluation mode applies: y = x * scale + shift, per channel.
    public func evaluationAffine() -> (scale: [Float], shift: [Float]) {
        let gamma = weight.value.scalars, beta = bias.value.scalars
        let mean = runningMean.value.scalars, variance = runningVariance.value.scalars
        let scale = (0..<channels).map { gamma[$0] / (variance[$0] + epsilon).squareRoot() }
        return (scale, (0..<channels).map { beta[$0] - mean[$0] * scale[$0] })
    }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank >= 2, input.shape[1] == channels else {
            throw ShapeError(layer: "BatchNorm(\(channels))", expected: "(N, \(channels), ...)", given: input.shape)
        }
        let shape = channelShape(input.rank)
        guard isTraining else {
            let (scale, shift) = evaluationAffine()
            return input * Tensor(shape: shape, scalars: scale) + Tensor(shape: shape, scalars: shift)
        }
        let gamma = weight.value.reshaped(shape), beta = bias.value.reshaped(shape)
        let axes = [0] + Array(2..<input.rank)
        let count = input.count / channels
        let mean = input.mean(axes: axes, keepingDimensions: true)
        let centred = input - mean
        let variance = (centred * centred).mean(axes: axes, keepingDimensions: true)
        let normalised = centred / (variance + epsilon).sqrt()
        // Running statistics (no gradient).
        let m = momentum, correction = Float(count) / Float(max(count - 1, 1))
        let batchMean = mean.scalars, batchVariance = variance.scalars
        runningMean.value = Tensor(shape: [channels], scalars: (0..<channels).map {
            (1 - m) * runningMean.value.scalars[$0] + m * batchMean[$0] })
        runningVariance.value = Tensor(shape: [channels], scalars: (0..<channels).map {
            (1 - m) * runningVariance.value.scalars[$0] + m * batchVariance[$0] * correction })
        return normalised * gamma + beta
    }
}

/// Zeroes each element with probability `p` in training mode and scales the rest by 1 / (1 - p); the identity in
/// evaluation mode.
public final class Dropout: Module {
    public let probability: Double
    private var generator = SeededRandom(seed: 0)

    public init(_ probability: Double) {
        precondition((0..<1).contains(probability), "Dropout: probability \(probability) not in [0, 1)")
        self.probability = probability
    }

    override public func reseed(_ seed: UInt64) { generator = SeededRandom(seed: seed) }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard isTraining, probability > 0 else { return input }
        let keep = Float(1 / (1 - probability))
        let mask = Tensor<Float>(shape: input.shape, scalars: (0..<input.count).map { _ in
            generator.uniform() < probability ? 0 : keep
        })
        return input * mask
    }
}
