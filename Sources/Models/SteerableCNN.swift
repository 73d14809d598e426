import Autograd
import NN

// MARK: - Steerable models over C_N and D_N

extension GroupEquivariantCNN {
    /// The C4CNN's widths (8, 16, 32, 64, 128) scaled by 4 / |G| (at least 1): every layer keeps the C4CNN's number
    /// of planes (channels x |G|), so the expanded plain convolutions have the C4CNN's sizes and a step costs about the
    /// same. For C8 that is 4, 8, 16, 32, 64 channels; for C16 and D8 (16 elements) 2, 4, 8, 16, 32.
    public static func widthsKeepingPlanes(of group: PlanarGroup) -> [Int] {
        [8, 16, 32, 64, 128].map { max(1, $0 * 4 / group.order) }
    }
}

/// The C4CNN's network over C8 (rotations by multiples of 45 degrees) with steerable 3x3 filters: lifting conv
/// 1->4, group convs 4->8->16->32->64 (8 planes per channel), the same pooling schedule and head (64 * 5 * 5 -> 256 ->
/// 32 -> 10). Invariant to rotations by multiples of 90 degrees up to float rounding, to the others up to the grid's
/// sampling error.
public final class C8CNN: GroupEquivariantCNN {
    public init(seed: UInt64 = 0, batchNorm: Bool = false, dropout: Double = 0) {
        var generator = SeededRandom(seed: seed)
        let group = PlanarGroup.cyclic(8)
        super.init(group: group, widths: GroupEquivariantCNN.widthsKeepingPlanes(of: group), steerable: true,
                   batchNorm: batchNorm, dropout: dropout, generator: &generator)
    }
}

/// The same over C16 (multiples of 22.5 degrees): channels 2, 4, 8, 16, 32, 16 planes each.
public final class C16CNN: GroupEquivariantCNN {
    public init(seed: UInt64 = 0, batchNorm: Bool = false, dropout: Double = 0) {
        var generator = SeededRandom(seed: seed)
        let group = PlanarGroup.cyclic(16)
        super.init(group: group, widths: GroupEquivariantCNN.widthsKeepingPlanes(of: group), steerable: true,
                   batchNorm: batchNorm, dropout: dropout, generator: &generator)
    }
}

/// The same over D8 (multiples of 45 degrees and the mirror images): channels 2, 4, 8, 16, 32, 16 planes each.
public final class D8CNN: GroupEquivariantCNN {
    public init(seed: UInt64 = 0, batchNorm: Bool = false, dropout: Double = 0) {
        var generator = SeededRandom(seed: seed)
        let group = PlanarGroup.dihedral(8)
        super.init(group: group, widths: GroupEquivariantCNN.widthsKeepingPlanes(of: group), steerable: true,
                   batchNorm: batchNorm, dropout: dropout, generator: &generator)
    }
}
