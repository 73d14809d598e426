import Autograd
import NN

/// The rotation-equivariant network of the experiment, for a planar group (C4 by default; D4 gives `D4CNN`).
///
/// (N, 1, 33, 33) -> lifting conv 1->8 (k3, pad 1; no activation, as in the original) -> four group convs
/// 8->16->32->64->128 (k3, pad 1), each with ReLU and, after the first three, max pooling (1, 3, 3) / (1, 2, 2) /
/// (0, 1, 1): 33 -> 17 -> 9 -> 5 -> group pooling (N, 128, 5, 5) -> 3200 -> Linear 256 -> ReLU -> 32 -> ReLU -> 10
/// logits. The strong variant adds batch norm (statistics shared over the group axis) after every convolution, a ReLU
/// after the lifting one, and dropout before the hidden linear layers. The encoder pools before each ReLU, the same
/// function as the original's ReLU then pooling.
/// Invariant to every element of the group. Parameter names match the original PyTorch module:
/// `liftingconv.*`, `groupconv_encoder.{0,3,6,9}.*`, `head.{0,2,4}.*`.
public class GroupEquivariantCNN: Module {
    /// The group the model is equivariant to (C4 or D4).
    public let group: PlanarGroup
    /// The lifting convolution: `LiftingConv2d` (rot90 of free filters) or `SteerableLiftingConv2d`.
    public let liftingconv: GroupFilterConv2d
    /// Batch norm after the lifting conv (strong recipe only).
    public let liftingNorm: BatchNorm?
    /// The four group convolutions with their ReLUs and poolings (and batch norms):
    /// (N, 8, |G|, 33, 33) -> (N, 128, |G|, 5, 5); `groupconv_encoder`.
    public let groupconvEncoder: Sequential
    /// Linear 3200 -> 256 -> 32 -> 10 with ReLUs (and dropouts): (N, 3200) -> (N, 10); `head`.
    public let head: Sequential
    /// Group pooling between the encoder and the head. Declared after `head` so that it is the last child: the
    /// children before it keep the positions that seed their dropout streams (`reseed`).
    public let pooling: GroupPooling
    /// The input this model takes: (N, 1, side, side).
    public let side = 33

    /// The network over `group`, its parameters drawn from `generator`.
    ///
    /// - Parameters:
    ///   - group: C4 (the C4CNN) or D4 (the D4CNN).
    ///   - batchNorm: insert batch norm (statistics shared over the group axis) after every convolution, before
    ///     its ReLU — the strong recipe. The original model has none.
    ///   - dropout: dropout probability before each hidden linear layer of the head (0: none).
    ///   - widths: the channels of the lifting convolution and of the four group convolutions (each channel carries
    ///     |G| planes).
    ///   - steerable: steerable filters (`SteerableLiftingConv2d`, `SteerableGroupConv2d`, for any C_N or D_N)
    ///     instead of free 3x3 filters moved by rot90 (C4 and D4 only).
    ///   - generator: the source of the initial parameters.
    public init(group: PlanarGroup, widths: [Int] = [8, 16, 32, 64, 128], steerable: Bool = false,
                batchNorm: Bool = false, dropout: Double = 0, generator: inout SeededRandom) {
        check(widths.count == 5 && widths.allSatisfy { $0 >= 1 },
              "GroupEquivariantCNN: five positive widths needed, got \(widths)")
        self.group = group
        liftingconv = steerable
            ? SteerableLiftingConv2d(1, widths[0], kernelSize: 3, padding: 1, group: group, generator: &generator)
            : LiftingConv2d(1, widths[0], kernelSize: 3, padding: 1, group: group, generator: &generator)
        liftingNorm = batchNorm ? BatchNorm(widths[0]) : nil
        var layers: [Module] = []
        for i in 0..<4 {
            layers.append(steerable
                ? SteerableGroupConv2d(widths[i], widths[i + 1], kernelSize: 3, padding: 1, group: group,
                                       generator: &generator)
                : GroupConv2d(widths[i], widths[i + 1], kernelSize: 3, padding: 1, group: group,
                              generator: &generator))
            if batchNorm { layers.append(BatchNorm(widths[i + 1])) }
            // Pooling before the ReLU: the same function and gradient as ReLU then pooling (ReLU is monotone, so it
            // commutes with max, and a window's winner keeps its gradient exactly when it is positive), on a quarter
            // of the elements.
            if i < 3 { layers.append(MaxPool3d(kernelSize: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1))) }
            layers.append(ReLU())
        }
        groupconvEncoder = Sequential(layers)
        var headLayers: [Module] = []
        if dropout > 0 { headLayers.append(Dropout(dropout)) }
        headLayers += [Linear(widths[4] * 5 * 5, 256, generator: &generator), ReLU()]
        if dropout > 0 { headLayers.append(Dropout(dropout)) }
        headLayers += [Linear(256, 32, generator: &generator), ReLU(), Linear(32, 10, generator: &generator)]
        head = Sequential(headLayers)
        pooling = GroupPooling(group: group)
    }

    /// The PyTorch names of the properties whose Swift names differ; the rest are registered under their own.
    override public var stateDictNames: [String: String] {
        ["liftingNorm": "lifting_norm", "groupconvEncoder": "groupconv_encoder"]
    }

    /// (N, 1, 33, 33) images -> (N, 10) logits, invariant to the group; a `ShapeError` for any other shape.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank == 4, input.shape[1] == 1, input.shape[2] == side, input.shape[3] == side else {
            throw ShapeError(layer: "\(type(of: self))", expected: "(N, 1, \(side), \(side))", given: input.shape)
        }
        var lifted = try liftingconv(input)
        if let liftingNorm { lifted = try liftingNorm(lifted).relu() }
        let features = try groupconvEncoder(lifted)
        let invariant = try pooling(features)
        return try head(invariant.flattened(from: 1))
    }
}

/// The C4-equivariant CNN of the experiment (p4).
public final class C4CNN: GroupEquivariantCNN {
    /// A C4CNN with parameters drawn from `seed`; `batchNorm` and `dropout` as for `GroupEquivariantCNN`.
    public init(seed: UInt64 = 0, batchNorm: Bool = false, dropout: Double = 0) {
        var generator = SeededRandom(seed: seed)
        super.init(group: .c4, batchNorm: batchNorm, dropout: dropout, generator: &generator)
    }
}

/// The same network over p4m (rotations and reflections): invariant to flips as well.
public final class D4CNN: GroupEquivariantCNN {
    /// A D4CNN with parameters drawn from `seed`; `batchNorm` and `dropout` as for `GroupEquivariantCNN`.
    public init(seed: UInt64 = 0, batchNorm: Bool = false, dropout: Double = 0) {
        var generator = SeededRandom(seed: seed)
        super.init(group: .d4, batchNorm: batchNorm, dropout: dropout, generator: &generator)
    }
}
