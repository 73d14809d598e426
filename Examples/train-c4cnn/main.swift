import Autograd
import Foundation
import Models
import NN
import Train

// MARK: - Helpers

func fail(_ message: String, status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(status)
}

func describe(_ c: TrainingConfiguration) -> String {
    let optimizer = c.optimizer == .adamw ? "AdamW" : "SGD"
    return "\(optimizer) lr \(c.learningRate), weight decay \(c.weightDecay), batch \(c.batchSize), "
        + (c.shuffle ? "shuffled (seed \(c.seed))" : "no shuffling") + ", \(c.schedule) schedule, \(c.epochs) epochs"
}

func makeModel(_ name: String, preset: String, seed: UInt64) -> Module {
    let kind = ModelName(rawValue: name)!
    return preset == "strong" ? kind.makeStrong(seed: seed) : kind.make(seed: seed)
}

/// Loads parameters from a state dict (ours or PyTorch's), a checkpoint (`model.` names) or an exported plain model;
/// a malformed or misfitting file is refused with a `DataError` and the model is left unchanged.
func loadWeights(_ path: String, into model: Module, modelName: String) throws {
    try ParameterFile.load(URL(fileURLWithPath: path), into: model, modelName: modelName)
}

/// The one-line (or, for lists of tensors, few-line) message of an error: `<file>: <place>: <fault>` for a faulty
/// file.
func message(_ error: Error) -> String {
    switch error {
    case let error as DataError: return error.description
    case let error as SafetensorsError: return DataError(error).description
    case is UsageError, is TrainingError, is StateDictError, is ShapeError: return "\(error)"
    default: return error.localizedDescription
    }
}

// MARK: - One run

struct RunResult {
    var name: String
    var history: [EpochMetrics]
    var parameters: Int

    /// The epochs' training phases as recorded (test evaluation left out), so that runs resumed or only read back
    /// count in full.
    var trainingSeconds: Double { history.reduce(0) { $0 + $1.seconds } }
}

func train(modelName: String, options: Options, data: (train: ImageDataset, test: ImageDataset),
           directory: URL) throws -> RunResult {
    let model = makeModel(modelName, preset: options.preset, seed: options.configuration.seed)
    if let initFile = options.initFile {
        try loadWeights(initFile, into: model, modelName: modelName)
        print("initial parameters from \(initFile)")
    }
    let trainer = Trainer(model: model, modelName: modelName, configuration: options.configuration,
                          train: data.train, test: data.test)
    trainer.checkpointDirectory = directory
    trainer.batchNormRecalibrationBatches = options.recalibrationBatches
    trainer.metricsFile = options.metrics.map { URL(fileURLWithPath: $0) }
        ?? directory.appendingPathComponent("metrics.jsonl")
    let plotURL = options.plot.map { URL(fileURLWithPath: $0) } ?? directory.appendingPathComponent("curves.svg")
    let checkpoint = Trainer.checkpointURL(in: directory)
    if options.resume {
        guard FileManager.default.fileExists(atPath: checkpoint.path) else {
            throw UsageError(description: "--resume: no checkpoint at \(checkpoint.path)")
        }
        try trainer.resume(from: checkpoint)
        print("resumed from \(checkpoint.path) after epoch \(trainer.completedEpochs)")
    } else if FileManager.default.fileExists(atPath: trainer.metricsFile!.path) {
        try FileManager.default.removeItem(at: trainer.metricsFile!)
    }
    print("\(modelName): \(model.parameterCount) parameters; \(data.train.count) training and "
          + "\(data.test.count) test images; \(describe(options.configuration))")
    trainer.onEpochEnd = { _ in
        try? CurvePlot.write([.init(name: modelName, history: trainer.history)],
                             title: "\(modelName) on \(options.dataset.rawValue)", to: plotURL)
    }
    try trainer.run()
    let result = RunResult(name: modelName, history: trainer.history, parameters: model.parameterCount)
    let weights = directory.appendingPathComponent("\(modelName).safetensors")
    do {
        try model.save(to: weights, metadata: ["model": modelName])
    } catch let error as SafetensorsError {
        throw DataError(error)
    }
    try exportAfterTraining(model, name: modelName, several: options.compare)
    if let last = trainer.history.last {
        print(String(format: "done: %@ test accuracy %.2f%% after %d epochs, %@ of training; weights in %@, "
                     + "curves in %@", modelName, 100 * last.testAccuracy, last.epoch,
                     ProgressReporter.duration(result.trainingSeconds), weights.path, plotURL.path))
    }
    return result
}

// MARK: - Main

let options: Options
do {
    options = try Options.parse(try ExportOption.strip(Array(CommandLine.arguments.dropFirst())))
} catch {
    fail("\(error)\nRun with --help for the options.", status: 2)
}
if options.help {
    print(Options.usage + "\n" + ExportOption.usage)
    exit(0)
}
if let threads = options.threads { Parallel.setThreads(threads) } else { Parallel.setThreads(Parallel.threads) }

do {
    print("BLAS: \(BLASLibrary.description); framework threads: \(Parallel.threads)")
    if !BLASLibrary.isOpenBLAS {
        print("warning: the running BLAS is not OpenBLAS; run scripts/setup.sh to install it")
    }
    let dataDirectory = URL(fileURLWithPath: options.dataDirectory)

    if options.evalOnly {
        let (model, name) = try loadModelForEvaluation(path: options.weights!, model: options.model,
                                                       preset: options.preset)
        let data = try DataCatalog(directory: dataDirectory).load(options.dataset) { print($0) }
        try exportForEvaluation(model, test: data.test)
        let trainer = Trainer(model: model, modelName: name, configuration: options.configuration,
                              train: data.train, test: data.test, progress: .silent)
        trainer.batchNormRecalibrationBatches = options.recalibrationBatches
        try trainer.recalibrateBatchNorm(epoch: 1)
        let start = Date()
        let (loss, accuracy) = try trainer.evaluate(trainer.testLoader)
        print(String(format: "%@ on %@ test set (%d images): loss %.4f, accuracy %.2f%% (%.1f s)", name,
                     options.dataset.rawValue, data.test.count, loss, 100 * accuracy, Date().timeIntervalSince(start)))
        exit(0)
    }

    let models = options.comparedModels ?? [options.model]
    let defaults = options.preset == "original" && options.configuration == .original
    if defaults {
        print("Running the original experiment: \(models.joined(separator: " and ")) on \(options.dataset.rawValue) "
              + "with the original protocol (AdamW lr 5e-5, weight decay 1e-5, batch 64, no shuffling, 51 epochs).")
    }
    let data = try DataCatalog(directory: dataDirectory).load(options.dataset) { print($0) }
    var results: [RunResult] = []
    for model in models {
        let directory = URL(fileURLWithPath: options.checkpointDirectory ?? "runs")
            .appendingPathComponent(options.checkpointDirectory == nil || options.compare
                                    ? "\(model)-\(options.dataset.rawValue)-\(options.preset)" : "")
        results.append(try train(modelName: model, options: options, data: data, directory: directory))
    }
    if results.count > 1 {
        print("\nmodel    parameters  epochs  test accuracy  train time")
        for r in results {
            // (String(format:) ignores the width of %@, so the name is padded here.)
            print(r.name.padding(toLength: 8, withPad: " ", startingAt: 0)
                  + String(format: " %10d  %6d  %12.2f%%  %@", r.parameters, r.history.count,
                         100 * (r.history.last?.testAccuracy ?? 0),
                         ProgressReporter.duration(r.trainingSeconds)))
        }
        let plot = URL(fileURLWithPath: options.checkpointDirectory ?? "runs")
            .appendingPathComponent("compare-\(options.dataset.rawValue)-\(options.preset).svg")
        try CurvePlot.write(results.map { .init(name: $0.name, history: $0.history) },
                            title: "\(models.map { $0.uppercased() }.joined(separator: " vs ")) on "
                                + "\(options.dataset.rawValue), \(options.preset) recipe", to: plot)
        print("curves: \(plot.path)")
    }
} catch let error as UsageError {
    fail("\(error)\nRun with --help for the options.", status: 2)
} catch {
    fail(message(error))
}
