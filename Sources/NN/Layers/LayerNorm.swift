import Autograd

/// Layer normalisation over the trailing axes `normalizedShape`, as `torch.nn.LayerNorm`: mean and biased variance
/// over those axes, then an elementwise affine map. Parameters `weight` (ones) and `bias` (zeros) of shape
/// `normalizedShape`, when `elementwiseAffine` (and `bias`) are on.
public final class LayerNorm: Module {
    public let normalizedShape: [Int]
    public let epsilon: Double
    public let weight: Parameter?
    public let bias: Parameter?

    public init(_ normalizedShape: [Int], epsilon: Double = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) {
        check(!normalizedShape.isEmpty && normalizedShape.allSatisfy { $0 > 0 },
                     "LayerNorm: normalized shape \(normalizedShape) must be a non-empty list of positive sizes")
        self.normalizedShape = normalizedShape
        self.epsilon = epsilon
        weight = elementwiseAffine ? Parameter(Tensor(repeating: 1, shape: normalizedShape)) : nil
        self.bias = elementwiseAffine && bias ? Parameter(Tensor(zeros: normalizedShape)) : nil
    }

    /// Normalises over the last axis of size `features`.
    public convenience init(_ features: Int, epsilon: Double = 1e-5, elementwiseAffine: Bool = true) {
        self.init([features], epsilon: epsilon, elementwiseAffine: elementwiseAffine)
    }

    override public var localParameters: [(name: String, parameter: Parameter)] {
        (weight.map { [("weight", $0)] } ?? []) + (bias.map { [("bias", $0)] } ?? [])
    }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank >= normalizedShape.count, Array(input.shape.suffix(normalizedShape.count)) == normalizedShape
        else {
            throw ShapeError(layer: "LayerNorm(\(normalizedShape))", expected: "(..., "
                             + normalizedShape.map(String.init).joined(separator: ", ") + ")", given: input.shape)
        }
        return input.layerNorm(normalizedShape: normalizedShape, weight: weight?.value, bias: bias?.value,
                               epsilon: epsilon)
    }
}
