import Autograd
import CommandLineSupport
import Foundation
import Models
import NN
import Train

// MARK: - Helpers

func fail(_ message: String, status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(status)
}

/// The one-line (or, for lists of tensors, few-line) message of an error: `<file>: <place>: <fault>` for a faulty
/// file.
func message(_ error: Error) -> String {
    switch error {
    case let error as DataError: return error.description
    case let error as SafetensorsError: return DataError(error).description
    case let error as RunDirectoryError:
        switch error {
        case .occupied:
            return "\(error); continue it with --resume, start it over with --overwrite (replaces only those "
                + "files), or choose another --checkpoint-dir"
        case .busy:
            return "\(error); wait for it to finish or choose another --checkpoint-dir"
        case .notAFile:
            return "\(error)"
        }
    case is UsageError, is TrainingError, is StateDictError, is ShapeError, is LossError, is SummaryError,
         is SubsetError: return "\(error)"
    default: return error.localizedDescription
    }
}

// MARK: - Ctrl-C

/// The message on Ctrl-C for the run in progress: where its last checkpoint is and the command that resumes.
func interruptedText(checkpoint: URL?, epochs: Int) -> String {
    guard let checkpoint, epochs > 0 else {
        return "interrupted before the first checkpoint was written; nothing to resume"
    }
    return "interrupted: the last checkpoint (after epoch \(epochs)) is \(checkpoint.path)\n"
        + "resume with: \(ShellText.resumeCommand(CommandLine.arguments))"
}


// MARK: - One run

struct RunResult {
    var name: String
    var history: [EpochMetrics]
    var parameters: Int
    /// The trained model (for the rotation sweep).
    var model: Module

    /// The epochs' training phases as recorded (test evaluation left out), so that runs resumed or only read back
    /// count in full.
    var trainingSeconds: Double { history.reduce(0) { $0 + $1.seconds } }
}

/// The files one model's run writes.
struct RunPlan {
    var model: ModelName
    var directory: RunDirectory
    var metrics: URL
    var plot: URL
    var weights: URL
    var export: URL?
}

/// The data set's name in run-folder names: "rot-digits", or "rot-digits-n500" for a run on 500 training images.
func datasetLabel(_ options: Options, trainSize: Int?) -> String {
    options.dataset.rawValue + (trainSize.map { "-n\($0)" } ?? "")
}

/// The files of one model's run: in `directory` when given (a seed of a sweep), else in the model's run directory
/// (`--checkpoint-dir`, or runs/MODEL-DATASET[-nN]-PRESET).
func plan(_ model: ModelName, options: Options, trainSize: Int? = nil, directory: URL? = nil) -> RunPlan {
    let several = options.compare || options.trainSizes != nil
    let directory = RunDirectory(directory ?? RunDirectory.url(
        base: options.checkpointDirectory, model: model.rawValue, dataset: datasetLabel(options, trainSize: trainSize),
        preset: options.preset.rawValue, several: several))
    return RunPlan(model: model, directory: directory,
                   metrics: options.metrics.map { URL(fileURLWithPath: $0) } ?? directory.metrics,
                   plot: options.plot.map { URL(fileURLWithPath: $0) } ?? directory.curves,
                   weights: directory.weights(model: model.rawValue),
                   export: exportURL(options.export, for: model.rawValue, several: options.compare))
}

/// Checks every output of the runs before anything is written: none is an input or another output, each can be
/// written, and explicitly named files that exist are replaced only with --overwrite (or rewritten by --resume).
func checkOutputs(_ plans: [RunPlan], figures: [(label: String, url: URL)] = [], options: Options) throws {
    var inputs: [(label: String, url: URL)] = []
    if let file = options.initFile { inputs.append(("--init", URL(fileURLWithPath: file))) }
    if let file = options.weights { inputs.append(("--weights", URL(fileURLWithPath: file))) }
    var outputs: [(label: String, url: URL)] = []
    for p in plans {
        let name = p.model.rawValue
        if !options.evalOnly {
            outputs += [("the checkpoint of \(name)", p.directory.checkpoint),
                        (options.metrics == nil ? "the metrics of \(name)" : "--metrics", p.metrics),
                        (options.plot == nil ? "the curves of \(name)" : "--plot", p.plot),
                        ("the weights of \(name)", p.weights)]
        }
        if let export = p.export { outputs.append(("--export", export)) }
    }
    outputs += figures
    if let conflict = OutputPaths.conflict(inputs: inputs, outputs: outputs) {
        throw UsageError("\(conflict): refusing to overwrite it")
    }
    for (label, url) in outputs {
        try OutputPaths.checkWritable(url)
        let explicit = label.hasPrefix("--")  // named by a flag, not a run-directory file
        let rewrittenByResume = options.resume && (label == "--metrics" || label == "--plot")
        if explicit && !options.overwrite && !rewrittenByResume && OutputPaths.exists(url) {
            throw UsageError("\(label) \(url.path) exists; give --overwrite to replace it")
        }
    }
}

func train(_ p: RunPlan, options: Options, data: (train: ImageDataset, test: ImageDataset)) throws -> RunResult {
    let modelName = p.model.rawValue
    let lock = try p.directory.lock()
    defer { lock.release() }
    let model = p.model.make(batchNorm: options.preset.batchNorm, seed: options.configuration.seed)
    if let initFile = options.initFile {
        try ParameterFile.load(URL(fileURLWithPath: initFile), into: model, modelName: modelName)
        print("initial parameters from \(initFile)")
    }
    let trainer = Trainer(model: model, modelName: modelName, configuration: options.configuration,
                          train: data.train, test: data.test)
    trainer.checkpointDirectory = p.directory.url
    trainer.batchNormRecalibrationBatches = options.recalibrationBatches
    trainer.metricsFile = p.metrics
    let checkpoint = p.directory.checkpoint
    if options.resume {
        guard FileManager.default.fileExists(atPath: checkpoint.path) else {
            throw UsageError("--resume: no checkpoint at \(checkpoint.path)")
        }
        try trainer.resume(from: checkpoint)
        print("resumed from \(checkpoint.path) after epoch \(trainer.completedEpochs)")
    } else {
        let replaced = try p.directory.prepareNewRun(model: modelName, replacing: options.overwrite)
        if !replaced.isEmpty {
            print("--overwrite: replaced the earlier run's \(replaced.map(\.lastPathComponent).joined(separator: ", "))")
        }
        // An explicit --metrics file outside the run directory, allowed by --overwrite: the new run starts it anew.
        if options.overwrite, options.metrics != nil, OutputPaths.exists(p.metrics) {
            try OutputPaths.checkWritable(p.metrics)
            if unlink(p.metrics.path) != 0 { throw UsageError("--metrics: cannot replace \(p.metrics.path)") }
        }
    }
    Interrupt.setMessage(interruptedText(checkpoint: checkpoint, epochs: trainer.completedEpochs))
    print("\(modelName): \(model.parameterCount) parameters; \(data.train.count) training and "
          + "\(data.test.count) test images; \(options.configuration.summary)")
    trainer.onEpochEnd = { _ in
        Interrupt.setMessage(interruptedText(checkpoint: checkpoint, epochs: trainer.completedEpochs))
        try CurvePlot.write([.init(name: modelName, history: trainer.history)],
                            title: "\(modelName) on \(options.dataset.rawValue)", to: p.plot)
    }
    try trainer.run()
    let result = RunResult(name: modelName, history: trainer.history, parameters: model.parameterCount, model: model)
    do {
        try model.save(to: p.weights, metadata: ["model": modelName])
    } catch let error as SafetensorsError {
        throw DataError(error)
    }
    try exportAfterTraining(model, to: p.export)
    if let last = trainer.history.last {
        print(String(format: "done: %@ test accuracy %.2f%% after %d epochs, %@ of training; weights in %@, "
                     + "curves in %@", modelName, 100 * last.testAccuracy, last.epoch,
                     ProgressReporter.duration(result.trainingSeconds), p.weights.path, p.plot.path))
    }
    return result
}

// MARK: - Main

let options: Options
do {
    let parsed = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    if let help = parsed.help {
        print(help)
        exit(0)
    }
    options = parsed.options
} catch {
    fail("\(error)\nRun with --help for the options.", status: 2)
}
if let threads = options.threads { Parallel.setThreads(threads) } else { Parallel.setThreads(Parallel.threads) }

do {
    print("BLAS: \(BLASLibrary.description); framework threads: \(Parallel.threads)")
    if !BLASLibrary.isOpenBLAS {
        print("warning: the running BLAS is not OpenBLAS; run scripts/setup.sh to install it")
    }
    if let folders = options.summarize {
        try summarize(folders.map { URL(fileURLWithPath: $0) }, options: options)
        exit(0)
    }

    if options.evalOnly {
        try checkOutputs([plan(options.model, options: options)], options: options)
        let sweepFolder = URL(fileURLWithPath: options.checkpointDirectory
                                  ?? URL(fileURLWithPath: options.weights!).deletingLastPathComponent().path)
        if options.rotationSweep != nil { try checkSweepOutputs(in: sweepFolder) }
        let (model, name) = try loadModelForEvaluation(path: options.weights!, model: options.model,
                                                       preset: options.preset)
        let data = try LoadedData(options)
        try exportForEvaluation(model, test: data.test, to: exportURL(options.export, for: "", several: false))
        let trainer = Trainer(model: model, modelName: name, configuration: options.configuration,
                              train: data.train, test: data.test, progress: .silent)
        trainer.batchNormRecalibrationBatches = options.recalibrationBatches
        try trainer.recalibrateBatchNorm(epoch: 1)
        let start = Date()
        let (loss, accuracy) = try trainer.evaluate(trainer.testLoader!)
        print(String(format: "%@ on %@ test set (%d images): loss %.4f, accuracy %.2f%% (%.1f s)", name,
                     options.dataset.rawValue, data.test.count, loss, 100 * accuracy, Date().timeIntervalSince(start)))
        if let step = options.rotationSweep {
            _ = try rotationSweep(model, name: name, step: step, data: data, options: options, into: sweepFolder)
        }
        exit(0)
    }

    let models = options.models
    if options.compare && (options.metrics != nil || options.plot != nil) {
        throw UsageError("--metrics and --plot name one file; with --compare or --models each model writes its own "
                         + "into its run directory")
    }
    let sizes: [Int?] = options.trainSizes ?? [options.trainSize]
    let sweeps = sizes.map { Sweep(options: options, models: models, trainSize: $0) }
    try checkOutputs(sweeps.flatMap(\.plans), figures: sweeps.flatMap(\.figures) + efficiencyFigure(options),
                     options: options)
    Interrupt.install(message: interruptedText(checkpoint: nil, epochs: 0))

    let defaults = options.preset == .original && options.configuration == .original
    if defaults && options.seeds == nil && options.trainSizes == nil && options.trainSize == nil {
        print("Running the original experiment: \(models.map(\.rawValue).joined(separator: " and ")) on "
              + "\(options.dataset.rawValue) with the original protocol (AdamW lr 5e-5, weight decay 1e-5, batch 64, "
              + "no shuffling, 51 epochs).")
    }
    let data = try LoadedData(options)
    var points: [DataEfficiency.Point] = []
    for sweep in sweeps {
        points += try sweep.run(data: data)
    }
    if let (label, url) = efficiencyFigure(options).first {
        let efficiency = DataEfficiency(points: points)
        print("\ndata efficiency: test accuracy against the number of training images")
        print(efficiency.table)
        try SVGChart.write(efficiency.svg(title: "\(models.map { $0.rawValue.uppercased() }.joined(separator: " vs ")) "
                                          + "on \(options.dataset.rawValue), \(options.preset.rawValue) recipe: "
                                          + "data efficiency"), to: url)
        print("\(label): \(url.path)")
    }
} catch let error as UsageError {
    fail("\(error)\nRun with --help for the options.", status: 2)
} catch {
    fail(message(error))
}
