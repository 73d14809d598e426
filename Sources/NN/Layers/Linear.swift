import Autograd

/// y = x W^T + b. Input (N, inFeatures) -> output (N, outFeatures). Weight (out, in) as in PyTorch.
public final class Linear: Module {
    /// Weight (out, in).
    public let weight: Parameter
    /// Bias (out); nil without bias.
    public let bias: Parameter?
    /// Input and output sizes.
    public let inFeatures: Int, outFeatures: Int

    /// PyTorch's default initialisation: weight and bias uniform in +-1/sqrt(inFeatures).
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, generator: inout SeededRandom) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = 1 / Double(inFeatures).squareRoot()
        weight = Parameter(.uniform(shape: [outFeatures, inFeatures], low: -bound, high: bound, generator: &generator))
        self.bias = bias
            ? Parameter(.uniform(shape: [outFeatures], low: -bound, high: bound, generator: &generator)) : nil
    }

    /// The same layer with its parameters drawn from the global generator (`manualSeed(_:)` of Autograd).
    public convenience init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        self.init(inFeatures, outFeatures, bias: bias, generator: &GlobalGenerator.shared.generator)
    }

    /// (N, in) -> (N, out); a `ShapeError` for any other shape.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank == 2, input.shape[1] == inFeatures else {
            throw ShapeError(layer: "Linear(\(inFeatures), \(outFeatures))", expected: "(N, \(inFeatures))",
                             given: input.shape)
        }
        return Tensor.linear(input, weight: weight.value, bias: bias?.value)
    }
}

/// Flattens all axes after the first: (N, ...) -> (N, product).
public final class Flatten: Module {
    /// A flattening layer (no parameters).
    override public init() {}
    /// (N, ...) -> (N, product of the rest); (N) -> (N, 1).
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank >= 1 else { throw ShapeError(layer: "Flatten", expected: "(N, ...)", given: input.shape) }
        return input.rank == 1 ? input.unsqueezed(1) : input.flattened(from: 1)
    }
}

/// max(x, 0), elementwise.
public final class ReLU: Module {
    /// A ReLU layer (no parameters).
    override public init() {}
    /// max(x, 0), same shape.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> { input.relu() }
}
