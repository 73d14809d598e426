import Autograd

// MARK: - Activation layers
//
// Parameter-free wrappers of the elementwise ops, named as PyTorch's `torch.nn` classes; shapes are unchanged.

/// tanh(x), elementwise, as `torch.nn.Tanh`.
public final class Tanh: Module {
    override public init() {}
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> { input.tanh() }
}

/// 1 / (1 + e^-x), elementwise, as `torch.nn.Sigmoid`.
public final class Sigmoid: Module {
    override public init() {}
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> { input.sigmoid() }
}

/// x * Phi(x), elementwise, as `torch.nn.GELU`: `approximate` is "none" (the exact erf form) or "tanh".
public final class GELU: Module {
    public let approximate: String

    public init(approximate: String = "none") {
        check(approximate == "none" || approximate == "tanh",
                     "GELU: approximate must be \"none\" or \"tanh\", got \"\(approximate)\"")
        self.approximate = approximate
    }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        input.gelu(approximate: approximate)
    }
}

/// x for x > 0, negativeSlope * x otherwise, as `torch.nn.LeakyReLU` (default slope 0.01).
public final class LeakyReLU: Module {
    public let negativeSlope: Float

    public init(negativeSlope: Float = 0.01) { self.negativeSlope = negativeSlope }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        input.leakyRelu(negativeSlope: negativeSlope)
    }
}

/// Softmax along `dim` (negative counts from the end), as `torch.nn.Softmax(dim)`.
public final class Softmax: Module {
    public let dim: Int

    public init(dim: Int) { self.dim = dim }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard dim >= -input.rank && dim < input.rank else {
            throw ShapeError(layer: "Softmax(dim: \(dim))", expected: "at least \(dim < 0 ? -dim : dim + 1) axes",
                             given: input.shape)
        }
        return input.softmax(axis: dim)
    }
}

/// log(softmax(x)) along `dim`, as `torch.nn.LogSoftmax(dim)`.
public final class LogSoftmax: Module {
    public let dim: Int

    public init(dim: Int) { self.dim = dim }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard dim >= -input.rank && dim < input.rank else {
            throw ShapeError(layer: "LogSoftmax(dim: \(dim))", expected: "at least \(dim < 0 ? -dim : dim + 1) axes",
                             given: input.shape)
        }
        return input.logSoftmax(axis: dim)
    }
}

/// The input unchanged, as `torch.nn.Identity` (a placeholder in a `Sequential`).
public final class Identity: Module {
    override public init() {}
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> { input }
}
