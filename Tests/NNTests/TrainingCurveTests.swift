import Autograd
import Foundation
import Models
import NN
import Train
import XCTest

/// Reproduces PyTorch's small training run in ../shared/reference/training step by step: from the same initial
/// parameters, under the original protocol, the loss of every step must match PyTorch's (computed in float64).
final class TrainingCurveTests: XCTestCase {
    struct Curve: Decodable {
        let step_losses: [Double]
        let test_accuracy_after_pass: [Double]
    }

    /// Trains `model` for `passes` passes with the original protocol and returns the loss of every step.
    func stepLosses(_ model: Module, passes: Int, data: ImageDataset) throws -> [Double] {
        let optimizer = AdamW(parameters: model.namedParameters, learningRate: 5e-5, weightDecay: 1e-5)
        let loader = DataLoader(data, batchSize: 64)
        var losses: [Double] = []
        for pass in 0..<passes {
            for batch in loader.batches(epoch: pass) {
                let loss = try model(batch.images).crossEntropy(targets: batch.labels)
                optimizer.zeroGradients()
                loss.backward()
                optimizer.step()
                losses.append(Double(loss.item))
            }
        }
        return losses
    }

    /// The first `exactSteps` losses must agree within `closeRelative` of PyTorch's float64 loss, the rest within
    /// `tolerance` (absolute).
    ///
    /// Where the numbers come from: float32 carries 2^-24 ≈ 6e-8 relative per rounding. A step's loss is a mean over
    /// 64 images of logits that went through five layers of sums of up to 1152 products; summed in another order
    /// (OpenBLAS picks other kernels on other CPUs, Winograd rounds differently from a direct sum) each such sum moves
    /// by about sqrt(1152) · 6e-8 ≈ 2e-6 relative, and Adam carries the differences of one step into the next.
    /// `closeRelative = 1e-5` is a few times that bound, and still 30x below the loss change of a single step here
    /// (about 3e-4), so a wrong update cannot hide in it. PyTorch's own float32 run stays within it on every step.
    func check(model: Module, name: String, passes: Int, exactSteps: Int, tolerance: Double,
               closeRelative: Double = 1e-5) throws {
        let directory = try referenceDirectory("training")
        let curve = try JSONDecoder().decode(Curve.self, from: Data(contentsOf: directory
            .appendingPathComponent("\(name)_curve.json")))
        try model.load(from: directory.appendingPathComponent("\(name)_init.safetensors"))
        let train = try AMAT.read(directory.appendingPathComponent(
            "mnist_all_rotation_normalized_float_train_valid.amat")).edgePadded(before: 2, after: 3)
        let losses = try stepLosses(model, passes: passes, data: train)
        XCTAssertEqual(losses.count, passes * 10)
        for (step, loss) in losses.enumerated() {
            let reference = curve.step_losses[step]
            XCTAssertEqual(loss, reference, accuracy: step < exactSteps ? closeRelative * abs(reference) : tolerance,
                           "\(name) step \(step + 1)")
        }
    }

    func testCNNFollowsPyTorchForThreePasses() throws {
        try check(model: CNN(), name: "cnn", passes: 3, exactSteps: 30, tolerance: 0)
    }

    /// The C4CNN's first steps agree to float precision; later in the pass float32 rounding makes a near-tie (a max
    /// pool or a tiny gradient that Adam normalises) fall the other way, and the losses drift apart by up to about
    /// 1e-4, as PyTorch's own float32 run drifts from its float64 reference in the second pass.
    func testC4CNNFollowsPyTorchForOnePass() throws {
        try check(model: C4CNN(), name: "c4cnn", passes: 1, exactSteps: 7, tolerance: 1e-4)
    }
}
