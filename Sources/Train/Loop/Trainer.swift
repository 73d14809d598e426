import Autograd
import Foundation
import NN

// MARK: - Configuration and results

/// Which optimiser a run uses.
public enum OptimizerKind: String, Sendable, Codable {
    case adamw, sgd
}

/// Everything that fixes a training run.
public struct TrainingConfiguration: Sendable, Codable, Equatable {
    public var epochs = 51
    public var batchSize = 64
    public var learningRate = 5e-5
    public var weightDecay = 1e-5
    public var optimizer = OptimizerKind.adamw
    /// SGD momentum (ignored by AdamW).
    public var momentum = 0.9
    /// "constant", "cosine" (with warm-up `warmupSteps`) or "step" (x0.1 every third of the run).
    public var schedule = "constant"
    public var warmupSteps = 0
    public var shuffle = false
    public var seed: UInt64 = 0

    /// The original protocol: AdamW lr 5e-5, weight decay 1e-5, batch 64, no shuffling, 51 passes.
    public static let original = TrainingConfiguration()

    /// A stronger recipe (with batch-normalised models): AdamW lr 2e-3, weight decay 1e-4, batch 64, shuffled,
    /// cosine decay after 100 warm-up steps, 15 epochs.
    public static var strong: TrainingConfiguration {
        var c = TrainingConfiguration()
        c.learningRate = 2e-3
        c.weightDecay = 1e-4
        c.shuffle = true
        c.schedule = "cosine"
        c.warmupSteps = 100
        c.epochs = 15
        return c
    }

    public init() {}

    func learningRateSchedule(totalSteps: Int) -> LearningRateSchedule {
        switch schedule {
        case "cosine": return .cosine(warmup: warmupSteps, floor: 0.01)
        case "step": return .step(every: max(1, totalSteps / 3), gamma: 0.1)
        default: return .constant
        }
    }
}

/// The measurements of one epoch.
public struct EpochMetrics: Sendable, Codable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double
    public var testAccuracy: Double
    public var seconds: Double
    public var samplesPerSecond: Double
    public var learningRate: Double

    enum CodingKeys: String, CodingKey {
        case epoch, seconds
        case trainLoss = "train_loss", trainAccuracy = "train_accuracy", testLoss = "test_loss"
        case testAccuracy = "test_accuracy", samplesPerSecond = "samples_per_second", learningRate = "learning_rate"
    }
}

/// Why training stopped early.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFiniteLoss(epoch: Int, batch: Int, loss: Double)
    case checkpoint(String)

    public var description: String {
        switch self {
        case .nonFiniteLoss(let epoch, let batch, let loss):
            return "the loss became \(loss) at epoch \(epoch), batch \(batch); training stopped "
                + "(the last complete checkpoint, if any, is kept)"
        case .checkpoint(let message): return message
        }
    }
}

// MARK: - Trainer

/// Trains a classifier on image batches with cross-entropy, evaluates it after each epoch, writes checkpoints and
/// metrics, and reports progress.
public final class Trainer {
    public let model: Module
    public let modelName: String
    public let configuration: TrainingConfiguration
    public let trainLoader: DataLoader
    public let testLoader: DataLoader
    public let optimizer: Optimizer
    /// Where `last.safetensors` is written after every epoch (nil: no checkpoints).
    public var checkpointDirectory: URL?
    /// A JSON-lines file that receives one object per epoch.
    public var metricsFile: URL?
    public var progress: ProgressReporter
    public internal(set) var history: [EpochMetrics] = []
    /// Called after each epoch (for example to update a plot).
    public var onEpochEnd: ((EpochMetrics) -> Void)?

    public init(model: Module, modelName: String, configuration: TrainingConfiguration, train: ImageDataset,
                test: ImageDataset, progress: ProgressReporter = ProgressReporter()) {
        self.model = model
        self.modelName = modelName
        self.configuration = configuration
        self.progress = progress
        trainLoader = DataLoader(train, batchSize: configuration.batchSize, shuffle: configuration.shuffle,
                                 seed: configuration.seed)
        testLoader = DataLoader(test, batchSize: max(configuration.batchSize, 256))
        switch configuration.optimizer {
        case .adamw:
            optimizer = AdamW(parameters: model.namedParameters, learningRate: configuration.learningRate,
                              weightDecay: configuration.weightDecay)
        case .sgd:
            optimizer = SGD(parameters: model.namedParameters, learningRate: configuration.learningRate,
                            momentum: configuration.momentum, weightDecay: configuration.weightDecay)
        }
    }

    /// Epochs completed so far (restored by `resume`).
    public var completedEpochs: Int { history.count }

    // MARK: Running

    /// Trains the remaining epochs, returning the per-epoch history.
    @discardableResult
    public func run() throws -> [EpochMetrics] {
        let totalSteps = configuration.epochs * trainLoader.batchCount
        let schedule = configuration.learningRateSchedule(totalSteps: totalSteps)
        while completedEpochs < configuration.epochs {
            let epoch = completedEpochs + 1
            let start = Date()
            model.train()
            model.reseed(configuration.seed &+ UInt64(epoch) &* 0x2545_F491_4F6C_DD1D)
            var lossSum = 0.0, correct = 0, seen = 0
            progress.beginEpoch(epoch, of: configuration.epochs, batches: trainLoader.batchCount)
            for (index, batch) in trainLoader.batches(epoch: epoch - 1).enumerated() {
                optimizer.learningRate = schedule.rate(base: configuration.learningRate,
                                                       step: optimizer.stepCount, totalSteps: totalSteps)
                let logits = try model(batch.images)
                let loss = logits.crossEntropy(targets: batch.labels)
                let lossValue = Double(loss.item)
                guard lossValue.isFinite else {
                    Tape.current.reset()
                    throw TrainingError.nonFiniteLoss(epoch: epoch, batch: index + 1, loss: lossValue)
                }
                optimizer.zeroGradients()
                loss.backward()
                optimizer.step()
                lossSum += lossValue * Double(batch.labels.count)
                correct += Self.correctCount(logits, batch.labels)
                seen += batch.labels.count
                progress.batch(index + 1, loss: lossValue, samples: seen, elapsed: Date().timeIntervalSince(start))
            }
            let trainSeconds = Date().timeIntervalSince(start)
            let (testLoss, testAccuracy) = try evaluate(testLoader)
            let metrics = EpochMetrics(
                epoch: epoch, trainLoss: lossSum / Double(max(seen, 1)),
                trainAccuracy: Double(correct) / Double(max(seen, 1)), testLoss: testLoss,
                testAccuracy: testAccuracy, seconds: trainSeconds,
                samplesPerSecond: Double(seen) / max(trainSeconds, 1e-9), learningRate: optimizer.learningRate)
            history.append(metrics)
            progress.endEpoch(metrics)
            try appendMetrics(metrics)
            try saveCheckpoint()
            onEpochEnd?(metrics)
        }
        return history
    }

    /// Mean loss and accuracy over a loader, in evaluation mode without recording.
    public func evaluate(_ loader: DataLoader) throws -> (loss: Double, accuracy: Double) {
        let wasTraining = model.isTraining
        model.eval()
        defer { if wasTraining { model.train() } }
        return try withoutGradients {
            var lossSum = 0.0, correct = 0, seen = 0
            for batch in loader.batches(epoch: 0) {
                let logits = try model(batch.images)
                lossSum += Double(logits.crossEntropy(targets: batch.labels).item) * Double(batch.labels.count)
                correct += Self.correctCount(logits, batch.labels)
                seen += batch.labels.count
            }
            return (lossSum / Double(max(seen, 1)), Double(correct) / Double(max(seen, 1)))
        }
    }

    /// Number of rows of `logits` (N, C) whose largest entry is at the label.
    public static func correctCount(_ logits: Tensor<Float>, _ labels: [Int]) -> Int {
        let classes = logits.shape[1]
        var correct = 0
        logits.scalars.withUnsafeBufferPointer { p in
            for (row, label) in labels.enumerated() {
                var best = 0
                for c in 1..<classes where p[row * classes + c] > p[row * classes + best] { best = c }
                if best == label { correct += 1 }
            }
        }
        return correct
    }

    // MARK: Metrics

    private func appendMetrics(_ metrics: EpochMetrics) throws {
        guard let metricsFile else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var line = try encoder.encode(metrics)
        line.append(0x0A)
        if !FileManager.default.fileExists(atPath: metricsFile.path) {
            try FileManager.default.createDirectory(at: metricsFile.deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: metricsFile.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: metricsFile)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
    }
}
