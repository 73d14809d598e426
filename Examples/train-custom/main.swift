import Autograd
import Foundation
import NN
import Train

// A model of your own on a data set of your own: coloured shapes (3 x 16 x 16 images, four classes) made in code,
// read through the `Dataset` protocol, trained with AdamW, cross-entropy and a cosine schedule.

/// Bars, crosses, boxes and dots at random places, in a random colour, over noise: the class is the shape, never
/// the colour.
struct Shapes: Dataset {
    static let classes = ["bar", "cross", "box", "dot"], side = 16
    let images: [[Float]], labels: [Int]
    var count: Int { labels.count }
    var sampleShape: [Int] { [3, Shapes.side, Shapes.side] }
    func input(_ index: Int) -> ArraySlice<Float> { images[index][...] }
    func target(_ index: Int) -> Target { .label(labels[index]) }

    init(count: Int, seed: UInt64) {
        var rng = SeededRandom(seed: seed), images: [[Float]] = [], labels: [Int] = []
        let n = Shapes.side
        for i in 0..<count {
            let label = i % 4, x = 4 + Int(rng.uniform() * 8), y = 4 + Int(rng.uniform() * 8)
            let colour = (0..<3).map { _ in Float(0.3 + 0.7 * rng.uniform()) }
            var image = (0..<(3 * n * n)).map { _ in Float(0.2 * rng.uniform()) }
            for dy in -3...3 { for dx in -3...3 {
                let on = [dy == 0, dx == 0 || dy == 0, max(abs(dx), abs(dy)) == 3,
                          dx * dx + dy * dy <= 4][label]
                if on { for c in 0..<3 { image[(c * n + y + dy) * n + x + dx] = colour[c] } }
            } }
            images.append(image)
            labels.append(label)
        }
        (self.images, self.labels) = (images, labels)
    }
}

/// Two convolutions with pooling and a linear head: (N, 3, 16, 16) -> (N, 4) logits.
final class ShapeNet: Module {
    let conv1: Conv2d, conv2: Conv2d, head: Linear, pool = MaxPool2d(kernelSize: 2)
    init(seed: UInt64) {
        var g = SeededRandom(seed: seed)
        conv1 = Conv2d(3, 8, kernelSize: 3, padding: 1, generator: &g)
        conv2 = Conv2d(8, 16, kernelSize: 3, padding: 1, generator: &g)
        head = Linear(16 * 4 * 4, Shapes.classes.count, generator: &g)
    }
    override var children: [(name: String, module: Module)] { [("conv1", conv1), ("conv2", conv2), ("head", head)] }
    override func forward(_ x: Tensor<Float>) throws -> Tensor<Float> {
        let h = try pool(try conv1(x).relu())                               // (N, 8, 8, 8)
        return try head(try pool(try conv2(h).relu()).flattened(from: 1))   // (N, 16 * 4 * 4) -> (N, 4)
    }
}

let model = ShapeNet(seed: 0)
let trainer = Trainer(model: model, optimizer: AdamW(parameters: model.namedParameters, learningRate: 3e-3),
                      loss: .crossEntropy, schedule: .cosine(warmup: 20, floor: 0.05), epochs: 4, batchSize: 32,
                      shuffle: true, train: Shapes(count: 2000, seed: 1), test: Shapes(count: 400, seed: 2),
                      progress: .silent)
trainer.onEpochEnd = { m in
    print(String(format: "epoch %d: loss %.3f, test accuracy %.1f%%, learning rate now %.2g", m.epoch, m.trainLoss,
                 100 * m.testAccuracy, m.learningRate))
}
do { try trainer.run() } catch { print("error: \(error)"); exit(1) }
