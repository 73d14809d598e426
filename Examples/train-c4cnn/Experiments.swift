import Autograd
import CommandLineSupport
import Foundation
import Models
import NN
import Train

// The experiments over several runs: repeated seeds with their summary, training-set sizes, the rotation sweep.
// The statistics, files and figures are Train's (SeedSummary, RotationSweep, DataEfficiency, SVGChart); this file
// decides which runs to make and where they go.

// MARK: - Data

/// The data set as the models take it (edge-padded to 33x33) and the test images as stored, which the rotation
/// sweep turns before padding them as the training data was padded.
struct LoadedData {
    let train: ImageDataset
    let test: ImageDataset
    let testUnpadded: ImageDataset

    init(_ options: Options) throws {
        let (train, test) = try DataCatalog(directory: URL(fileURLWithPath: options.dataDirectory))
            .loadUnpadded(options.dataset) { print($0) }
        self.train = padded(train)
        self.test = padded(test)
        testUnpadded = test
    }
}

/// The padding `DataCatalog.load` gives: 28x28 to 33x33, edges repeated.
func padded(_ data: ImageDataset) -> ImageDataset {
    data.edgePadded(before: DataCatalog.padBefore, after: DataCatalog.padAfter)
}

/// "C4CNN vs CNN".
func modelsTitle(_ models: [String]) -> String { models.map { $0.uppercased() }.joined(separator: " vs ") }

/// The folder of `--train-sizes`' and `--models`' shared figures: --checkpoint-dir, else runs/.
func figuresFolder(_ options: Options) -> URL { URL(fileURLWithPath: options.checkpointDirectory ?? "runs") }

/// The data-efficiency figure of `--train-sizes` (none otherwise).
func efficiencyFigure(_ options: Options) -> [(label: String, url: URL)] {
    guard options.trainSizes != nil else { return [] }
    return [("the data-efficiency figure", figuresFolder(options)
        .appendingPathComponent("efficiency-\(options.dataset.rawValue)-\(options.preset.rawValue).svg"))]
}

// MARK: - Rotation sweep

/// The sweep's files in `folder`: sweep.json and sweep.svg.
func sweepFiles(in folder: URL) -> [(label: String, url: URL)] {
    [("the rotation sweep", folder.appendingPathComponent(SweepResult.fileName)),
     ("the rotation-sweep figure", folder.appendingPathComponent(SweepResult.plotName))]
}

func checkSweepOutputs(in folder: URL) throws {
    for (_, url) in sweepFiles(in: folder) { try OutputPaths.checkWritable(url) }
}

/// The test accuracy of `model` with every test image turned by 0, step, 2 step, ... degrees; printed as a table
/// and written as sweep.json and sweep.svg into `folder`.
func rotationSweep(_ model: Module, name: String, step: Double, data: LoadedData, options: Options,
                   into folder: URL) throws -> SweepResult {
    let trainer = Trainer(model: model, modelName: name, configuration: options.configuration, train: data.train,
                          test: data.test, progress: .silent)
    let batchSize = trainer.testLoader!.batchSize
    let start = Date()
    let result = try RotationSweep.run(angles: RotationSweep.angles(step: step), test: data.testUnpadded,
                                       prepare: padded) { images in
        try trainer.evaluate(DataLoader(images, batchSize: batchSize)).accuracy
    }
    print("\nrotation sweep of \(name) (\(data.test.count) test images, every one turned; "
          + String(format: "%.1f s):", Date().timeIntervalSince(start)))
    print(SweepResult.table([(name, result)]))
    let files = sweepFiles(in: folder)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try result.write(to: files[0].url)
    try SVGChart.write(SweepResult.svg([(name, result, nil)], title: "\(name.uppercased()) on \(options.dataset.rawValue): "
                                       + "accuracy against test-time rotation"), to: files[1].url)
    print("sweep: \(files[0].url.path), \(files[1].url.path)")
    return result
}

/// Several models' sweeps (means over seeds, with their std, when `std` is given): a table and one figure.
func writeSweepComparison(_ sweeps: [(name: String, result: SweepResult, std: [Double]?)], options: Options,
                          to url: URL, note: String) throws {
    print("\nrotation sweep, \(note):")
    print(SweepResult.table(sweeps.map { ($0.name, $0.result) }))
    try SVGChart.write(SweepResult.svg(sweeps, title: "\(modelsTitle(sweeps.map(\.name))) on "
                                       + "\(options.dataset.rawValue): accuracy against test-time rotation"), to: url)
    print("sweep figure: \(url.path)")
}

// MARK: - Runs of one training-set size

/// The runs of one training-set size: one per model, or with `--seeds` one per model and seed.
struct Sweep {
    private(set) var options: Options
    let models: [ModelName]
    let trainSize: Int?
    /// With --seeds: the sweep's folder (seed-<s>/<model>/ runs, summary.json, summary.svg).
    let seedsFolder: URL?
    let plans: [RunPlan]
    /// The files written beside the runs (the comparison plot, the summary, the sweeps' figures).
    let figures: [(label: String, url: URL)]

    init(options: Options, models: [ModelName], trainSize: Int?) {
        self.options = options
        self.models = models
        self.trainSize = trainSize
        let label = "\(datasetLabel(options, trainSize: trainSize))-\(options.preset.rawValue)"
        var figures: [(label: String, url: URL)] = []
        if let seeds = options.seeds {
            let folder: URL
            if let base = options.checkpointDirectory {
                folder = options.trainSizes == nil ? URL(fileURLWithPath: base)
                    : URL(fileURLWithPath: base).appendingPathComponent("\(label)-seeds")
            } else {
                folder = URL(fileURLWithPath: "runs").appendingPathComponent("\(label)-seeds")
            }
            seedsFolder = folder
            plans = seeds.seeds.flatMap { seed in
                models.map { plan($0, options: options, trainSize: trainSize,
                                  directory: SeedSweep.runFolder(folder, seed: seed, model: $0.rawValue)) }
            }
            figures = [("the summary", folder.appendingPathComponent(SeedSweep.summaryName)),
                       ("the summary figure", folder.appendingPathComponent(SeedSweep.summaryPlotName))]
            if options.rotationSweep != nil {
                figures.append(("the rotation-sweep figure", folder.appendingPathComponent(SweepResult.plotName)))
            }
        } else {
            seedsFolder = nil
            plans = models.map { plan($0, options: options, trainSize: trainSize) }
            if models.count > 1 {
                figures.append(("the comparison plot", figuresFolder(options).appendingPathComponent("compare-\(label).svg")))
                if options.rotationSweep != nil {
                    figures.append(("the rotation-sweep figure",
                                    figuresFolder(options).appendingPathComponent("sweep-\(label).svg")))
                }
            }
        }
        if options.rotationSweep != nil { figures += plans.flatMap { sweepFiles(in: $0.directory.url) } }
        self.figures = figures
    }

    /// The training images of a run from `seed`.
    func trainingSet(_ data: LoadedData, seed: UInt64) throws -> ImageDataset {
        guard let trainSize else { return data.train }
        return try data.train.trainingSubset(count: trainSize, shuffled: options.configuration.shuffle, seed: seed)
    }

    /// Trains (or reads back) every run; returns each model's final test accuracies for the data-efficiency table.
    /// A smaller training set trains for the whole set's number of optimiser steps (unless --same-epochs).
    func run(data: LoadedData) throws -> [DataEfficiency.Point] {
        guard let trainSize, !options.sameEpochs, trainSize < data.train.count else { return try runAtThisSize(data) }
        var sized = self
        let full = options.configuration
        sized.options.configuration.epochs = full.epochsForEqualSteps(fullCount: data.train.count,
                                                                      subsetCount: trainSize)
        print("\n\(trainSize) training images: \(sized.options.configuration.epochs) epochs, the optimiser steps of "
              + "\(full.epochs) epochs on all \(data.train.count) (--same-epochs keeps \(full.epochs))")
        return try sized.runAtThisSize(data)
    }

    private func runAtThisSize(_ data: LoadedData) throws -> [DataEfficiency.Point] {
        if let seedsFolder, let seeds = options.seeds { return try runSeeds(seeds.seeds, folder: seedsFolder, data: data) }
        let trainSet = try trainingSet(data, seed: options.configuration.seed)
        var results: [RunResult] = []
        for p in plans {
            results.append(try train(p, options: options, data: (trainSet, data.test)))
        }
        if models.count > 1 {
            print("\nmodel    parameters  epochs  test accuracy  train time")
            for r in results {
                // (String(format:) ignores the width of %@, so the name is padded here.)
                print(r.name.padding(toLength: 8, withPad: " ", startingAt: 0)
                      + String(format: " %10d  %6d  %12.2f%%  %@", r.parameters, r.history.count,
                             100 * (r.history.last?.testAccuracy ?? 0),
                             ProgressReporter.duration(r.trainingSeconds)))
            }
            let comparePlot = figures.first { $0.label == "the comparison plot" }!.url
            try CurvePlot.write(results.map { .init(name: $0.name, history: $0.history) },
                                title: "\(modelsTitle(results.map(\.name))) on \(options.dataset.rawValue), "
                                    + "\(options.preset.rawValue) recipe", to: comparePlot)
            print("curves: \(comparePlot.path)")
        }
        if let step = options.rotationSweep {
            var sweeps: [(name: String, result: SweepResult, std: [Double]?)] = []
            for (p, r) in zip(plans, results) {
                let sweep = try rotationSweep(r.model, name: r.name, step: step, data: data, options: options,
                                              into: p.directory.url)
                sweeps.append((r.name, sweep, nil))
            }
            if let figure = figures.first(where: { $0.label == "the rotation-sweep figure" }) {
                try writeSweepComparison(sweeps, options: options, to: figure.url, note: "test accuracy (%)")
            }
        }
        return results.map {
            DataEfficiency.Point(model: $0.name, trainSize: trainSet.count, accuracies: [$0.history.last?.testAccuracy ?? 0])
        }
    }

    /// Every model from every seed, each in `folder`/seed-<s>/<model>/; a finished seed (its result.json) is read
    /// back with --resume, an unfinished one continued from its checkpoint; then the summary.
    func runSeeds(_ seeds: [Int], folder: URL, data: LoadedData) throws -> [DataEfficiency.Point] {
        var runs: [(run: SeedRun, source: URL?)] = []
        var sweeps: [String: [SweepResult]] = [:]
        var index = 0
        for seed in seeds {
            var o = options
            o.configuration.seed = UInt64(seed)
            let trainSet = try trainingSet(data, seed: UInt64(seed))
            for model in models {
                let p = plans[index]
                index += 1
                let expected = SeedRun(model: model.rawValue, seed: seed, dataset: options.dataset.rawValue,
                                       preset: options.preset.rawValue, epochs: o.configuration.epochs,
                                       trainSize: trainSet.count, testAccuracy: 0, seconds: 0)
                print("\n[seed \(seed)] \(model.rawValue) in \(p.directory.url.path)")
                let record: SeedRun
                var trained: Module?
                if options.resume && OutputPaths.exists(p.directory.result) {
                    record = try SeedRun.read(p.directory.result)
                    var compared = record
                    (compared.testAccuracy, compared.seconds) = (0, 0)
                    guard compared == expected else {
                        throw UsageError("\(p.directory.result.path) records \(record.model) seed \(record.seed) on "
                                         + "\(record.dataset), \(record.preset), \(record.epochs) epochs, "
                                         + "\(record.trainSize) training images: not this sweep's run; choose "
                                         + "another --checkpoint-dir")
                    }
                    print(String(format: "finished earlier: test accuracy %.2f%%, %@ of training (read back from "
                                 + "%@)", 100 * record.testAccuracy, ProgressReporter.duration(record.seconds),
                                 p.directory.result.path))
                } else {
                    o.resume = options.resume && OutputPaths.exists(p.directory.checkpoint)
                    let r = try train(p, options: o, data: (trainSet, data.test))
                    record = SeedRun(model: model.rawValue, seed: seed, dataset: expected.dataset,
                                     preset: expected.preset, epochs: expected.epochs, trainSize: trainSet.count,
                                     testAccuracy: r.history.last?.testAccuracy ?? 0, seconds: r.trainingSeconds)
                    try record.write(to: p.directory.result)
                    trained = r.model
                }
                runs.append((record, p.directory.result))
                if let step = options.rotationSweep {
                    let instance = try trained ?? loadModelForEvaluation(path: p.weights.path, model: model,
                                                                         preset: options.preset).model
                    sweeps[model.rawValue, default: []].append(
                        try rotationSweep(instance, name: model.rawValue, step: step, data: data, options: o,
                                          into: p.directory.url))
                }
            }
        }
        let summary = try SeedSummary(runs, order: models.map(\.rawValue))
        try report(summary, folder: folder)
        if options.rotationSweep != nil {
            let means = models.map(\.rawValue).compactMap { name -> (name: String, result: SweepResult, std: [Double]?)? in
                guard let list = sweeps[name] else { return nil }
                let (mean, std) = SweepResult.mean(list)
                return (name, mean, std)
            }
            try writeSweepComparison(means, options: options, to: folder.appendingPathComponent(SweepResult.plotName),
                                     note: "mean test accuracy (%) over \(seeds.count) seeds")
        }
        return summary.models.map {
            DataEfficiency.Point(model: $0.model, trainSize: summary.trainSize, accuracies: $0.accuracies)
        }
    }
}

/// "0..4" for consecutive seeds, else "0, 2, 5".
func seedText(_ seeds: [Int]) -> String {
    let sorted = seeds.sorted()
    if sorted.count > 2, sorted.last! - sorted.first! == sorted.count - 1 { return "\(sorted.first!)..\(sorted.last!)" }
    return sorted.map(String.init).joined(separator: ", ")
}

/// Prints the summary's table and writes summary.json and summary.svg into `folder`.
func report(_ summary: SeedSummary, folder: URL) throws {
    let size = "\(summary.trainSize) training images"
    print("\nfinal test accuracy over seeds (\(summary.dataset), \(summary.preset) recipe, \(summary.epochs) epochs, "
          + "\(size)):")
    for m in summary.models { print("  \(m.model): seeds \(seedText(m.seeds))") }
    print(summary.table)
    let files = try summary.write(into: folder, title: "\(modelsTitle(summary.models.map(\.model))) on "
                                  + "\(summary.dataset), \(summary.preset) recipe, \(summary.epochs) epochs, \(size)")
    print("summary: \(files.json.path), \(files.svg.path)")
}

// MARK: - --summarize

/// Gathers the finished seeds of `folders` (with --model/--models, only those models, in that order) into one
/// summary, written into --checkpoint-dir or the first folder.
func summarize(_ folders: [URL], options: Options) throws {
    var runs = try SeedSweep.finishedRuns(in: folders)
    let order = options.comparedModels?.map(\.rawValue)
    if let order { runs = runs.filter { order.contains($0.run.model) } }
    guard !runs.isEmpty else {
        throw SummaryError("no finished seeds (seed-<s>/<model>/\(SeedRun.fileName)) in "
                           + folders.map(\.path).joined(separator: ", "))
    }
    print("--summarize: \(runs.count) finished runs in \(folders.map(\.path).joined(separator: ", "))")
    let summary = try SeedSummary(runs, order: order)
    let folder = options.checkpointDirectory.map { URL(fileURLWithPath: $0) } ?? folders[0]
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try report(summary, folder: folder)
    try summarizeSweeps(runs, order: summary.models.map(\.model), options: options, into: folder)
}

/// The mean rotation sweep per model over the seeds whose run folders hold a sweep.json (written by
/// `--rotation-sweep`), drawn as sweep.svg in `folder`; a model with seeds lacking one is left out, with a note.
func summarizeSweeps(_ runs: [(run: SeedRun, source: URL?)], order: [String], options: Options,
                     into folder: URL) throws {
    var means: [(name: String, result: SweepResult, std: [Double]?)] = []
    var counts: [Int] = []
    for model in order {
        let files = runs.filter { $0.run.model == model }.compactMap { $0.source?.deletingLastPathComponent()
            .appendingPathComponent(SweepResult.fileName) }
        let sweeps = try files.filter { OutputPaths.exists($0) }.map { try SweepResult.read($0) }
        guard !sweeps.isEmpty else { continue }
        guard sweeps.count == files.count, sweeps.allSatisfy({ $0.angles == sweeps[0].angles }) else {
            print("rotation sweep of \(model): \(sweeps.count) of \(files.count) seeds have a sweep.json with the same "
                  + "angles; left out of the sweep figure")
            continue
        }
        let (mean, std) = SweepResult.mean(sweeps)
        means.append((model, mean, std))
        counts.append(sweeps.count)
    }
    guard !means.isEmpty else { return }
    let seeds = Set(counts).count == 1 ? "\(counts[0]) seeds" : counts.map(String.init).joined(separator: "/") + " seeds"
    let url = folder.appendingPathComponent(SweepResult.plotName)
    try OutputPaths.checkWritable(url)
    try writeSweepComparison(means, options: options, to: url, note: "mean test accuracy (%) over \(seeds)")
}
