// MARK: - Softmax and log-sum-exp
//
// Both are built on stable pieces whose own vjps compose to the textbook ones:
//   softmax(x) = exp(x - m) / sum(exp(x - m));  dx = y * (g - sum(g * y))
//   logsumexp(x) = m + log(sum(exp(x - m)));    dx = g * exp(x - logsumexp(x)) = g * softmax(x)
// with m the (constant) maximum over the reduced axes, replaced by 0 where it is infinite, as PyTorch does. Both
// functions are unchanged by a constant shift, so treating m as a constant gives the exact gradient. (exp of
// log_softmax would round x - (m + log sum) to the ulp of x: 3e-5 relative for logits near 1000.)

extension Tensor {
    /// Softmax along `axis` (negative counts from the end), as `torch.softmax(input, dim)`: each line along the axis
    /// is exp(x) / sum(exp(x)), computed without overflow. Shape unchanged.
    public func softmax(axis: Int = -1) -> Tensor {
        check(rank > 0, "softmax: the input of shape \(shape) has no axis \(axis)")
        check(axis >= -rank && axis < rank, "softmax: axis \(axis) is out of range for the input of shape \(shape)")
        let shifted = (self - maximumShift(over: [(axis + rank) % rank])).exp()
        return shifted / shifted.sum(axes: [axis], keepingDimensions: true)
    }

    /// log(sum(exp(x))) over `axes` (negative count from the end), as `torch.logsumexp(input, dim, keepdim)`, without
    /// overflow. Shape: the reduced axes removed, or kept as 1 with `keepingDimensions`. A line of -inf gives -inf.
    public func logSumExp(axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        check(!axes.isEmpty, "logsumexp: give at least one axis to reduce (input shape \(shape))")
        for axis in axes {
            check(axis >= -Swift.max(rank, 1) && axis < Swift.max(rank, 1),
                  "logsumexp: axis \(axis) is out of range for the input of shape \(shape)")
        }
        let normalized = Set(axes.map { rank == 0 ? 0 : ($0 + rank) % rank })
        check(normalized.count == axes.count, "logsumexp: axis repeated in \(axes) (input shape \(shape))")
        if rank == 0 { return unchangedResult }
        let reducedAxes = Array(normalized).sorted()
        let shift = maximumShift(over: reducedAxes)
        let total = (self - shift).exp().sum(axes: reducedAxes, keepingDimensions: true).log() + shift
        return keepingDimensions ? total : total.reshaped((0..<rank).filter { !normalized.contains($0) }
            .map { shape[$0] })
    }

    /// The maximum over `axes` (kept as size 1), a constant; infinite maxima (a line of -inf, or one holding +inf)
    /// shift by 0 instead.
    private func maximumShift(over axes: [Int]) -> Tensor {
        withoutGradients { detached().max(axes: axes, keepingDimensions: true).applying(.finiteOrZero) }
    }

    /// log(sum(exp(x))) along one axis.
    public func logSumExp(axis: Int, keepingDimensions: Bool = false) -> Tensor {
        logSumExp(axes: [axis], keepingDimensions: keepingDimensions)
    }
}
