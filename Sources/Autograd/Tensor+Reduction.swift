// MARK: - Reductions over axes

extension Tensor {
    /// Normalised, sorted, de-duplicated axes; all axes when `axes` is nil.
    func reductionAxes(_ axes: [Int]?, op: String) -> [Bool] {
        var reduced = [Bool](repeating: axes == nil, count: rank)
        for axis in axes ?? [] { reduced[ShapeMath.axis(axis, rank: rank, op: op)] = true }
        return reduced
    }

    /// Reduces with a kernel, keeping reduced axes as size 1 (no recording).
    func reducing(_ op: ReduceOp, _ reduced: [Bool]) -> Tensor {
        let kept = (0..<rank).map { reduced[$0] ? 1 : shape[$0] }
        return Tensor(shape: kept) { out in
            scalars.withUnsafeBufferPointer { src in
                Scalar.reduce(op, src.baseAddress!, shape: shape, reduced: reduced, out.baseAddress!)
            }
        }
    }

    /// Drops the reduced axes unless `keepingDimensions`.
    private func finishing(_ kept: Tensor, _ reduced: [Bool], keepingDimensions: Bool) -> Tensor {
        keepingDimensions ? kept : kept.reshaped((0..<rank).filter { !reduced[$0] }.map { shape[$0] })
    }

    /// Sum over `axes` (all when nil). Shape: reduced axes removed, or kept as 1 with `keepingDimensions`.
    public func sum(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        let reduced = reductionAxes(axes, op: "sum")
        let inputShape = shape
        let kept = Tensor.record(reducing(.sum, reduced), inputs: [self]) { g in [g.expanded(to: inputShape)] }
        return finishing(kept, reduced, keepingDimensions: keepingDimensions)
    }

    /// Mean over `axes` (all when nil).
    public func mean(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        let reduced = reductionAxes(axes, op: "mean")
        let n = (0..<rank).filter { reduced[$0] }.reduce(1) { $0 * shape[$1] }
        return sum(axes: axes, keepingDimensions: keepingDimensions) * (1 / Scalar(n))
    }

    /// Maximum over `axes` (all when nil). The gradient is shared evenly among tied maxima (as `torch.amax`).
    public func max(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        let reduced = reductionAxes(axes, op: "max")
        let kept = reducing(.max, reduced)
        let cx = detached()
        let result = Tensor.record(kept, inputs: [self]) { g in
            // maximumShare is 0.5 where x == max and 0 where x < max (x > max cannot happen).
            let isMax = Tensor.combining(cx, kept, .maximumShare, name: "max").applying(.scale(2))
            let ties = isMax.reducing(.sum, reduced)
            return [isMax * (g / ties)]
        }
        return finishing(result, reduced, keepingDimensions: keepingDimensions)
    }

    /// Sums a tensor of a broadcast shape back to `target` (the inverse of broadcasting `target` to `shape`).
    public func sum(toShape target: [Int]) -> Tensor {
        if shape == target { return unchangedResult }
        check(ShapeMath.broadcast(target, shape) == shape,
              "sum(toShape:): \(target) does not broadcast to \(shape)")
        let lead = rank - target.count
        let axes = (0..<rank).filter { $0 < lead || target[$0 - lead] == 1 && shape[$0] != 1 }
        return sum(axes: axes, keepingDimensions: true).reshaped(target)
    }
}
