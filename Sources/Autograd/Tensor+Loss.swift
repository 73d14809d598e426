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
