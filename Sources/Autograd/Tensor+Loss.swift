// MARK: - Log-softmax and cross-entropy
//
// Both are fused: one kernel for the forward, one for the vector-Jacobian product.
//   log_softmax:   y = x - logsumexp(x);            dx = g - softmax(x) * sum(g)
//   cross-entropy: L = mean_n -log_softmax(x_n)[t_n]; dx = (softmax(x) - onehot(t)) / N * g

extension Tensor {
    /// log(softmax(x)) along `axis`, computed stably (the line's maximum is subtracted first).
    public func logSoftmax(axis: Int = -1) -> Tensor {
        let a = ShapeMath.axis(axis, rank: rank, op: "logSoftmax")
        let outer = shape[..<a].reduce(1, *), size = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        let y = Tensor(shape: shape, scalars: [Scalar](fillingAll: count) { out in
            scalars.withUnsafeBufferPointer {
                Scalar.logSoftmax($0.baseAddress!, out, outer: outer, size: size, inner: inner)
            }
        })
        let saved = y.scalars
        return Tensor.record(y, inputs: [self]) { g in
            [Tensor(shape: g.shape, scalars: [Scalar](fillingAll: g.count) { dx in
                g.scalars.withUnsafeBufferPointer { pg in
                    saved.withUnsafeBufferPointer { py in
                        Scalar.logSoftmaxBackward(pg.baseAddress!, py.baseAddress!, dx,
                                                  outer: outer, size: size, inner: inner)
                    }
                }
            })]
        }
    }

    /// Mean cross-entropy of logits (N, C) against class indices `targets` (N values in 0..<C), as
    /// `torch.nn.functional.cross_entropy` with mean reduction. Returns a rank-0 tensor.
    public func crossEntropy(targets: [Int]) -> Tensor {
        check(rank == 2, "crossEntropy: logits shape \(shape) is not (N, C)")
        let (rows, classes) = (shape[0], shape[1])
        check(targets.count == rows,
              "crossEntropy: \(targets.count) targets for logits shape \(shape)")
        for t in targets {
            check(t >= 0 && t < classes,
                  "crossEntropy: target \(t) is out of range 0..<\(classes) for logits shape \(shape)")
        }
        var sum: Scalar = 0
        let probabilities = [Scalar](fillingAll: count) { p in
            scalars.withUnsafeBufferPointer { px in
                targets.withUnsafeBufferPointer { pt in
                    sum = Scalar.crossEntropy(px.baseAddress!, targets: pt.baseAddress!, rows: rows,
                                              classes: classes, p)
                }
            }
        }
        let loss = Tensor(rows > 0 ? sum / Scalar(rows) : .nan)
        let logitShape = shape
        return Tensor.record(loss, inputs: [self]) { g in
            let scale = g.item / Scalar(Swift.max(rows, 1))
            return [Tensor(shape: logitShape, scalars: [Scalar](fillingAll: probabilities.count) { dx in
                probabilities.withUnsafeBufferPointer { pp in
                    targets.withUnsafeBufferPointer { pt in
                        Scalar.crossEntropyBackward(pp.baseAddress!, targets: pt.baseAddress!, rows: rows,
                                                    classes: classes, scale: scale, dx)
                    }
                }
            })]
        }
    }
}

// MARK: - Regression, binary and negative log-likelihood losses
//
// Written with elementwise ops and gathers, so their vjps are those ops' own:
//   mse:              L = reduce((x - t)^2);                        dx = 2 (x - t) g (/ n for the mean)
//   bce with logits:  L = reduce((1 - t) x + (1 + (p - 1) t) softplus(-x)) (times weight), the stable form;
//                     dx = (sigmoid(x) - t) g without pos_weight
//   nll:              L = -sum_i w[t_i] x[i, t_i] / sum_i w[t_i] over targets not ignored (mean), or the plain sum

/// How a loss combines its per-element values, as PyTorch's `reduction`.
public enum LossReduction: String, Sendable, CaseIterable {
    /// A rank-0 mean (for nll_loss with class weights, the weighted mean).
    case mean
    /// A rank-0 sum.
    case sum
    /// The per-element losses, unreduced.
    case none
}

extension Tensor {
    private func reducedLoss(_ losses: Tensor, _ reduction: LossReduction) -> Tensor {
        switch reduction {
        case .mean: return losses.mean()
        case .sum: return losses.sum()
        case .none: return losses
        }
    }

    /// Mean squared error against `target` (the same shape), as `torch.nn.functional.mse_loss`.
    public func mseLoss(target: Tensor, reduction: LossReduction = .mean) -> Tensor {
        check(shape == target.shape, "mse_loss: input shape \(shape) differs from target shape \(target.shape)")
        let difference = self - target
        return reducedLoss(difference * difference, reduction)
    }

    /// Binary cross-entropy of logits (this tensor) against probabilities `target` of the same shape, as
    /// `torch.nn.functional.binary_cross_entropy_with_logits`, in the stable form (no exp overflows).
    /// `weight` rescales each element's loss and `positiveWeight` the positive term, both broadcasting to the input.
    public func binaryCrossEntropyWithLogits(target: Tensor, weight: Tensor? = nil, positiveWeight: Tensor? = nil,
                                             reduction: LossReduction = .mean) -> Tensor {
        check(shape == target.shape, "binary_cross_entropy_with_logits: target shape \(target.shape) differs from "
              + "input shape \(shape)")
        for (name, t) in [("weight", weight), ("pos_weight", positiveWeight)] {
            if let t {
                check(ShapeMath.broadcast(t.shape, shape) == shape, "binary_cross_entropy_with_logits: \(name) of "
                      + "shape \(t.shape) does not broadcast to the input shape \(shape)")
            }
        }
        let negativeSoftplus = (-self).softplus()                        // -log sigmoid(x)
        var losses: Tensor
        if let positiveWeight {
            losses = (1 - target) * self + (1 + (positiveWeight - 1) * target) * negativeSoftplus
        } else {
            losses = (1 - target) * self + negativeSoftplus
        }
        if let weight { losses = losses * weight }
        return reducedLoss(losses, reduction)
    }

    /// Negative log-likelihood of log-probabilities (this tensor: (N, C), (N, C, d1, ...) or (C)) against class
    /// indices `targets` (N or N * d1 * ... of them, row-major; one for a (C) input), as
    /// `torch.nn.functional.nll_loss`. Targets equal to `ignoreIndex` contribute nothing; `weight` (C) weighs each
    /// class, and the mean divides by the total weight of the targets counted.
    public func nllLoss(targets: [Int], weight: Tensor? = nil, ignoreIndex: Int = -100,
                        reduction: LossReduction = .mean) -> Tensor {
        check(rank >= 1, "nll_loss: input of shape \(shape) has no class axis")
        let classAxis = rank == 1 ? 0 : 1
        let classes = shape[classAxis]
        var targetShape = shape
        targetShape.remove(at: classAxis)
        check(targets.count == targetShape.reduce(1, *),
              "nll_loss: \(targets.count) targets for input shape \(shape) (expected shape \(targetShape))")
        if let weight {
            check(weight.shape == [classes],
                  "nll_loss: weight of shape \(weight.shape) does not match the \(classes) classes of input \(shape)")
        }
        for t in targets where t != ignoreIndex {
            check(t >= 0 && t < classes, "nll_loss: target \(t) is out of range 0..<\(classes) for input shape "
                  + "\(shape)")
        }
        // The picked log-probability of each target: flat index (n, t, rest...) of the input.
        let inner = shape[(classAxis + 1)...].reduce(1, *)
        let picks = targets.enumerated().map { i, t -> Int32 in
            let (n, j) = (i / inner, i % inner)
            return Int32((n * classes + (t == ignoreIndex ? 0 : t)) * inner + j)
        }
        let kept = Tensor(shape: targetShape, scalars: targets.map { $0 == ignoreIndex ? 0 : 1 })
        var weights = kept
        if let weight {
            let w = weight.detached().scalars
            weights = Tensor(shape: targetShape, scalars: targets.map { $0 == ignoreIndex ? 0 : w[$0] })
        }
        let losses = -(gathered(picks, shape: targetShape) * weights)
        switch reduction {
        case .none: return losses
        case .sum: return losses.sum()
        case .mean: return losses.sum() / weights.sum()
        }
    }
}
