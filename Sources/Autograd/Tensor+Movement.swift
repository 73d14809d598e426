// MARK: - Movement ops
//
// Each is a strided copy; its gradient is the inverse movement (reshape <-> reshape, permute <-> inverse permute,
// expand <-> sum, flip <-> flip, slice <-> pad). rot90, concat and stack are built from them.

extension Tensor {
    /// Copies a strided view of this tensor into a new contiguous tensor of `shape` (no recording).
    func gathering(shape: [Int], offset: Int, strides: [Int]) -> Tensor {
        Tensor(shape: shape, scalars: [Scalar](fillingAll: shape.reduce(1, *)) { out in
            scalars.withUnsafeBufferPointer { src in
                Scalar.stridedCopy(src.baseAddress!, srcOffset: offset, srcStrides: strides,
                                   out, dstOffset: 0, dstStrides: ShapeMath.strides(shape),
                                   shape: shape, accumulate: false)
            }
        })
    }

    // MARK: Reshape

    /// The same elements in a new shape; one dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let hole = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != hole }.reduce(1) { $0 * $1.element }
            check(known > 0 && count % known == 0, "reshape: cannot reshape \(shape) to \(newShape)")
            target[hole] = count / known
        }
        check(target.allSatisfy { $0 >= 0 } && target.reduce(1, *) == count,
              "reshape: cannot reshape \(shape) to \(newShape)")
        if target == shape { return unchangedResult }
        let inputShape = shape
        return Tensor.record(Tensor(shape: target, scalars: scalars), inputs: [self]) { g in
            [g.reshaped(inputShape)]
        }
    }

    /// Inserts an axis of size 1 at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        let a = ShapeMath.axis(axis, rank: rank + 1, op: "unsqueeze")
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Flattens the axes from `startAxis` on into one.
    public func flattened(from startAxis: Int = 1) -> Tensor {
        let a = ShapeMath.axis(startAxis, rank: rank, op: "flatten")
        return reshaped(Array(shape[..<a]) + [shape[a...].reduce(1, *)])
    }

    // MARK: Permute

    /// Reorders the axes: result axis i is input axis `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        check(order.count == rank && Set(order) == Set(0..<rank),
              "permute: \(order) is not a permutation of the axes of \(shape)")
        if order == Array(0..<rank) { return unchangedResult }
        let strides = ShapeMath.strides(shape)
        let result = gathering(shape: order.map { shape[$0] }, offset: 0, strides: order.map { strides[$0] })
        var inverse = [Int](repeating: 0, count: rank)
        for (i, axis) in order.enumerated() { inverse[axis] = i }
        return Tensor.record(result, inputs: [self]) { g in [g.permuted(inverse)] }
    }

    /// Swaps two axes.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(ShapeMath.axis(a, rank: rank, op: "transpose"), ShapeMath.axis(b, rank: rank, op: "transpose"))
        return permuted(order)
    }

    // MARK: Expand

    /// Broadcasts to `target` (NumPy rules: size-1 or missing leading axes are repeated). Gradient: sum back.
    public func expanded(to target: [Int]) -> Tensor {
        check(ShapeMath.broadcast(shape, target) == target, "expand: cannot expand \(shape) to \(target)")
        if target == shape { return unchangedResult }
        let result = gathering(shape: target, offset: 0, strides: ShapeMath.broadcastStrides(shape, to: target))
        return Tensor.record(result, inputs: [self]) { g in [g] }  // accumulate() sums the broadcast back
    }

    // MARK: Flip and rot90

    /// Reverses the order along each of `axes`.
    public func flipped(_ axes: [Int]) -> Tensor {
        let normalized = Set(axes.map { ShapeMath.axis($0, rank: rank, op: "flip") })
        if normalized.isEmpty { return unchangedResult }
        var strides = ShapeMath.strides(shape)
        var offset = 0
        for axis in normalized where shape[axis] > 0 {
            offset += (shape[axis] - 1) * strides[axis]
            strides[axis] = -strides[axis]
        }
        let result = gathering(shape: shape, offset: offset, strides: strides)
        return Tensor.record(result, inputs: [self]) { g in [g.flipped(axes)] }
    }

    /// Rotates by 90 degrees `k` times in the plane of `axes`, from the first axis towards the second, as
    /// `torch.rot90`. Any integer k; k = 1 is flip of the second axis then transpose.
    public func rotated90(_ k: Int = 1, axes: (Int, Int) = (-2, -1)) -> Tensor {
        let a0 = ShapeMath.axis(axes.0, rank: rank, op: "rot90"), a1 = ShapeMath.axis(axes.1, rank: rank, op: "rot90")
        check(a0 != a1, "rot90: the two axes must differ, got \(axes)")
        switch ((k % 4) + 4) % 4 {
        case 1: return flipped([a1]).transposed(a0, a1)
        case 2: return flipped([a0, a1])
        case 3: return transposed(a0, a1).flipped([a1])
        default: return unchangedResult
        }
    }

    // MARK: Slice and pad

    /// The elements `lower[i] ..< upper[i]` along each axis (stride 1).
    public func sliced(lower: [Int], upper: [Int]) -> Tensor {
        check(lower.count == rank && upper.count == rank
              && (0..<rank).allSatisfy { 0 <= lower[$0] && lower[$0] <= upper[$0] && upper[$0] <= shape[$0] },
              "slice: bounds \(lower)..<\(upper) do not fit shape \(shape)")
        let strides = ShapeMath.strides(shape)
        let offset = zip(lower, strides).reduce(0) { $0 + $1.0 * $1.1 }
        let outShape = zip(lower, upper).map { $1 - $0 }
        if outShape == shape { return unchangedResult }
        let inputShape = shape
        let result = gathering(shape: outShape, offset: offset, strides: strides)
        return Tensor.record(result, inputs: [self]) { g in
            [g.padded(before: lower, after: (0..<inputShape.count).map { inputShape[$0] - upper[$0] })]
        }
    }

    /// `sliced` along one axis.
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = ShapeMath.axis(axis, rank: rank, op: "slice")
        var lower = [Int](repeating: 0, count: rank), upper = shape
        lower[a] = range.lowerBound
        upper[a] = range.upperBound
        return sliced(lower: lower, upper: upper)
    }

    /// Pads with `value` (default 0): `before[i]` elements before and `after[i]` after along each axis.
    public func padded(before: [Int], after: [Int], value: Scalar = 0) -> Tensor {
        check(before.count == rank && after.count == rank && (before + after).allSatisfy { $0 >= 0 },
              "pad: widths \(before), \(after) do not fit shape \(shape)")
        let outShape = (0..<rank).map { shape[$0] + before[$0] + after[$0] }
        if outShape == shape { return unchangedResult }
        let outStrides = ShapeMath.strides(outShape)
        let offset = zip(before, outStrides).reduce(0) { $0 + $1.0 * $1.1 }
        var result = Tensor(repeating: value, shape: outShape)
        result.scalars.withUnsafeMutableBufferPointer { dst in
            scalars.withUnsafeBufferPointer { src in
                Scalar.stridedCopy(src.baseAddress!, srcOffset: 0, srcStrides: ShapeMath.strides(shape),
                                   dst.baseAddress!, dstOffset: offset, dstStrides: outStrides,
                                   shape: shape, accumulate: false)
            }
        }
        let inputShape = shape
        return Tensor.record(result, inputs: [self]) { g in
            [g.sliced(lower: before, upper: (0..<inputShape.count).map { before[$0] + inputShape[$0] })]
        }
    }

    // MARK: Concat and stack

    /// Joins tensors along `axis`; all other axes must agree.
    public static func concatenated(_ tensors: [Tensor], axis: Int) -> Tensor {
        check(!tensors.isEmpty, "concat: no tensors")
        let first = tensors[0]
        let a = ShapeMath.axis(axis, rank: first.rank, op: "concat")
        for t in tensors {
            check(t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == a || t.shape[$0] == first.shape[$0] },
                  "concat: shapes \(first.shape) and \(t.shape) differ off axis \(axis)")
        }
        var outShape = first.shape
        outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let outStrides = ShapeMath.strides(outShape)
        let sizes = tensors.map { $0.shape[a] }
        var starts = [0]
        for size in sizes.dropLast() { starts.append(starts[starts.count - 1] + size) }
        // The parts tile the axis, so their copies write every element of the result.
        let result = Tensor(shape: outShape, scalars: [Scalar](fillingAll: outShape.reduce(1, *)) { dst in
            for (t, start) in zip(tensors, starts) {
                t.scalars.withUnsafeBufferPointer { src in
                    Scalar.stridedCopy(src.baseAddress!, srcOffset: 0, srcStrides: ShapeMath.strides(t.shape),
                                       dst, dstOffset: start * outStrides[a], dstStrides: outStrides,
                                       shape: t.shape, accumulate: false)
                }
            }
        })
        return record(result, inputs: tensors) { g in
            (0..<sizes.count).map { g.sliced(axis: a, starts[$0] ..< starts[$0] + sizes[$0]) }
        }
    }

    /// Stacks equally shaped tensors along a new axis.
    public static func stacked(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        check(!tensors.isEmpty, "stack: no tensors")
        for t in tensors {
            check(t.shape == tensors[0].shape, "stack: shapes \(tensors[0].shape) and \(t.shape) differ")
        }
        let a = ShapeMath.axis(axis, rank: tensors[0].rank + 1, op: "stack")
        return concatenated(tensors.map { $0.unsqueezed(a) }, axis: a)
    }
}
