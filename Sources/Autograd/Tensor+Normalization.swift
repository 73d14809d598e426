// MARK: - Layer and batch normalisation, functional
//
// Both are written with the reduction and elementwise ops, so their vjps are those ops' own:
//   xhat = (x - mean) / sqrt(var + eps), y = xhat * weight + bias,
// with the biased variance mean((x - mean)^2) over the normalised axes. (The `BatchNorm` layer of NN has a fused
// Float kernel of its own; these are the generic forms.)

/// The running mean and variance of a batch norm, updated in place by `batchNorm` in training mode.
public final class RunningStatistics<Scalar: TensorScalar> {
    public var mean: Tensor<Scalar>
    public var variance: Tensor<Scalar>

    /// Mean 0 and variance 1 over `channels`, as PyTorch initialises them.
    public init(channels: Int) {
        mean = Tensor(zeros: [channels])
        variance = Tensor(repeating: 1, shape: [channels])
    }

    public init(mean: Tensor<Scalar>, variance: Tensor<Scalar>) {
        check(mean.rank == 1 && mean.shape == variance.shape,
              "RunningStatistics: mean \(mean.shape) and variance \(variance.shape) must be vectors of one size")
        self.mean = mean.detached()
        self.variance = variance.detached()
    }
}

extension Tensor {
    /// Layer normalisation over the trailing axes `normalizedShape`, as `torch.nn.functional.layer_norm`: mean and
    /// biased variance over those axes, then an optional elementwise `weight` and `bias` of shape `normalizedShape`.
    public func layerNorm(normalizedShape: [Int], weight: Tensor? = nil, bias: Tensor? = nil,
                          epsilon: Double = 1e-5) -> Tensor {
        let k = normalizedShape.count
        check(k >= 1 && k <= rank && Array(shape.suffix(k)) == normalizedShape,
              "layer_norm: normalized shape \(normalizedShape) is not the trailing shape of the input \(shape)")
        if let weight {
            check(weight.shape == normalizedShape,
                  "layer_norm: weight of shape \(weight.shape) does not match normalized shape \(normalizedShape)")
        }
        if let bias {
            check(bias.shape == normalizedShape,
                  "layer_norm: bias of shape \(bias.shape) does not match normalized shape \(normalizedShape)")
        }
        let axes = Array((rank - k)..<rank)
        var y = normalized(over: axes, epsilon: epsilon)
        if let weight { y = y * weight }
        if let bias { y = y + bias }
        return y
    }

    /// (x - mean) / sqrt(var + eps) with the mean and biased variance over `axes`.
    ///
    /// The mean is taken in two steps: a constant shift c, the mean computed in Double, then the tracked mean of
    /// x - c. That is x - mean(x) exactly, with the same gradient, but the float sum runs over small centred values:
    /// Float data with a large offset (50 +- 0.1) keeps 1e-7 relative accuracy instead of 1e-5.
    private func normalized(over axes: [Int], epsilon: Double) -> Tensor {
        let shift = withoutGradients {
            detached().converted(to: Double.self).mean(axes: axes, keepingDimensions: true).converted(to: Scalar.self)
        }
        let shifted = self - shift
        let centred = shifted - shifted.mean(axes: axes, keepingDimensions: true)
        let variance = (centred * centred).mean(axes: axes, keepingDimensions: true)
        return centred / (variance + Scalar(epsilon)).sqrt()
    }

    /// Batch normalisation over every axis but the channel axis 1 of (N, C, ...), as
    /// `torch.nn.functional.batch_norm`.
    ///
    /// - Training mode (`training: true`): normalises with the batch's mean and biased variance; when `running` is
    ///   given, updates it in place as PyTorch does: stat = (1 - momentum) stat + momentum batch stat, with the
    ///   unbiased variance.
    /// - Evaluation mode: normalises with `running` (required), a constant.
    /// - `weight` and `bias` (C) scale and shift each channel.
    public func batchNorm(running: RunningStatistics<Scalar>? = nil, weight: Tensor? = nil, bias: Tensor? = nil,
                          training: Bool, momentum: Double = 0.1, epsilon: Double = 1e-5) -> Tensor {
        check(rank >= 2, "batch_norm: input shape \(shape) is not (N, C, ...)")
        let channels = shape[1]
        for (name, t) in [("weight", weight), ("bias", bias), ("running mean", running?.mean),
                          ("running variance", running?.variance)] {
            if let t {
                check(t.shape == [channels],
                      "batch_norm: \(name) of shape \(t.shape) does not match the \(channels) channels of input "
                      + "\(shape)")
            }
        }
        // Per-channel tensors broadcast as (C, 1, ..., 1).
        let perChannel = [channels] + [Int](repeating: 1, count: rank - 2)
        let axes = [0] + Array(2..<rank)
        var y: Tensor
        if training {
            let m = count / Swift.max(channels, 1)
            check(m > 1, "batch_norm: training mode needs more than one value per channel, input shape \(shape)")
            y = normalized(over: axes, epsilon: epsilon)
            if let running {
                let (batchMean, batchVariance) = withoutGradients { () -> (Tensor, Tensor) in
                    let x = detached()
                    let mu = x.mean(axes: axes)
                    let centred = x - mu.reshaped(perChannel)
                    let unbiased = (centred * centred).sum(axes: axes) / Scalar(m - 1)
                    return (mu, unbiased)
                }
                let mo = Scalar(momentum)
                running.mean = withoutGradients { running.mean * (1 - mo) + batchMean * mo }
                running.variance = withoutGradients { running.variance * (1 - mo) + batchVariance * mo }
            }
        } else {
            guard let running else {
                fatalError("batch_norm: evaluation mode needs running statistics (input shape \(shape))")
            }
            let scale = (running.variance.detached() + Scalar(epsilon)).sqrt().reshaped(perChannel)
            y = (self - running.mean.detached().reshaped(perChannel)) / scale
        }
        if let weight { y = y * weight.reshaped(perChannel) }
        if let bias { y = y + bias.reshaped(perChannel) }
        return y
    }
}
