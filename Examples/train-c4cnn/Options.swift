import CommandLineSupport
import Foundation
import Models
import Train

/// The command's flags, parsed by the shared `ArgumentParser`; presets, model names and the merging of a preset
/// with explicit flags are the libraries' (`Preset`, `TrainingOverrides`, `ModelName`).
struct Options {
    var model = ModelName.c4cnn
    var dataset = DatasetName.rotDigits
    var dataDirectory = "data"
    var preset = Preset.original
    var configuration = TrainingConfiguration.original
    var threads: Int?
    var initFile: String?
    var checkpointDirectory: String?
    var resume = false
    var overwrite = false
    var evalOnly = false
    var weights: String?
    var metrics: String?
    var plot: String?
    var export: String?
    var recalibrationBatches = 0
    /// The models trained one after the other by `--compare` or `--models`, with a table and a plot of all.
    var comparedModels: [ModelName]?
    /// `--seeds N` or `--seeds A..B`: each model trained from each seed, with the summary over seeds.
    var seeds: SeedSelection?
    /// `--summarize DIR[,DIR...]`: the folders of finished seeds to summarise, without training.
    var summarize: [String]?
    /// `--rotation-sweep DEG`: the step of the test-time rotation sweep, in degrees.
    var rotationSweep: Double?
    /// `--train-size N` / `--train-sizes A,B,...`: the training-set sizes (nil: the whole set).
    var trainSize: Int?
    var trainSizes: [Int]?
    /// `--same-epochs`: a smaller training set keeps the epoch count instead of the whole set's number of steps.
    var sameEpochs = false

    var compare: Bool { comparedModels != nil }
    /// The models this run trains or summarises.
    var models: [ModelName] { comparedModels ?? [model] }

    /// The options of `arguments` and whether `--help` was given (with the help text); throws a `UsageError`
    /// naming the flag. Every flag is declared here, once: the help is generated from these declarations.
    static func parse(_ arguments: [String]) throws -> (options: Options, help: String?) {
        let parser = ArgumentParser(command: "train-c4cnn", overview: """
        Trains and evaluates a model of the rotated-digits experiment. With no options it runs the original
        experiment: the C4CNN on rot-digits with the original protocol (AdamW lr 5e-5, weight decay 1e-5,
        batch 64, no shuffling, 51 epochs).
        """)
        let modelFlag = parser.option("--model", value: "NAME", help: "model to train: \(ModelName.known) (default c4cnn)") {
            try ModelName(parsing: $0)
        }
        let datasetFlag = parser.option("--dataset", value: "NAME",
                                               help: "rot-digits (default), rot-fashion or mnist-rot",
                                               Convert.choice(DatasetName.self, noun: "data set"))
        let dataDirFlag = parser.option("--data-dir", value: "DIR",
                                               help: "data directory (default ./data); mnist-rot reads DIR/mnist-rot/*.amat")
        let presetFlag = parser.option("--preset", value: "NAME", help: "training recipe: original (default) or strong") {
            try Preset(parsing: $0)
        }
        let epochsFlag = parser.option("--epochs", value: "N", help: "passes over the training set",
                                              Convert.integer(1...1_000_000))
        let batchFlag = parser.option("--batch-size", value: "N", help: "mini-batch size", Convert.integer(1...1_000_000))
        let lrFlag = parser.option("--lr", value: "X", help: "learning rate", Convert.nonNegative)
        let decayFlag = parser.option("--weight-decay", value: "X", help: "weight decay", Convert.nonNegative)
        let scheduleFlag = parser.option("--schedule", value: "NAME",
                                                help: "learning-rate schedule: constant, cosine or step (default: the preset's)") {
            try ScheduleKind(parsing: $0)
        }
        let warmupFlag = parser.option("--warmup", value: "N", help: "warm-up steps of the cosine schedule",
                                              Convert.integer(0...100_000_000))
        let shuffleFlag = parser.flag("--shuffle", help: "shuffle the training set each epoch (seeded)")
        let seedFlag = parser.option("--seed", value: "N", help: "seed for initialisation and shuffling (default 0)",
                                            Convert.integer(atLeast: 0))
        let threadsFlag = parser.option("--threads", value: "N",
                                               help: "threads for BLAS and the framework's kernels (default: all cores; "
                                                   + "at most \(ThreadLimit.perCore) per core)", Convert.threads)
        let initFlag = parser.option("--init", value: "FILE",
                                            help: "start from the parameters in a safetensors state dict (e.g. saved by PyTorch)")
        let checkpointFlag = parser.option("--checkpoint-dir", value: "DIR",
                                                  help: "where checkpoints, metrics and plots go (default runs/MODEL-DATASET-PRESET)")
        let resumeFlag = parser.flag("--resume", help: "continue from the last checkpoint in the checkpoint directory")
        let overwriteFlag = parser.flag("--overwrite", help: """
            start over in a run directory that holds an earlier run (replaces only that
            run's checkpoint, metrics, curves and weights); lets --metrics, --plot and
            --export replace existing files
            """)
        let evalFlag = parser.flag("--eval-only", help: "only evaluate the parameters of --weights FILE on the test set")
        let weightsFlag = parser.option("--weights", value: "FILE",
                                               help: "parameters to evaluate or export (a state dict, a checkpoint or an export)")
        let metricsFlag = parser.option("--metrics", value: "FILE",
                                               help: "JSON-lines metrics file (default CHECKPOINT_DIR/metrics.jsonl)")
        let plotFlag = parser.option("--plot", value: "FILE",
                                            help: "SVG of loss and test accuracy (default CHECKPOINT_DIR/curves.svg)")
        let recalibrateFlag = parser.option("--recalibrate-bn", value: "N", help: """
            before each test evaluation, recompute the batch-norm statistics from N training
            batches (models with batch norm: --preset strong); default 0, the running averages
            """, Convert.integer(0...1_000_000))
        let exportFlag = parser.option("--export", value: "FILE", help: """
            also write the model as plain Conv2d/MaxPool2d/Linear layers (batch norm folded in,
            safetensors, format=exported): after training, or from --weights without training
            (the test set is then evaluated with both, and their speed compared)
            """)
        let compareFlag = parser.flag("--compare", help: "train the C4CNN and the CNN under the same protocol and print the table")
        let modelsFlag = parser.option("--models", value: "LIST", help: """
            like --compare for the listed models, e.g. c4cnn,cnn,d4cnn (with --resume,
            finished runs are only read back: the table and the plot of runs made earlier)
            """) { try ModelName.list(parsing: $0) }
        let seedsFlag = parser.option("--seeds", value: "N|A..B", help: """
            train each model from seeds 0 to N-1 (or A to B) into CHECKPOINT_DIR/seed-<s>/MODEL/,
            then print mean ± std, min and max of the test accuracy and the paired wins, and
            write summary.json and summary.svg (default CHECKPOINT_DIR runs/DATASET-PRESET-seeds;
            with --resume, finished seeds are read back)
            """) { try SeedSelection(parsing: $0) }
        let summarizeFlag = parser.option("--summarize", value: "DIR[,DIR...]", help: """
            without training, gather the finished seeds of one or more sweep folders (e.g. each
            machine's part) into summary.json and summary.svg in the first DIR (or --checkpoint-dir)
            """) { text -> [String] in
            let folders = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard !folders.contains(where: \.isEmpty) else { throw ValueError("an empty folder name in '\(text)'") }
            return folders
        }
        let sweepFlag = parser.option("--rotation-sweep", value: "DEG", help: """
            after training (or with --eval-only --weights), the test accuracy with every test image
            rotated by 0, DEG, 2 DEG, ... below 360: a table, sweep.json and sweep.svg in the
            checkpoint folder (with --eval-only: --checkpoint-dir, else the folder of --weights)
            """) { text -> Double in
            guard let value = Double(text), value.isFinite, value > 0, value <= 360 else {
                throw ValueError("'\(text)' is not an angle in degrees above 0 and at most 360")
            }
            return value
        }
        let trainSizeFlag = parser.option("--train-size", value: "N", help: """
            train on N training images: the first N, or a seeded selection with shuffling (runs go
            into runs/MODEL-DATASET-nN-PRESET)
            """, Convert.integer(atLeast: 1))
        let sameEpochsFlag = parser.flag("--same-epochs", help: """
            with --train-size(s), keep the epoch count (default: a smaller set trains for as many optimiser
            steps as the whole set, its epochs scaled up)
            """)
        let trainSizesFlag = parser.option("--train-sizes", value: "LIST", help: """
            train at each size of the list (e.g. 250,500,1000,2000,4000), then print a table and
            draw efficiency-DATASET-PRESET.svg of test accuracy against training-set size
            """) { text -> [Int] in
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let sizes = try parts.map { try Convert.integer(atLeast: 1)($0) }
            guard Set(sizes).count == sizes.count else { throw ValueError("a size is listed twice in '\(text)'") }
            return sizes
        }

        let a = try parser.parse(arguments)
        var o = Options()
        o.model = a[modelFlag] ?? o.model
        o.dataset = a[datasetFlag] ?? o.dataset
        o.dataDirectory = a[dataDirFlag] ?? o.dataDirectory
        o.preset = a[presetFlag] ?? o.preset
        o.configuration = o.preset.configuration(TrainingOverrides(
            epochs: a[epochsFlag], batchSize: a[batchFlag], learningRate: a[lrFlag], weightDecay: a[decayFlag],
            shuffle: a[shuffleFlag] ? true : nil, seed: a[seedFlag].map(UInt64.init), schedule: a[scheduleFlag],
            warmupSteps: a[warmupFlag]))
        o.threads = a[threadsFlag]
        o.initFile = a[initFlag]
        o.checkpointDirectory = a[checkpointFlag]
        o.resume = a[resumeFlag]
        o.overwrite = a[overwriteFlag]
        o.weights = a[weightsFlag]
        o.metrics = a[metricsFlag]
        o.plot = a[plotFlag]
        o.export = a[exportFlag]
        o.recalibrationBatches = a[recalibrateFlag] ?? 0
        o.comparedModels = a[modelsFlag] ?? (a[compareFlag] ? [.c4cnn, .cnn] : nil)
        o.seeds = a[seedsFlag]
        o.summarize = a[summarizeFlag]
        o.rotationSweep = a[sweepFlag]
        o.trainSize = a[trainSizeFlag]
        o.trainSizes = a[trainSizesFlag]
        o.sameEpochs = a[sameEpochsFlag]
        if o.seeds != nil && a[seedFlag] != nil {
            throw UsageError("--seed and --seeds cannot be combined (--seeds A..A trains one seed)")
        }
        if o.sameEpochs && o.trainSize == nil && o.trainSizes == nil {
            throw UsageError("--same-epochs applies to --train-size or --train-sizes")
        }
        if o.trainSize != nil && o.trainSizes != nil {
            throw UsageError("--train-size and --train-sizes cannot be combined")
        }
        let sweeping = o.seeds != nil || o.trainSizes != nil
        if sweeping, let flag = [("--metrics", o.metrics), ("--plot", o.plot), ("--export", o.export),
                                 ("--init", o.initFile)].first(where: { $0.1 != nil })?.0 {
            throw UsageError("\(flag) cannot be combined with --seeds or --train-sizes (every run writes its own "
                             + "files into its run directory)")
        }
        if o.summarize != nil, let flag = [("--seeds", o.seeds != nil), ("--eval-only", a[evalFlag]),
                                           ("--train-sizes", o.trainSizes != nil),
                                           ("--rotation-sweep", o.rotationSweep != nil),
                                           ("--resume", o.resume), ("--overwrite", o.overwrite)]
            .first(where: { $0.1 })?.0 {
            throw UsageError("--summarize only reads finished seeds; it cannot be combined with \(flag)")
        }
        // --weights with --export and without --eval-only means exporting those weights: evaluation only.
        o.evalOnly = a[evalFlag] || (o.export != nil && o.weights != nil)
        if o.evalOnly, let flag = [("--seeds", o.seeds != nil), ("--train-size", o.trainSize != nil),
                                   ("--train-sizes", o.trainSizes != nil)]
            .first(where: { $0.1 })?.0 {
            throw UsageError("--eval-only evaluates one --weights file; it cannot be combined with \(flag)")
        }
        if o.evalOnly && o.weights == nil {
            throw UsageError("--eval-only needs --weights FILE")
        }
        if o.resume && o.initFile != nil {
            throw UsageError("--resume and --init cannot be combined")
        }
        if o.resume && o.overwrite {
            throw UsageError("--resume and --overwrite cannot be combined (continue the run, or start it over)")
        }
        return (o, a.helpRequested ? parser.help : nil)
    }
}
