// MARK: - Einops-style rearrange, repeat and reduce
//
// Patterns name axes on both sides of "->" (see EinopsPattern.swift for the grammar and its checks). Each call looks
// its plan up in a shared cache (parsing the pattern on the first use for an input rank and set of given names) and
// lowers to movement and reduction ops, so gradients flow through those ops' own backward passes.

/// How `reduced` combines the elements along the axes that its pattern drops.
public enum EinopsReduction: String, Sendable, CaseIterable {
    /// The sum of the elements; the gradient is copied to each.
    case sum
    /// The mean of the elements; each gets the gradient divided by their count.
    case mean
    /// Gradient shared evenly among tied maxima.
    case max
    /// Gradient shared evenly among tied minima.
    case min
    /// The product; its gradient is the product of the other elements, exact where some are 0.
    case prod
}

extension Tensor {
    /// Reorders, splits and merges axes as the pattern says, with the semantics of einops' `rearrange`.
    ///
    /// - Parameters:
    ///   - pattern: input axes, "->", output axes; every axis appears on both sides. Parentheses group axes into one
    ///     dimension ("b (h w) c" or "b c h w -> b (c h w)"); `1` or `()` is a unit dimension; `...` stands for the
    ///     axes not named (bare on the left; bare or as "(...)" on the right).
    ///   - axes: sizes by name; needed where a group on the left has more than one axis of unknown size.
    /// - Throws: `EinopsError` for a malformed pattern or one that does not fit the input's shape.
    ///
    /// Example: `x.rearranged("b (o c) w h -> b o c w h", ["c": 4])` splits dimension 1 into (size / 4, 4).
    public func rearranged(_ pattern: String, _ axes: [String: Int] = [:]) throws -> Tensor {
        try applyingEinops(pattern, .rearrange, axes, reduction: nil)
    }

    /// Rearranges and adds new axes by copying, with the semantics of einops' `repeat`.
    ///
    /// Axes only on the right side are new: their sizes come from `axes` or are written as numbers in the pattern.
    /// "h w -> h w c" with c = 3 copies along a new last axis; "h w -> (r h) w" with r = 2 tiles the rows, while
    /// "h w -> (h r) w" repeats each row in place; "h w -> h w 3" adds an axis of size 3. The gradient sums over the
    /// copies.
    public func repeated(_ pattern: String, _ axes: [String: Int] = [:]) throws -> Tensor {
        try applyingEinops(pattern, .repeat, axes, reduction: nil)
    }

    /// Rearranges and reduces with `op` over the axes the pattern drops, with the semantics of einops' `reduce`.
    ///
    /// Example: `x.reduced("b c (h 2) (w 2) -> b c h w", .max)` is 2x2 max pooling; "b c h w -> b c" with .mean is
    /// global average pooling; "... -> " reduces to a scalar.
    public func reduced(_ pattern: String, _ op: EinopsReduction, _ axes: [String: Int] = [:]) throws -> Tensor {
        try applyingEinops(pattern, .reduce, axes, reduction: op)
    }

    /// Looks up (or builds) the plan and runs it: reshape to elementary axes, reduce, permute, insert and expand new
    /// axes, reshape to the output's dimensions.
    func applyingEinops(_ pattern: String, _ operation: EinopsOperation, _ axes: [String: Int],
                        reduction: EinopsReduction?) throws -> Tensor {
        let plan = try EinopsPlanCache.shared.plan(pattern, operation, givenNames: Array(axes.keys), shape: shape)
        let sizes = try plan.axisSizes(shape: shape, given: axes)
        if plan.hasNewAxes {
            // New axes multiply the element count by sizes taken from the caller: refuse a result that cannot fit in
            // memory (or whose count overflows) before expanding to it.
            let outputAxes = plan.outputAxes.map { sizes[$0] }
            var bytes = 1, overflow = false
            for size in outputAxes + [MemoryLayout<Scalar>.stride] where !overflow {
                (bytes, overflow) = bytes.multipliedReportingOverflow(by: size)
            }
            if overflow || bytes > RegularFile.memoryBudget {
                throw EinopsError(operation: operation.rawValue, pattern: pattern,
                                  reason: "the result of axis sizes \(outputAxes) would take "
                                  + (overflow ? "more bytes than can be counted" : RegularFile.size(bytes))
                                  + ", more than the \(RegularFile.size(RegularFile.memoryBudget)) of memory this "
                                  + "machine has")
            }
        }

        var result = reshaped((0..<plan.inputAxisCount).map { sizes[$0] })
        if !plan.reducedAxes.isEmpty {
            let dropped = plan.reducedAxes
            switch reduction ?? .sum {
            case .sum: result = result.sum(axes: dropped)
            case .mean: result = result.mean(axes: dropped)
            case .max: result = result.max(axes: dropped)
            case .min: result = result.min(axes: dropped)
            case .prod: result = result.product(axes: dropped)
            }
        }
        result = result.permuted(plan.permutation)
        if plan.hasNewAxes {
            result = result.reshaped(plan.outputAxes.map { $0 < plan.inputAxisCount ? sizes[$0] : 1 })
            result = result.expanded(to: plan.outputAxes.map { sizes[$0] })
        }
        return result.reshaped(plan.outputGroups.map { group in group.reduce(1) { $0 * sizes[$1] } })
    }
}
