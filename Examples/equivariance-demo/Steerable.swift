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

// MARK: - Accuracy on the test set rotated by each angle

/// `--rotation-sweep`: the accuracy of a trained model on the rot-digits test set (or another data set) rotated by
/// 0, 22.5, 45, 67.5 and 90 degrees (bilinear, zeros outside, as `Tensor.rotated(by:)`), evaluation mode.
func rotationSweep(model name: ModelName, weights: String, dataset: DatasetName) throws {
    let (model, label) = try makeModel(name, weights: weights)
    model.eval()
    let data = try DataCatalog(directory: URL(fileURLWithPath: options.dataDirectory)).load(dataset) { print($0) }
    let test = data.test
    print("rotation sweep: \(name.rawValue) \(label) on the \(dataset.rawValue) test set (\(test.count) images)")
    var accuracies: [Double] = []
    for degrees in [0.0, 22.5, 45, 67.5, 90] {
        var correct = 0
        let batch = 250
        for start in stride(from: 0, to: test.count, by: batch) {
            let indices = Array(start ..< min(start + batch, test.count))
            let pixels = indices.flatMap { Array(test.image($0)) }
            let images = Tensor<Float>(shape: [indices.count, 1, test.height, test.width], scalars: pixels)
            let rotated = degrees == 0 ? images : images.rotated(by: degrees * .pi / 180)
            let logits = try withoutGradients { try model(rotated) }
            let classes = logits.shape[1]
            for (row, index) in indices.enumerated() {
                let slice = logits.scalars[(row * classes) ..< ((row + 1) * classes)]
                let predicted = slice.indices.max { slice[$0] < slice[$1] }! - row * classes
                if predicted == test.labels[index] { correct += 1 }
            }
        }
        let accuracy = 100 * Double(correct) / Double(test.count)
        accuracies.append(accuracy)
        print(String(format: "  rotated by %5.1f degrees: accuracy %.2f%%", degrees, accuracy))
    }
    print(String(format: "  45 degrees against unrotated: %+.2f points", accuracies[2] - accuracies[0]))
}
