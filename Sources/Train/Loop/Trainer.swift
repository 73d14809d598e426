import Autograd
import Foundation
import NN

// MARK: - Configuration and results

/// Which optimiser a run uses.
public enum OptimizerKind: String, Sendable, Codable {
    case adamw, sgd
    /// An optimiser instance of another type, given to `Trainer(model:optimizer:...)`.
    case custom
}

/// The learning-rate schedule of a `TrainingConfiguration`, by name (as stored in checkpoints and given on the
/// command line). An unknown name is an error, never a silent "constant".
public enum ScheduleKind: String, Sendable, Codable, CaseIterable {
    /// The base rate throughout.
    case constant
    /// Cosine decay to 1 % of the base rate, after `warmupSteps` linear warm-up steps.
    case cosine
    /// x0.1 every third of the run.
    case step

    /// The schedule named `text`; throws naming the valid names otherwise.
    public init(parsing text: String) throws {
        guard let kind = ScheduleKind(rawValue: text) else {
            throw ScheduleError(name: text)
        }
        self = kind
    }
}

/// An unknown schedule name.
public struct ScheduleError: Error, CustomStringConvertible {
    public let name: String
    public var description: String {
        "unknown schedule '\(name)' (\(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")))"
    }
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
    /// Constant, cosine (with warm-up `warmupSteps`) or step (x0.1 every third of the run).
    public var schedule = ScheduleKind.constant
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
        c.schedule = .cosine
        c.warmupSteps = 100
        c.epochs = 15
        return c
    }

    public init() {}

    /// The schedule for a run of `totalSteps` optimiser steps.
    public func learningRateSchedule(totalSteps: Int) -> LearningRateSchedule {
        switch schedule {
        case .constant: return .constant
        case .cosine: return .cosine(warmup: warmupSteps, floor: 0.01)
        case .step: return .step(every: max(1, totalSteps / 3), gamma: 0.1)
        }
    }
}

/// The measurements of one epoch. Accuracies are 0 for a loss that does not classify (regression), and the test
/// fields are 0 for a run without a test set.
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

/// One optimiser step, as reported to `Trainer.onStep`.
public struct StepReport: Sendable {
    /// The epoch (1-based) and the batch in it (1-based).
    public var epoch: Int, batch: Int
    /// Optimiser steps taken so far, this one included.
    public var step: Int
    /// The batch's loss (before the step) and the learning rate the step used.
    public var loss: Double, learningRate: Double
    /// Samples in the batch.
    public var samples: Int
}

/// Trains a model on a data set: each epoch runs every batch through the model, the loss and an optimiser step,
/// then evaluates the test set (when there is one), writes a checkpoint and a metrics line (when asked) and reports
/// progress.
///
/// Two ways to make one: from a `TrainingConfiguration` (the optimiser and the schedule built from it, cross-entropy:
/// the experiment's recipes), or from the pieces — a model, an optimiser instance, a loss, a schedule:
///
/// ```swift
/// let trainer = Trainer(model: model, optimizer: AdamW(parameters: model.namedParameters, learningRate: 1e-3),
///                       loss: .crossEntropy, schedule: .cosine(warmup: 10, floor: 0.01), epochs: 3, batchSize: 32,
///                       train: trainSet, test: testSet)
/// trainer.onEpochEnd = { print($0.testAccuracy) }
/// try trainer.run()
/// ```
public final class Trainer {
    public let model: Module
    public let modelName: String
    /// The run's settings (for a trainer made from pieces: those that the pieces give, stored in checkpoints so that
    /// a resumed run can be checked against them).
    public let configuration: TrainingConfiguration
    public let trainLoader: DataLoader
    /// The test set's loader; nil when the run evaluates nothing (the test fields of the metrics are then 0).
    public let testLoader: DataLoader?
    public let optimizer: Optimizer
    /// The loss minimised.
    public let loss: Loss
    /// The learning-rate schedule given to `init(model:optimizer:...)`; nil: the configuration's.
    public let schedule: LearningRateSchedule?
    /// Where `last.safetensors` is written after every epoch (nil: no checkpoints).
    public var checkpointDirectory: URL?
    /// A JSON-lines file that receives one object per epoch.
    public var metricsFile: URL?
    public var progress: ProgressReporter
    public internal(set) var history: [EpochMetrics] = []
    /// Called after each epoch, after its checkpoint is written (for example to update a plot); an error it throws
    /// ends `run()` with that error.
    public var onEpochEnd: ((EpochMetrics) throws -> Void)?
    /// Called after each optimiser step; an error it throws ends `run()` with that error.
    public var onStep: ((StepReport) throws -> Void)?
    /// Before each test evaluation, recompute the batch norms' running statistics from this many training batches
    /// (in the order of the epoch just trained; see `Module.recalibrateBatchNorm`). 0 keeps the running averages
    /// gathered during training, which lag behind the parameters while the learning rate is high. Training itself
    /// is unchanged: it normalises with batch statistics.
    public var batchNormRecalibrationBatches = 0
    /// Set by `resume`: the metrics file is rewritten from the restored history before training continues, which
    /// drops lines of an epoch that was interrupted before its checkpoint was written.
    var metricsNeedRewrite = false

    /// A trainer for `configuration`: its optimiser (AdamW or SGD over the model's parameters), its schedule, and
    /// cross-entropy on class labels; `test` is evaluated after every epoch.
    public init(model: Module, modelName: String, configuration: TrainingConfiguration, train: any Dataset,
                test: any Dataset, progress: ProgressReporter = ProgressReporter()) {
        self.model = model
        self.modelName = modelName
        self.configuration = configuration
        self.progress = progress
        self.loss = .crossEntropy
        self.schedule = nil
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
        case .custom:
            fatalError("Trainer: a configuration with optimizer 'custom' needs an optimiser instance: "
                       + "use Trainer(model:optimizer:loss:schedule:...)")
        }
    }

    /// A trainer from its pieces: `optimizer` (over the model's parameters; its learning rate is the schedule's
    /// base), `loss`, `schedule`, `epochs` passes over `train` in batches of `batchSize` (shuffled each epoch from
    /// `seed` when `shuffle`), and, after each epoch, an evaluation of `test` when given.
    public init(model: Module, optimizer: Optimizer, loss: Loss = .crossEntropy,
                schedule: LearningRateSchedule = .constant, epochs: Int, batchSize: Int, shuffle: Bool = false,
                seed: UInt64 = 0, train: any Dataset, test: (any Dataset)? = nil, modelName: String = "model",
                progress: ProgressReporter = ProgressReporter()) {
        check(epochs >= 1, "Trainer: epochs must be at least 1, got \(epochs)")
        check(batchSize >= 1, "Trainer: batchSize must be at least 1, got \(batchSize)")
        var configuration = TrainingConfiguration()
        configuration.epochs = epochs
        configuration.batchSize = batchSize
        configuration.shuffle = shuffle
        configuration.seed = seed
        configuration.learningRate = optimizer.learningRate
        switch optimizer {
        case let adamw as AdamW:
            configuration.optimizer = .adamw
            configuration.weightDecay = adamw.weightDecay
        case let sgd as SGD:
            configuration.optimizer = .sgd
            configuration.weightDecay = sgd.weightDecay
            configuration.momentum = sgd.momentum
        default:
            configuration.optimizer = .custom
            configuration.weightDecay = 0
        }
        if case .cosine(let warmup, _) = schedule {
            configuration.schedule = .cosine
            configuration.warmupSteps = warmup
        } else if case .step = schedule {
            configuration.schedule = .step
        }
        self.model = model
        self.modelName = modelName
        self.configuration = configuration
        self.optimizer = optimizer
        self.loss = loss
        self.schedule = schedule
        self.progress = progress
        trainLoader = DataLoader(train, batchSize: batchSize, shuffle: shuffle, seed: seed)
        testLoader = test.map { DataLoader($0, batchSize: max(batchSize, 256)) }
    }

    /// Epochs completed so far (restored by `resume`).
    public var completedEpochs: Int { history.count }

    // MARK: Running

    /// Trains the remaining epochs, returning the per-epoch history.
    @discardableResult
    public func run() throws -> [EpochMetrics] {
        let totalSteps = configuration.epochs.multipliedReportingOverflow(by: trainLoader.batchCount).overflow
            ? Int.max : configuration.epochs * trainLoader.batchCount
        let schedule = self.schedule ?? configuration.learningRateSchedule(totalSteps: totalSteps)
        let base = configuration.learningRate
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
                optimizer.learningRate = schedule.rate(base: base, step: optimizer.stepCount, totalSteps: totalSteps)
                // Ops recorded outside the loop (a callback running the model with gradients on) are never
                // consumed by a backward pass: drop them rather than let them pile up.
                if Tape.current.count > 0 { Tape.current.reset() }
                let logits: Tensor<Float>
                do {
                    logits = try model(batch.inputs)
                } catch {
                    Tape.current.reset()  // what the forward pass recorded before it failed
                    throw error
                }
                if let reason = self.loss.fault(logits, batch) {
                    Tape.current.reset()
                    throw TrainingError.outputMismatch(epoch: epoch, batch: index + 1, reason: reason)
                }
                let loss: Tensor<Float>
                do {
                    loss = try self.loss.compute(logits, batch)
                } catch {
                    Tape.current.reset()
                    throw error
                }
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
                lossSum += lossValue * Double(batch.count)
                if self.loss.classifies { correct += Self.correctCount(logits, batch.labels) }
                seen += batch.count
                progress.batch(index + 1, loss: lossValue, samples: seen, elapsed: Date().timeIntervalSince(start))
                try onStep?(StepReport(epoch: epoch, batch: index + 1, step: optimizer.stepCount, loss: lossValue,
                                       learningRate: optimizer.learningRate, samples: batch.count))
            }
            let trainSeconds = Date().timeIntervalSince(start)
            try recalibrateBatchNorm(epoch: epoch)
            let (testLoss, testAccuracy) = try testLoader.map { try evaluate($0) } ?? (0, 0)
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
            try onEpochEnd?(metrics)
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

    /// Mean loss and accuracy (0 for a loss that does not classify) over a loader, in evaluation mode without
    /// recording.
    public func evaluate(_ loader: DataLoader) throws -> (loss: Double, accuracy: Double) {
        let wasTraining = model.isTraining
        model.eval()
        defer { if wasTraining { model.train() } }
        return try withoutGradients {
            var lossSum = 0.0, correct = 0, seen = 0
            for (index, batch) in loader.batches(epoch: 0).enumerated() {
                let logits = try model(batch.inputs)
                if let reason = loss.fault(logits, batch) {
                    throw TrainingError.outputMismatch(epoch: 0, batch: index + 1, reason: reason)
                }
                lossSum += Double(try loss.compute(logits, batch).item) * Double(batch.count)
                if loss.classifies { correct += Self.correctCount(logits, batch.labels) }
                seen += batch.count
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
