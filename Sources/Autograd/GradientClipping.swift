import Foundation

// MARK: - Gradient clipping by total norm

/// Rescales the accumulated gradients of `tensors` so that their total norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_`, and returns the total norm before clipping.
///
/// The total norm is the `normType`-norm (2 by default; `.infinity` for the largest magnitude) of all gradient
/// elements together, computed in Double. When it exceeds `maxNorm`, every gradient is multiplied by
/// maxNorm / (total + 1e-6). Tensors without a gradient are skipped; the result is 0 when none has one. A NaN or
/// infinite total is returned as is (and then scales every gradient to NaN, as PyTorch's default does).
@discardableResult
public func clipGradientNorm<Scalar: TensorScalar>(_ tensors: [Tensor<Scalar>], maxNorm: Double,
                                                   normType: Double = 2) -> Double {
    check(maxNorm >= 0 && !maxNorm.isNaN, "clip_grad_norm: maxNorm \(maxNorm) must be a non-negative number")
    check(normType > 0, "clip_grad_norm: normType \(normType) must be positive")
    let nodes = tensors.compactMap(\.node).filter { $0.grad != nil }
    var total = 0.0
    for node in nodes {
        for g in node.grad! {
            let m = Swift.abs(Double(g))
            if normType == .infinity { total = Swift.max(total, m.isNaN ? .nan : m) }
            else if normType == 2 { total += m * m }
            else { total += Foundation.pow(m, normType) }
        }
    }
    if normType == 2 { total = total.squareRoot() }
    else if normType != .infinity { total = Foundation.pow(total, 1 / normType) }
    let coefficient = maxNorm / (total + 1e-6)
    if coefficient < 1 || total.isNaN {
        let scale = Scalar(Swift.min(coefficient, 1))
        for node in nodes { node.grad = node.grad!.map { $0 * scale } }
    }
    return total
}
