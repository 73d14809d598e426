import Autograd
import Models
import NN

// MARK: - The experiment's models in Double

/// The C4CNN and the CNN written once more as functions of their parameters, in `Double`, from the framework's
/// generic ops on their exact paths (im2col convolutions, no Winograd, no cached filters): the float64 truth for the
/// models' `Float` gradients. The layers follow `GroupEquivariantCNN` and `CNN` (see their doc comments); the
/// parameters carry the models' state-dict names. `scripts/gradient_accuracy.py` checks these gradients against
/// PyTorch's float64 ones on the same cases.
public enum DoubleModelMirror {
    /// The logits (N, 10) of `model` (`.c4cnn` or `.cnn`) with `parameters` on `input` (N, 1, 33, 33), recorded on
    /// the tape when the parameters require gradients. Throws `InvalidCase` for a missing parameter or one of the
    /// wrong shape.
    public static func logits(model: ModelName, parameters: [String: Tensor<Double>],
                              input: Tensor<Double>) throws -> Tensor<Double> {
        check(input.rank == 4 && input.shape[1] == 1 && input.shape[2] == 33 && input.shape[3] == 33,
              "DoubleModelMirror: input \(input.shape) must be (N, 1, 33, 33)")
        let expected = model.make(seed: 0).namedParameters
        for (name, parameter) in expected {
            guard let value = parameters[name] else { throw InvalidCase(reason: "no parameter \(name)") }
            guard value.shape == parameter.shape else {
                throw InvalidCase(reason: "parameter \(name) has shape \(value.shape), \(model.rawValue) needs "
                                  + "\(parameter.shape)")
            }
        }
        func p(_ name: String) -> Tensor<Double> { parameters[name]! }
        switch model {
        case .c4cnn: return try c4cnnLogits(input, p)
        case .cnn: return cnnLogits(input, p)
        default: throw InvalidCase(reason: "DoubleModelMirror has no \(model.rawValue); it has c4cnn and cnn")
        }
    }

    // MARK: C4CNN

    /// (N, 1, 33, 33) -> (N, 10): lifting conv, four group convs with ReLU and max pooling, group pooling, head.
    static func c4cnnLogits(_ x: Tensor<Double>, _ p: (String) -> Tensor<Double>) throws -> Tensor<Double> {
        let group = PlanarGroup.c4
        // Lifting: filter o * 4 + g is the weight (out, in, 3, 3) rotated by g.
        let lifting = try Tensor.stacked(group.elements.map { group.transformPlanes(p("liftingconv.weight"), by: $0) },
                                         axis: 1).rearranged("o g i h w -> (o g) i h w")
        var y = try x.conv2d(weight: lifting, bias: groupBias(p("liftingconv.bias")), padding: (1, 1))
            .rearranged("n (o g) h w -> n o g h w", ["g": 4])
        for (i, index) in [0, 3, 6, 9].enumerated() {
            // Filter (o * 4 + g, i * 4 + h) is plane h of the weight (out, in, 4, 3, 3) acted on by g.
            let w = p("groupconv_encoder.\(index).weight")
            let expanded = try Tensor.stacked(group.elements.map { group.act($0, onFeatureMap: w) }, axis: 1)
                .rearranged("o g i h kh kw -> (o g) (i h) kh kw")
            y = try y.rearranged("n i g h w -> n (i g) h w")
                .conv2d(weight: expanded, bias: groupBias(p("groupconv_encoder.\(index).bias")), padding: (1, 1))
                .rearranged("n (o g) h w -> n o g h w", ["g": 4]).relu()
            if i < 3 { y = y.maxPool3d(kernel: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1)) }
        }
        // Group pooling: the mean over the group axis, then the mean of the image's four rotations.
        let planeMean = y.mean(axes: [2])
        let rotations = group.elements.map { planeMean.rotated90($0, axes: (-2, -1)) }
        let invariant = rotations.dropFirst().reduce(rotations[0], +) * 0.25
        return head(invariant.flattened(from: 1), p, layers: [0, 2, 4])
    }

    /// The bias (out) repeated over the four group elements: (out * 4), index o * 4 + g.
    static func groupBias(_ b: Tensor<Double>) throws -> Tensor<Double> {
        try b.repeated("o -> (o g)", ["g": 4])
    }

    // MARK: CNN

    /// (N, 1, 33, 33) -> (N, 10): five 3x3 convs with ReLU, max pooling after the second to fourth, head.
    static func cnnLogits(_ x: Tensor<Double>, _ p: (String) -> Tensor<Double>) -> Tensor<Double> {
        var y = x.conv2d(weight: p("first_conv.weight"), bias: p("first_conv.bias")).relu()
        for (i, index) in [0, 3, 6, 9].enumerated() {
            y = y.conv2d(weight: p("convs.\(index).weight"), bias: p("convs.\(index).bias")).relu()
            if i < 3 { y = y.maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        }
        return head(y.flattened(from: 1), p, layers: [0, 2])
    }

    // MARK: Head

    /// Linear layers `head.<index>` with a ReLU between consecutive ones.
    static func head(_ x: Tensor<Double>, _ p: (String) -> Tensor<Double>, layers: [Int]) -> Tensor<Double> {
        var y = x
        for (i, index) in layers.enumerated() {
            if i > 0 { y = y.relu() }
            y = Tensor.linear(y, weight: p("head.\(index).weight"), bias: p("head.\(index).bias"))
        }
        return y
    }
}
