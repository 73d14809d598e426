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
        // The kernel initialises every element of the result.
        return Tensor(shape: kept, scalars: [Scalar](fillingAll: kept.reduce(1, *)) { out in
            scalars.withUnsafeBufferPointer { src in
                Scalar.reduce(op, src.baseAddress!, shape: shape, reduced: reduced, out)
            }
        })
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

// MARK: - Minimum, product and the positions of extrema

extension Tensor {
    /// Minimum over `axes` (all when nil), as `torch.amin`. The gradient is shared evenly among tied minima.
    public func min(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        let reduced = reductionAxes(axes, op: "min")
        let kept = reducing(.min, reduced)
        let cx = detached()
        let result = Tensor.record(kept, inputs: [self]) { g in
            // maximumShare(kept, x) is 0.5 where x == min and 0 where x > min.
            let isMin = Tensor.combining(kept, cx, .maximumShare, name: "min").applying(.scale(2))
            let ties = isMin.reducing(.sum, reduced)
            return [isMin * (g / ties)]
        }
        return finishing(result, reduced, keepingDimensions: keepingDimensions)
    }

    /// Product over `axes` (all when nil), as `torch.prod` (applied over each axis in turn).
    /// vjp: g times the product of the other elements of the element's line, exact also where elements are 0.
    public func product(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        let reduced = reductionAxes(axes, op: "prod")
        let kept = reducing(.prod, reduced)
        let cx = detached()
        let result = Tensor.record(kept, inputs: [self]) { g in
            // Lines along the reduced axes become the rows of a (lines, length) matrix.
            let order = (0..<cx.rank).filter { !reduced[$0] } + (0..<cx.rank).filter { reduced[$0] }
            let length = (0..<cx.rank).filter { reduced[$0] }.reduce(1) { $0 * cx.shape[$1] }
            let lines = length == 0 ? 0 : cx.count / length
            let rows = cx.permuted(order)
            let others = Tensor(shape: rows.shape) { out in
                rows.scalars.withUnsafeBufferPointer { x in
                    if let base = x.baseAddress, let dst = out.baseAddress {
                        Scalar.exclusiveProducts(base, dst, lines: lines, length: length)
                    }
                }
            }
            var inverse = [Int](repeating: 0, count: cx.rank)
            for (i, axis) in order.enumerated() { inverse[axis] = i }
            return [others.permuted(inverse) * g]
        }
        return finishing(result, reduced, keepingDimensions: keepingDimensions)
    }

    /// The flat position of each line's first maximum (first NaN, when there is one) along `axis`, as
    /// `torch.argmax`; over the whole tensor (a rank-0 result) when `axis` is nil. Not differentiable.
    public func argmax(axis: Int? = nil, keepingDimensions: Bool = false) -> IndexTensor {
        argExtremum(axis: axis, keepingDimensions: keepingDimensions, largest: true, op: "argmax")
    }

    /// The position of each line's first minimum along `axis`, as `torch.argmin`.
    public func argmin(axis: Int? = nil, keepingDimensions: Bool = false) -> IndexTensor {
        argExtremum(axis: axis, keepingDimensions: keepingDimensions, largest: false, op: "argmin")
    }

    private func argExtremum(axis: Int?, keepingDimensions: Bool, largest: Bool, op: String) -> IndexTensor {
        check(count > 0, "\(op): the input of shape \(shape) is empty")
        guard let axis else {
            let position = scalars.withUnsafeBufferPointer {
                Scalar.extremumPositions($0.baseAddress!, lines: 1, length: count, inner: 1, largest: largest)[0]
            }
            return IndexTensor(shape: keepingDimensions ? [Int](repeating: 1, count: rank) : [], indices: [position])
        }
        check(axis >= -Swift.max(rank, 1) && axis < Swift.max(rank, 1),
              "\(op): axis \(axis) is out of range for the input of shape \(shape)")
        if rank == 0 { return IndexTensor(shape: [], indices: [0]) }
        let a = (axis + rank) % rank
        check(shape[a] > 0, "\(op): axis \(axis) of the input of shape \(shape) is empty")
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        let positions = scalars.withUnsafeBufferPointer {
            Scalar.extremumPositions($0.baseAddress!, lines: outer, length: shape[a], inner: inner, largest: largest)
        }
        var outShape = shape
        if keepingDimensions { outShape[a] = 1 } else { outShape.remove(at: a) }
        return IndexTensor(shape: outShape, indices: positions)
    }
}
