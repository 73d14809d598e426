import Autograd
import Foundation
import NN
import Train
import XCTest

/// `Trainer.batchNormRecalibrationBatches`: the batch norms' running statistics are recomputed from the first
/// training batches of the epoch before each test evaluation, and training itself is unchanged.
final class RecalibrationTests: XCTestCase {
    /// A small batch-normalised classifier on 4x4 images.
    private func makeTrainer(_ data: ImageDataset, recalibration: Int) -> Trainer {
        var g = SeededRandom(seed: 3)
        let model = Sequential([Conv2d(1, 3, kernelSize: 3, generator: &g), BatchNorm(3), ReLU(), Flatten(),
                                Linear(12, 10, generator: &g)])
        var configuration = TrainingConfiguration()
        configuration.epochs = 2
        configuration.batchSize = 8
        configuration.learningRate = 5e-2
        configuration.shuffle = true
        configuration.seed = 7
        let trainer = Trainer(model: model, modelName: "tiny", configuration: configuration, train: data,
                              test: data.subset(Array(0..<16)), progress: .silent)
        trainer.batchNormRecalibrationBatches = recalibration
        return trainer
    }

    private func statistics(_ model: Module) -> [Float] {
        model.namedBuffers.flatMap { $0.buffer.value.scalars }
    }

    func testStatisticsComeFromTheFirstBatchesOfTheEpoch() throws {
        let data = randomImages(count: 48, side: 4, seed: 5)
        let plain = makeTrainer(data, recalibration: 0)
        let recalibrated = makeTrainer(data, recalibration: 2)
        try plain.run()
        try recalibrated.run()

        // Training is the same: same parameters, same training losses.
        XCTAssertEqual(plain.model.namedParameters.map { $0.parameter.value.scalars },
                       recalibrated.model.namedParameters.map { $0.parameter.value.scalars })
        XCTAssertEqual(plain.history.map(\.trainLoss), recalibrated.history.map(\.trainLoss))
        // The running statistics are not the training-time averages...
        XCTAssertNotEqual(statistics(plain.model), statistics(recalibrated.model))
        // ...but the mean over the last epoch's first two batches: recomputing them from those batches changes
        // nothing (up to rounding), and the recorded test accuracy is the one they give.
        let kept = statistics(recalibrated.model)
        try recalibrated.model.recalibrateBatchNorm(
            recalibrated.trainLoader.batches(epoch: 1).prefix(2).map(\.images))
        for (a, b) in zip(kept, statistics(recalibrated.model)) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(a))) }
        let (_, accuracy) = try recalibrated.evaluate(recalibrated.testLoader!)
        XCTAssertEqual(recalibrated.history.last?.testAccuracy, accuracy)
        // Other batches give other statistics.
        try recalibrated.model.recalibrateBatchNorm(
            recalibrated.trainLoader.batches(epoch: 1).dropFirst(2).prefix(2).map(\.images))
        XCTAssertNotEqual(kept, statistics(recalibrated.model))
    }

    func testNothingHappensWithoutBatchNorm() throws {
        let data = randomImages(count: 16, side: 4, seed: 6)
        var g = SeededRandom(seed: 3)
        let model = Sequential([Flatten(), Linear(16, 10, generator: &g)])
        let trainer = Trainer(model: model, modelName: "tiny", configuration: TrainingConfiguration(), train: data,
                              test: data, progress: .silent)
        trainer.batchNormRecalibrationBatches = 3
        let before = model.namedParameters.map { $0.parameter.value.scalars }
        try trainer.recalibrateBatchNorm(epoch: 1)
        XCTAssertEqual(model.namedParameters.map { $0.parameter.value.scalars }, before)
        XCTAssertTrue(model.namedBuffers.isEmpty)
    }
}
