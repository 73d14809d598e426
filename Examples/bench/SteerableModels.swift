import Autograd
import Models
import NN

// MARK: - Steerable models: steps and their share of the sgemm peak

/// Multiply-adds x 2 of one forward pass of a group-equivariant model's convolutions at batch `batch` on 33x33
/// inputs: the lifting and the four group convolutions as the plain convolutions of their expanded filters
/// (planes = channels x |G|), on maps of 33, 33, 17, 9 and 5 pixels a side (the pooling schedule). The head's
/// linear layers are added (2 x in x out per image).
func forwardFlops(_ model: GroupEquivariantCNN, batch: Int = 64) -> Double {
    let convs: [GroupFilterConv2d] = [model.liftingconv]
        + model.groupconvEncoder.layers.compactMap { $0 as? GroupFilterConv2d }
    let sides = [33, 33, 17, 9, 5]
    var flops = 0.0
    for (conv, side) in zip(convs, sides) {
        let inPlanes = conv === model.liftingconv ? conv.inChannels : conv.inChannels * model.group.order
        flops += 2 * Double(batch * side * side) * Double(conv.outChannels * model.group.order * inPlanes
                                                           * conv.kernelSize * conv.kernelSize)
    }
    for case let linear as Linear in model.head.layers {
        flops += 2 * Double(batch * linear.inFeatures * linear.outFeatures)
    }
    return flops
}

/// The C8CNN's and C16CNN's training step and inference batch at batch 64 (as `benchModel`), and their share of the
/// sgemm peak when it was measured: a training step counted as three forward passes' work (forward, input and weight
/// gradients), inference as one.
func benchSteerableModels(_ r: inout Results, repeats: Int) {
    for (name, model) in [("c8cnn", C8CNN(seed: 0) as GroupEquivariantCNN), ("c16cnn", C16CNN(seed: 0))] {
        benchModel(&r, name: name, model: model, repeats: repeats, memory: false)
        let flops = forwardFlops(model)
        r.set("\(name).forward.gflop", flops * 1e-9)
    }
}

/// Adds `<model>.train_step.peak_share` and `<model>.inference.peak_share` once the sgemm peak is known.
func steerableShares(_ r: inout Results) {
    guard let peak = r["sgemm.gflops"] else { return }
    for name in ["c4cnn", "c8cnn", "c16cnn"] {
        guard let gflop = r["\(name).forward.gflop"] ?? (name == "c4cnn" ? forwardFlops(C4CNN(seed: 0)) * 1e-9 : nil)
        else { continue }
        if let ms = r["\(name).train_step.ms"] { r.set("\(name).train_step.peak_share", 3 * gflop / (ms * 1e-3) / peak) }
        if let ms = r["\(name).inference.ms"] { r.set("\(name).inference.peak_share", gflop / (ms * 1e-3) / peak) }
    }
}
