import Autograd

// MARK: - Gradient clipping over parameters

/// Rescales the gradients of `parameters` so that their total `normType`-norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_`, and returns the total norm before clipping (see Autograd's
/// `clipGradientNorm` over tensors).
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Double, normType: Double = 2) -> Double {
    clipGradientNorm(parameters.map(\.value), maxNorm: maxNorm, normType: normType)
}

/// The same over every parameter of `module`.
@discardableResult
public func clipGradientNorm(_ module: Module, maxNorm: Double, normType: Double = 2) -> Double {
    clipGradientNorm(module.parameters(), maxNorm: maxNorm, normType: normType)
}
