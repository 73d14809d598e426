import Autograd
import Foundation
import NN
import Train
import XCTest

/// Data of any shape through `Dataset`, and the Trainer made from an optimiser instance, a loss and a schedule.
final class DatasetProtocolTests: XCTestCase {
    /// y = 2 x0 - x1 + 0.5 from two inputs: a regression set defined in the test.
    struct Plane: Dataset {
        let xs: [[Float]]
        var count: Int { xs.count }
        var sampleShape: [Int] { [2] }
        func input(_ index: Int) -> ArraySlice<Float> { xs[index][...] }
        func target(_ index: Int) -> Target { .values([2 * xs[index][0] - xs[index][1] + 0.5]) }

        init(count: Int, seed: UInt64) {
            var rng = SeededRandom(seed: seed)
            xs = (0..<count).map { _ in [Float(rng.uniform() * 2 - 1), Float(rng.uniform() * 2 - 1)] }
        }
    }

    /// A 3-channel set comes out as (B, 3, H, W) with each image's channels in place (it came out as (B, 1, ...)
    /// before `ImageDataset` had channels).
    func testThreeChannelImagesKeepTheirChannels() {
        let (count, c, h, w) = (5, 3, 2, 4)
        let pixels = (0..<(count * c * h * w)).map(Float.init)
        let data = ImageDataset(images: pixels, labels: [0, 1, 2, 3, 4], channels: c, height: h, width: w)
        XCTAssertEqual(data.sampleShape, [3, 2, 4])
        let loader = DataLoader(data, batchSize: 2)
        let batch = loader.batch(1, order: [4, 3, 2, 1, 0])
        XCTAssertEqual(batch.inputs.shape, [2, 3, 2, 4])
        XCTAssertEqual(batch.labels, [2, 1])
        XCTAssertEqual(Array(batch.inputs.scalars[0..<24]), (48..<72).map(Float.init))
        XCTAssertEqual(Array(batch.inputs.scalars[24..<48]), (24..<48).map(Float.init))
        // Padding and subsets keep the channels.
        let padded = data.edgePadded(before: 1, after: 0)
        XCTAssertEqual(padded.sampleShape, [3, 3, 5])
        XCTAssertEqual(padded.images[15 + 1 + 5], data.images[8], "channel 1 of image 0 starts where it should")
        XCTAssertEqual(data.subset([2]).input(0), data.input(2))
    }

    /// A user's data set with regression targets: the loader makes (B, 2) inputs and (B, 1) targets, the generic
    /// path gives the same inputs as an `ImageDataset`'s fast path.
    func testLoaderReadsAnyDataset() {
        let plane = Plane(count: 10, seed: 1)
        let loader = DataLoader(plane, batchSize: 4, shuffle: true, seed: 3)
        let order = loader.order(epoch: 0)
        let batch = loader.batch(2, order: order)
        XCTAssertEqual(batch.inputs.shape, [2, 2])
        XCTAssertEqual(batch.targets?.shape, [2, 1])
        XCTAssertTrue(batch.labels.isEmpty)
        XCTAssertEqual(Array(batch.inputs.scalars[0..<2]), plane.xs[order[8]])
        XCTAssertEqual(loader.batches(epoch: 0).map(\.count), [4, 4, 2])

        struct Wrapped: Dataset {
            let inner: ImageDataset
            var count: Int { inner.count }
            var sampleShape: [Int] { inner.sampleShape }
            func input(_ index: Int) -> ArraySlice<Float> { inner.input(index) }
            func target(_ index: Int) -> Target { inner.target(index) }
        }
        let images = randomImages(count: 7, side: 3, seed: 2)
        let a = DataLoader(images, batchSize: 3, shuffle: true, seed: 1), b = DataLoader(Wrapped(inner: images), batchSize: 3, shuffle: true, seed: 1)
        for (x, y) in zip(a.batches(epoch: 1), b.batches(epoch: 1)) {
            XCTAssertEqual(x.inputs.scalars, y.inputs.scalars)
            XCTAssertEqual(x.inputs.shape, y.inputs.shape)
            XCTAssertEqual(x.labels, y.labels)
        }
        let made = Batch(inputs: Tensor(shape: [2, 1], scalars: [1, 2]), labels: [0, 1])
        XCTAssertEqual(made.images.shape, [2, 1])
    }

    /// A linear model fitted by the pieces-made Trainer with mean squared error, SGD and a step schedule, without a
    /// test set; the step callback sees every step's learning rate, the epoch callback every epoch.
    func testTrainerFromPiecesFitsARegression() throws {
        var g = SeededRandom(seed: 4)
        let model = Linear(2, 1, generator: &g)
        let optimizer = SGD(parameters: model.namedParameters, learningRate: 0.2, momentum: 0.5)
        let trainer = Trainer(model: model, optimizer: optimizer, loss: .meanSquaredError,
                              schedule: .step(every: 30, gamma: 0.5), epochs: 6, batchSize: 8, shuffle: true,
                              seed: 2, train: Plane(count: 64, seed: 5), progress: .silent)
        XCTAssertNil(trainer.testLoader)
        var rates: [Double] = [], epochs: [Int] = []
        trainer.onStep = { rates.append($0.learningRate) }
        trainer.onEpochEnd = { epochs.append($0.epoch) }
        let history = try trainer.run()
        XCTAssertEqual(epochs, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(rates.count, 6 * 8)
        XCTAssertEqual(rates[29], 0.2)
        XCTAssertEqual(rates[30], 0.1)
        XCTAssertLessThan(history.last!.trainLoss, 1e-3, "\(history.map(\.trainLoss))")
        XCTAssertEqual(history.last!.testLoss, 0)
        let w = model.weight.value.scalars
        XCTAssertEqual(w[0], 2, accuracy: 0.05)
        XCTAssertEqual(w[1], -1, accuracy: 0.05)
    }

    /// A loss given as a closure, and a callback error that stops training.
    func testClosureLossAndThrowingCallback() throws {
        var g = SeededRandom(seed: 4)
        let model = Linear(2, 1, generator: &g)
        let absolute = Loss("l1-ish") { output, batch in
            let d = output - batch.targets!
            return (d * d + 1e-6).mean()
        }
        struct Stop: Error {}
        let trainer = Trainer(model: model, optimizer: AdamW(parameters: model.namedParameters, learningRate: 1e-2),
                              loss: absolute, epochs: 3, batchSize: 16, train: Plane(count: 32, seed: 1),
                              test: Plane(count: 8, seed: 2), progress: .silent)
        trainer.onEpochEnd = { if $0.epoch == 2 { throw Stop() } }
        XCTAssertThrowsError(try trainer.run()) { XCTAssertTrue($0 is Stop, "\($0)") }
        XCTAssertEqual(trainer.completedEpochs, 2)
        XCTAssertGreaterThan(trainer.history[0].testLoss, 0)
    }

    /// Cross-entropy on a regression batch is an error naming the shapes, not a trap.
    func testMismatchedLossIsAnError() {
        var g = SeededRandom(seed: 4)
        let model = Linear(2, 3, generator: &g)
        let trainer = Trainer(model: model, optimizer: AdamW(parameters: model.namedParameters), epochs: 1,
                              batchSize: 4, train: Plane(count: 8, seed: 1), progress: .silent)
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("labels"), "\(error)")
        }
    }

    /// An unknown schedule name is an error (it silently became "constant" before), in a configuration read back
    /// from JSON too.
    func testUnknownScheduleIsAnError() throws {
        XCTAssertEqual(try ScheduleKind(parsing: "cosine"), .cosine)
        XCTAssertThrowsError(try ScheduleKind(parsing: "cosin")) { error in
            XCTAssertEqual("\(error)", "unknown schedule 'cosin' (constant, cosine, step)")
        }
        var json = String(decoding: try JSONEncoder().encode(TrainingConfiguration.strong), as: UTF8.self)
        XCTAssertTrue(json.contains("\"schedule\":\"cosine\""), json)
        json = json.replacingOccurrences(of: "\"schedule\":\"cosine\"", with: "\"schedule\":\"cosin\"")
        XCTAssertThrowsError(try JSONDecoder().decode(TrainingConfiguration.self, from: Data(json.utf8)))
        XCTAssertEqual(TrainingConfiguration.strong.learningRateSchedule(totalSteps: 10), .cosine(warmup: 100, floor: 0.01))
    }

    /// A pieces-made trainer checkpoints and resumes exactly; a resume with another schedule is refused naming it.
    func testTrainerFromPiecesResumesExactly() throws {
        let scratch = try ScratchDirectory("pieces")
        defer { scratch.remove() }
        func make(epochs: Int, schedule: LearningRateSchedule = .cosine(warmup: 3, floor: 0.1)) -> Trainer {
            var g = SeededRandom(seed: 4)
            let model = Linear(2, 1, generator: &g)
            let trainer = Trainer(model: model, optimizer: AdamW(parameters: model.namedParameters, learningRate: 0.05),
                                  loss: .meanSquaredError, schedule: schedule, epochs: epochs, batchSize: 8,
                                  shuffle: true, seed: 1, train: Plane(count: 40, seed: 5), test: Plane(count: 8, seed: 6),
                                  progress: .silent)
            return trainer
        }
        let whole = make(epochs: 3)
        try whole.run()
        // Stopped after its second epoch's checkpoint (the schedule spans all three epochs).
        struct Stop: Error {}
        let first = make(epochs: 3)
        first.checkpointDirectory = scratch.file("run")
        first.onEpochEnd = { if $0.epoch == 2 { throw Stop() } }
        XCTAssertThrowsError(try first.run())
        let checkpoint = Trainer.checkpointURL(in: scratch.file("run"))
        let file = try ParameterFile.read(checkpoint)
        XCTAssertEqual(file.metadata["schedule"], "cosine(warmup: 3, floor: 0.1)")
        XCTAssertEqual(file.metadata["loss"], "mse")
        let second = make(epochs: 3)
        try second.resume(from: checkpoint)
        try second.run()
        XCTAssertEqual(second.model.stateDict().mapValues(\.scalars), whole.model.stateDict().mapValues(\.scalars))
        XCTAssertEqual(second.history, whole.history.enumerated().map { index, m in
            var m = m
            m.seconds = second.history[index].seconds
            m.samplesPerSecond = second.history[index].samplesPerSecond
            return m
        })
        let other = make(epochs: 3, schedule: .cosine(warmup: 3, floor: 0.5))  // the same kind and warm-up
        XCTAssertThrowsError(try other.resume(from: checkpoint)) { error in
            XCTAssertTrue("\(error)".contains("metadata \"schedule\": written with schedule cosine(warmup: 3, floor: 0.1), "
                                               + "this run has schedule cosine(warmup: 3, floor: 0.5)"), "\(error)")
        }
    }
}
