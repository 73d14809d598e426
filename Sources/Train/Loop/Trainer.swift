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
    /// The training loss of a batch (1-based) was NaN or infinite.
    case nonFiniteLoss(epoch: Int, batch: Int, loss: Double, kept: String)
    /// The optimiser step after a batch (1-based) made a parameter NaN or infinite.
    case nonFiniteParameter(epoch: Int, batch: Int, name: String, kept: String)
    /// The evaluation after an epoch gave a NaN or infinite loss.
    case nonFiniteTestLoss(epoch: Int, loss: Double, kept: String)
    /// The model's output does not fit a batch's labels (epoch 0: the evaluation).
    case outputMismatch(epoch: Int, batch: Int, reason: String)
    case checkpoint(String)

    public var description: String {
        switch self {
        case .nonFiniteLoss(let epoch, let batch, let loss, let kept):
            return "the loss became \(Self.text(loss)) at epoch \(epoch), batch \(batch); training stopped; \(kept)"
        case .nonFiniteParameter(let epoch, let batch, let name, let kept):
            return "parameter \(name) became NaN or infinite in the update after epoch \(epoch), batch \(batch); "
                + "training stopped; \(kept)"
        case .nonFiniteTestLoss(let epoch, let loss, let kept):
            return "the test loss became \(Self.text(loss)) after epoch \(epoch); training stopped; \(kept)"
        case .outputMismatch(let epoch, let batch, let reason):
            return (epoch == 0 ? "evaluation" : "epoch \(epoch)") + ", batch \(batch): \(reason)"
        case .checkpoint(let message): return message
        }
    }

    private static func text(_ value: Double) -> String { value.isNaN ? "NaN" : "\(value)" }
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
    /// Before each test evaluation, recompute the batch norms' running statistics from this many training batches
    /// (in the order of the epoch just trained; see `Module.recalibrateBatchNorm`). 0 keeps the running averages
    /// gathered during training, which lag behind the parameters while the learning rate is high. Training itself
    /// is unchanged: it normalises with batch statistics.
    public var batchNormRecalibrationBatches = 0
    /// Set by `resume`: the metrics file is rewritten from the restored history before training continues, which
    /// drops lines of an epoch that was interrupted before its checkpoint was written.
    var metricsNeedRewrite = false

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
        let totalSteps = configuration.epochs.multipliedReportingOverflow(by: trainLoader.batchCount).overflow
            ? Int.max : configuration.epochs * trainLoader.batchCount
        let schedule = configuration.learningRateSchedule(totalSteps: totalSteps)
        if let checkpointDirectory {
            do {
                try FileManager.default.createDirectory(at: checkpointDirectory, withIntermediateDirectories: true)
            } catch {
                throw DataError(checkpointDirectory, nil,
                                "cannot create the checkpoint directory (\(error.localizedDescription))")
            }
        }
        if metricsNeedRewrite {
            try rewriteMetrics()
            metricsNeedRewrite = false
        }
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
                // Ops recorded outside the loop (a callback running the model with gradients on) are never
                // consumed by a backward pass: drop them rather than let them pile up.
                if Tape.current.count > 0 { Tape.current.reset() }
                let logits: Tensor<Float>
                do {
                    logits = try model(batch.images)
                } catch {
                    Tape.current.reset()  // what the forward pass recorded before it failed
                    throw error
                }
                if let reason = Self.outputFault(logits, batch.labels) {
                    Tape.current.reset()
                    throw TrainingError.outputMismatch(epoch: epoch, batch: index + 1, reason: reason)
                }
                let loss = logits.crossEntropy(targets: batch.labels)
                let lossValue = Double(loss.item)
                guard lossValue.isFinite else {
                    Tape.current.reset()
                    throw TrainingError.nonFiniteLoss(epoch: epoch, batch: index + 1, loss: lossValue,
                                                      kept: keptCheckpointText())
                }
                optimizer.zeroGradients()
                loss.backward()
                optimizer.step()
                if let name = firstNonFiniteParameter() {
                    throw TrainingError.nonFiniteParameter(epoch: epoch, batch: index + 1, name: name,
                                                           kept: keptCheckpointText())
                }
                lossSum += lossValue * Double(batch.labels.count)
                correct += Self.correctCount(logits, batch.labels)
                seen += batch.labels.count
                progress.batch(index + 1, loss: lossValue, samples: seen, elapsed: Date().timeIntervalSince(start))
            }
            let trainSeconds = Date().timeIntervalSince(start)
            try recalibrateBatchNorm(epoch: epoch)
            let (testLoss, testAccuracy) = try evaluate(testLoader)
            guard testLoss.isFinite else {
                throw TrainingError.nonFiniteTestLoss(epoch: epoch, loss: testLoss, kept: keptCheckpointText())
            }
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

    /// Recomputes the batch norms' running statistics from the first `batchNormRecalibrationBatches` training
    /// batches of `epoch` (1-based, the loader's order for that epoch); nothing when that count is 0.
    public func recalibrateBatchNorm(epoch: Int) throws {
        guard batchNormRecalibrationBatches > 0 else { return }
        try model.recalibrateBatchNorm(
            trainLoader.batches(epoch: max(epoch, 1) - 1).prefix(batchNormRecalibrationBatches).lazy.map(\.images))
    }

    /// Mean loss and accuracy over a loader, in evaluation mode without recording.
    public func evaluate(_ loader: DataLoader) throws -> (loss: Double, accuracy: Double) {
        let wasTraining = model.isTraining
        model.eval()
        defer { if wasTraining { model.train() } }
        return try withoutGradients {
            var lossSum = 0.0, correct = 0, seen = 0
            for (index, batch) in loader.batches(epoch: 0).enumerated() {
                let logits = try model(batch.images)
                if let reason = Self.outputFault(logits, batch.labels) {
                    throw TrainingError.outputMismatch(epoch: 0, batch: index + 1, reason: reason)
                }
                lossSum += Double(logits.crossEntropy(targets: batch.labels).item) * Double(batch.labels.count)
                correct += Self.correctCount(logits, batch.labels)
                seen += batch.labels.count
            }
            return (lossSum / Double(max(seen, 1)), Double(correct) / Double(max(seen, 1)))
        }
    }

    /// Why `logits` cannot be scored against `labels` (not (N, C) with one row per label and every label a class
    /// index below C), or nil.
    static func outputFault(_ logits: Tensor<Float>, _ labels: [Int]) -> String? {
        guard logits.rank == 2, logits.shape[0] == labels.count, logits.shape[1] > 0 else {
            return "the model's output of shape \(logits.shape) is not (N, classes) for \(labels.count) labels"
        }
        if let bad = labels.first(where: { $0 < 0 || $0 >= logits.shape[1] }) {
            return "label \(bad) is not one of the model's \(logits.shape[1]) classes"
        }
        return nil
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

    /// The first parameter (by name) holding a NaN or an infinity, or nil.
    func firstNonFiniteParameter() -> String? {
        for (name, parameter) in optimizer.parameters {
            let finite = parameter.value.scalars.withUnsafeBufferPointer { values in
                var ok = true
                for v in values where !v.isFinite { ok = false; break }
                return ok
            }
            if !finite { return name }
        }
        return nil
    }

    /// Which checkpoint survives a stop, for the error message.
    func keptCheckpointText() -> String {
        guard let checkpointDirectory else { return "no checkpoints are written" }
        let url = Self.checkpointURL(in: checkpointDirectory)
        guard completedEpochs > 0, FileManager.default.fileExists(atPath: url.path) else {
            return "no checkpoint had been written yet"
        }
        return "the last good checkpoint (after epoch \(completedEpochs)) is kept in \(url.path)"
    }

    // MARK: Metrics

    /// Replaces the metrics file with one line per epoch of `history`.
    private func rewriteMetrics() throws {
        guard let metricsFile else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var text = Data()
        for metrics in history {
            text.append(try encoder.encode(metrics))
            text.append(0x0A)
        }
        try DataFiles.writeAtomically(metricsFile) { file in
            let written = text.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            if written != text.count {
                throw DataError(metricsFile, nil, "write failed (\(DataFiles.errnoText()))")
            }
        }
    }

    private func appendMetrics(_ metrics: EpochMetrics) throws {
        guard let metricsFile else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var line = try encoder.encode(metrics)
        line.append(0x0A)
        let directory = metricsFile.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw DataError(directory, nil, "cannot create the metrics directory (\(error.localizedDescription))")
        }
        let fd = open(metricsFile.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DataError(metricsFile, nil, "cannot open for appending (\(DataFiles.errnoText()))") }
        defer { close(fd) }
        try line.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DataError(metricsFile, nil, "write failed (\(DataFiles.errnoText()))")
                }
                written += n
            }
        }
    }
}
