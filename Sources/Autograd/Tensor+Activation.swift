// MARK: - Activations and other elementwise functions
//
// Each is one elementwise kernel forward (`UnaryOp`) and one for its derivative; the vector-Jacobian product is
// g * f'(x), or g * f'(y) from the saved output where that is cheaper (tanh, sigmoid). Shapes are unchanged.

extension Tensor {
    /// The elementwise op `forward`, whose vjp is g * `derivative` (an elementwise function of `self`).
    private func elementwise(_ forward: UnaryOp<Scalar>, derivative: UnaryOp<Scalar>) -> Tensor {
        let cx = detached()
        return Tensor.record(applying(forward), inputs: [self]) { g in [g * cx.applying(derivative)] }
    }

    /// Hyperbolic tangent, as `torch.tanh`. vjp: g * (1 - y^2).
    public func tanh() -> Tensor {
        let y = applying(.tanh)
        return Tensor.record(y, inputs: [self]) { g in [g * (1 - y * y)] }
    }

    /// The logistic function 1 / (1 + e^-x), as `torch.sigmoid`. vjp: g * y * (1 - y).
    public func sigmoid() -> Tensor {
        let y = applying(.sigmoid)
        return Tensor.record(y, inputs: [self]) { g in [g * y * (1 - y)] }
    }

    /// log(1 + e^x), computed stably, as `torch.nn.functional.softplus` with beta 1. vjp: g * sigmoid(x).
    public func softplus() -> Tensor {
        elementwise(.softplus, derivative: .sigmoid)
    }

    /// The Gaussian error linear unit, as `torch.nn.functional.gelu`: x * Phi(x) with the normal CDF
    /// Phi(x) = (1 + erf(x / sqrt 2)) / 2 (`approximate: "none"`, the default), or PyTorch's tanh approximation
    /// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) (`approximate: "tanh"`).
    /// vjp (exact form): g * (Phi(x) + x phi(x)), phi the normal density.
    public func gelu(approximate: String = "none") -> Tensor {
        check(approximate == "none" || approximate == "tanh",
              "gelu: approximate must be \"none\" or \"tanh\", got \"\(approximate)\" (input shape \(shape))")
        return approximate == "tanh" ? elementwise(.geluTanh, derivative: .geluTanhDerivative)
                                     : elementwise(.gelu, derivative: .geluDerivative)
    }

    /// x for x > 0, `negativeSlope` * x otherwise, as `torch.nn.functional.leaky_relu` (default slope 0.01).
    /// vjp: g for x > 0, g * negativeSlope otherwise (also at 0, as PyTorch).
    public func leakyRelu(negativeSlope: Scalar = 0.01) -> Tensor {
        elementwise(.leakyRelu(negativeSlope), derivative: .leakyReluDerivative(negativeSlope))
    }

    /// |x|, as `torch.abs`. vjp: g * sign(x), 0 at x = 0 as PyTorch.
    public func abs() -> Tensor {
        elementwise(.abs, derivative: .sign)
    }

    /// Clamps into [min, max], as `torch.clamp` (whose bounds are Python numbers: Double here); a nil bound is
    /// absent (at least one must be given). When min > max every element becomes max, as in PyTorch; NaN stays NaN.
    /// vjp: g where min < x < max (compared in Double), 0 elsewhere, also at the bounds, as PyTorch.
    public func clamped(min: Double? = nil, max: Double? = nil) -> Tensor {
        check(min != nil || max != nil, "clamp: give at least one of min and max (input shape \(shape))")
        check(!(min?.isNaN ?? false) && !(max?.isNaN ?? false), "clamp: a bound is NaN (input shape \(shape))")
        let low = min ?? -.infinity, high = max ?? .infinity
        return elementwise(.clamp(Scalar(low), Scalar(high)), derivative: .inRangeMask(low, high))
    }
}
