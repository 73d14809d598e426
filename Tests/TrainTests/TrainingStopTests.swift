import Autograd
import Foundation
import NN
import Train
import XCTest

/// A loss or a parameter that becomes NaN or infinite stops training with a message naming the epoch and the batch,
/// and the last good checkpoint stays exactly as it was.
final class TrainingStopTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory("training-stop") }
    override func tearDown() { scratch?.remove() }

    /// A small classifier; with `relu` a NaN input is cut off by the activation (the loss stays finite) but still
    /// poisons the gradient of the first layer.
    private func makeTrainer(_ data: ImageDataset, epochs: Int, optimizer: OptimizerKind = .adamw,
                             learningRate: Double = 1e-2, relu: Bool = false, directory: URL?) -> Trainer {
        var g = SeededRandom(seed: 1)
        let model = Sequential([Flatten(), Linear(16, 12, generator: &g)] + (relu ? [ReLU()] : [])
                               + [Linear(12, 10, generator: &g)])
        var configuration = TrainingConfiguration()
        configuration.epochs = epochs
        configuration.batchSize = 8
        configuration.learningRate = learningRate
        configuration.optimizer = optimizer
        let trainer = Trainer(model: model, modelName: "tiny", configuration: configuration, train: data,
                              test: data.subset([0, 1]), progress: .silent)
        trainer.checkpointDirectory = directory
        return trainer
    }

    func testNaNPixelsStopTrainingAndKeepTheLastCheckpoint() throws {
        let clean = randomImages(count: 32, side: 4, seed: 4)
        let directory = scratch.file("run")
        let checkpoint = Trainer.checkpointURL(in: directory)
        try makeTrainer(clean, epochs: 1, directory: directory).run()
        let saved = try Data(contentsOf: checkpoint)

        // Image 13 is in the second batch of 8 (no shuffling).
        var poisoned = clean
        poisoned.images[13 * 16 + 5] = .nan
        let threadsBefore = threadCount()
        let trainer = makeTrainer(poisoned, epochs: 3, directory: directory)
        try trainer.resume(from: checkpoint)
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertEqual("\(error)", "the loss became NaN at epoch 2, batch 2; training stopped; the last good "
                           + "checkpoint (after epoch 1) is kept in \(checkpoint.path)")
            guard case TrainingError.nonFiniteLoss(epoch: 2, batch: 2, _, _) = error else {
                return XCTFail("not a non-finite loss at epoch 2, batch 2: \(error)")
            }
        }
        XCTAssertEqual(try Data(contentsOf: checkpoint), saved, "the checkpoint changed")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["last.safetensors"])
        XCTAssertEqual(trainer.completedEpochs, 1)
        XCTAssertEqual(Tape.current.count, 0, "the abandoned step left ops on the tape")
        // The batch producer of the abandoned epoch ends.
        if let before = threadsBefore {
            var now = threadCount() ?? before
            for _ in 0..<500 where now > before { usleep(10_000); now = threadCount() ?? before }
            XCTAssertLessThanOrEqual(now, before, "a batch producer thread was left running")
        }

        // Behind a ReLU the loss stays finite, but the update makes a parameter NaN: that stops training too.
        let guarded = makeTrainer(poisoned, epochs: 3, relu: true, directory: scratch.file("relu"))
        XCTAssertThrowsError(try guarded.run()) { error in
            XCTAssertEqual("\(error)", "parameter 1.weight became NaN or infinite in the update after epoch 1, batch 2; "
                           + "training stopped; no checkpoint had been written yet")
        }

        // Infinite pixels give a non-finite loss before any checkpoint exists.
        var infinite = clean
        infinite.images[0] = .infinity
        XCTAssertThrowsError(try makeTrainer(infinite, epochs: 1, directory: scratch.file("none")).run()) { error in
            XCTAssertTrue("\(error)".hasPrefix("the loss became "), "\(error)")
            XCTAssertTrue("\(error)".contains("at epoch 1, batch 1; training stopped; no checkpoint had been written yet"),
                          "\(error)")
        }
    }

    func testBatchesTheModelCannotTakeStopTraining() throws {
        var data = randomImages(count: 16, side: 4, seed: 6)
        data.labels[11] = 12
        XCTAssertThrowsError(try makeTrainer(data, epochs: 1, directory: nil).run()) { error in
            XCTAssertEqual("\(error)", "epoch 1, batch 2: label 12 is not one of the model's 10 classes")
        }
        XCTAssertEqual(Tape.current.count, 0)
        let small = randomImages(count: 16, side: 5, seed: 6)
        XCTAssertThrowsError(try makeTrainer(small, epochs: 1, directory: nil).run()) { error in
            XCTAssertEqual("\(error)", "Linear(16, 12): expected an input of shape (N, 16), got [8, 25]")
        }
        XCTAssertEqual(Tape.current.count, 0, "the failed forward pass left ops on the tape")
    }

    func testDivergingParametersStopTraining() throws {
        let data = randomImages(count: 16, side: 4, seed: 5)
        let directory = scratch.file("diverge")
        let trainer = makeTrainer(data, epochs: 2, optimizer: .sgd, learningRate: 1e300, directory: directory)
        XCTAssertThrowsError(try trainer.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("parameter "), text)
            XCTAssertTrue(text.contains("became NaN or infinite in the update after epoch 1, batch 1; training stopped"), text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: Trainer.checkpointURL(in: directory).path))
    }
}
