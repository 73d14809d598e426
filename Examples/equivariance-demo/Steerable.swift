import Autograd
import Foundation
import Models
import NN
import Train

// MARK: - Per-element reports of the models

/// Step 11: the invariance of every model's logits, element by element of C8, D8 and C16 (and C4 for the CNN and
/// the C4CNN): exact for rotations by multiples of 90 degrees, the grid's sampling error for the others.
func perElementReports(number: Int, x: Tensor<Float>, c4: Module, cnn: Module) throws {
    var models: [(String, Module, PlanarGroup)] = [("C4CNN", c4, .cyclic(8)), ("CNN", cnn, .cyclic(8))]
    for name in [ModelName.c8cnn, .c16cnn, .d8cnn] {
        let (model, label) = try makeModel(name, weights: weightsFor(name))
        print("[\(number)] models: \(name.rawValue.uppercased()) \(label)")
        models.append((name.rawValue.uppercased(), model, (model as! GroupEquivariantCNN).group))
    }
    for (name, model, group) in models {
        model.eval()
        let check = try EquivarianceCheck.invariance(model, input: x, group: group)
        report(number, "\(name) logits under \(group)", check)
        for line in check.perElement { print("       \(line)") }
    }
}

func weightsFor(_ name: ModelName) -> String? {
    switch name {
    case .c8cnn: return options.c8cnnWeights
    case .c16cnn: return options.c16cnnWeights
    case .d8cnn: return options.d8cnnWeights
    default: return nil
    }
}

