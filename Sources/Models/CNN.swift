import Autograd
import NN

/// The plain CNN baseline of the experiment.
///
/// (N, 1, 33, 33) -> conv 1->8 (k3) -> ReLU -> four convs 8->16->32->64->128 (k3, no padding), each with ReLU and,
/// after the first three, MaxPool2d(3, 2, 1): 31 -> 29 -> 15 -> 13 -> 7 -> 5 -> 3 -> 1 -> 128 -> Linear 32 -> ReLU
/// -> 10 logits. Parameter names match the original PyTorch module: `first_conv.*`, `convs.{0,3,6,9}.*`,
/// `head.{0,2}.*`. The convs pool before each ReLU, the same function as the original's ReLU then pooling.
public final class CNN: Module {
    /// Conv 1 -> 8 (k3, no padding): (N, 1, 33, 33) -> (N, 8, 31, 31); `first_conv`.
    public let firstConv: Conv2d
    /// Batch norm after the first conv (strong recipe only).
    public let firstNorm: BatchNorm?
    /// The four convolutions with their ReLUs and poolings (and batch norms): (N, 8, 31, 31) -> (N, 128, 1, 1);
    /// `convs`.
    public let convs: Sequential
    /// Linear 128 -> 32 -> 10 with a ReLU (and dropout): (N, 128) -> (N, 10); `head`.
    public let head: Sequential
    /// The input this model takes: (N, 1, side, side).
    public let side = 33

    /// The CNN with parameters drawn from `seed`.
    ///
    /// - Parameters:
    ///   - seed: seeds the generator of the initial parameters.
    ///   - batchNorm: batch norm after every convolution, before its ReLU (the strong recipe).
    ///   - dropout: dropout probability before the hidden linear layer (0: none).
    public init(seed: UInt64 = 0, batchNorm: Bool = false, dropout: Double = 0) {
        var generator = SeededRandom(seed: seed)
        firstConv = Conv2d(1, 8, kernelSize: 3, generator: &generator)
        firstNorm = batchNorm ? BatchNorm(8) : nil
        var layers: [Module] = []
        let widths = [8, 16, 32, 64, 128]
        for i in 0..<4 {
            // All four forward by im2col, so the poolings compare the direct sums, as PyTorch's do. The two
            // large layers (31x31 and 15x15 inputs, two thirds of their time in the backward) take Winograd's
            // gradients; the small late ones keep im2col's: their pooled, sparse output gradients leave weight
            // gradients near AdamW's eps, whose first step follows the gradient's rounding.
            let algorithm: ConvolutionAlgorithm = i < 2 ? .fastestBackward : .im2col
            layers.append(Conv2d(widths[i], widths[i + 1], kernelSize: 3, algorithm: algorithm,
                                 generator: &generator))
            if batchNorm { layers.append(BatchNorm(widths[i + 1])) }
            // Pooling before the ReLU, the same function and gradient on a quarter of the elements (as in the
            // C4CNN).
            if i < 3 { layers.append(MaxPool2d(kernelSize: 3, stride: 2, padding: 1)) }
            layers.append(ReLU())
        }
        convs = Sequential(layers)
        var headLayers: [Module] = []
        if dropout > 0 { headLayers.append(Dropout(dropout)) }
        headLayers += [Linear(128, 32, generator: &generator), ReLU(), Linear(32, 10, generator: &generator)]
        head = Sequential(headLayers)
    }

    /// The PyTorch names of the properties whose Swift names differ; the rest are registered under their own.
    override public var stateDictNames: [String: String] { ["firstConv": "first_conv", "firstNorm": "first_norm"] }

    /// (N, 1, 33, 33) images -> (N, 10) logits; a `ShapeError` for any other shape.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank == 4, input.shape[1] == 1, input.shape[2] == side, input.shape[3] == side else {
            throw ShapeError(layer: "CNN", expected: "(N, 1, \(side), \(side))", given: input.shape)
        }
        var first = try firstConv(input)
        if let firstNorm { first = try firstNorm(first) }
        let features = try convs(first.relu())
        return try head(features.flattened(from: 1))
    }
}

/// The models of the experiment by name, as the command line gives them.
public enum ModelName: String, CaseIterable, Sendable {
    case c4cnn, cnn, d4cnn, c8cnn, c16cnn, d8cnn

    /// A freshly initialised model.
    public func make(seed: UInt64 = 0) -> Module {
        switch self {
        case .c4cnn: return C4CNN(seed: seed)
        case .cnn: return CNN(seed: seed)
        case .d4cnn: return D4CNN(seed: seed)
        case .c8cnn: return C8CNN(seed: seed)
        case .c16cnn: return C16CNN(seed: seed)
        case .d8cnn: return D8CNN(seed: seed)
        }
    }

    /// The model of the strong recipe: batch norm after every convolution and dropout 0.2 in the head.
    public func makeStrong(seed: UInt64 = 0) -> Module {
        switch self {
        case .c4cnn: return C4CNN(seed: seed, batchNorm: true, dropout: 0.2)
        case .cnn: return CNN(seed: seed, batchNorm: true, dropout: 0.2)
        case .d4cnn: return D4CNN(seed: seed, batchNorm: true, dropout: 0.2)
        case .c8cnn: return C8CNN(seed: seed, batchNorm: true, dropout: 0.2)
        case .c16cnn: return C16CNN(seed: seed, batchNorm: true, dropout: 0.2)
        case .d8cnn: return D8CNN(seed: seed, batchNorm: true, dropout: 0.2)
        }
    }
}
