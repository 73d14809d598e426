import Foundation
import Models
import Train

/// A command-line error: printed with the usage hint, exit status 2.
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

/// The command's flags.
struct Options {
    var model = "c4cnn"
    var dataset = DatasetName.rotDigits
    var dataDirectory = "data"
    var configuration = TrainingConfiguration.original
    var preset = "original"
    var threads: Int?
    var initFile: String?
    var checkpointDirectory: String?
    var resume = false
    var evalOnly = false
    var weights: String?
    var metrics: String?
    var plot: String?
    var recalibrationBatches = 0
    /// The models trained one after the other by `--compare` or `--models`, with a table and a plot of all.
    var comparedModels: [String]?
    var help = false

    var compare: Bool { comparedModels != nil }

    static let usage = """
    USAGE: train-c4cnn [options]

    Trains and evaluates a model of the rotated-digits experiment. With no options it runs the original
    experiment: the C4CNN on rot-digits with the original protocol (AdamW lr 5e-5, weight decay 1e-5,
    batch 64, no shuffling, 51 epochs).

    OPTIONS:
      --model NAME                model to train: c4cnn (default), cnn, d4cnn, c8cnn, c16cnn, d8cnn
      --dataset NAME              rot-digits (default), rot-fashion or mnist-rot
      --data-dir DIR              data directory (default ./data); mnist-rot reads DIR/mnist-rot/*.amat
      --preset original|strong    training recipe (default original)
      --epochs N                  passes over the training set
      --batch-size N              mini-batch size
      --lr X                      learning rate
      --weight-decay X            weight decay
      --shuffle                   shuffle the training set each epoch (seeded)
      --seed N                    seed for initialisation and shuffling (default 0)
      --threads N                 threads for BLAS and the framework's kernels (default: all cores)
      --init FILE                 start from the parameters in a safetensors state dict (e.g. saved by PyTorch)
      --checkpoint-dir DIR        where checkpoints, metrics and plots go (default runs/MODEL-DATASET-PRESET)
      --resume                    continue from the last checkpoint in the checkpoint directory
      --eval-only --weights FILE  only evaluate the parameters in FILE on the test set
      --metrics FILE              JSON-lines metrics file (default CHECKPOINT_DIR/metrics.jsonl)
      --plot FILE                 SVG of loss and test accuracy (default CHECKPOINT_DIR/curves.svg)
      --recalibrate-bn N          before each test evaluation, recompute the batch-norm statistics from N training
                                  batches (models with batch norm: --preset strong); default 0, the running averages
      --compare                   train the C4CNN and the CNN under the same protocol and print the table
      --models LIST               like --compare for the listed models, e.g. c4cnn,cnn,d4cnn (with --resume,
                                  finished runs are only read back: the table and the plot of runs made earlier)
      -h, --help                  show this help
    """

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var explicit = Set<String>()
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let v = rest.popFirst(), !v.hasPrefix("--") || Double(v) != nil else {
                throw UsageError(description: "\(flag) needs a value")
            }
            return v
        }
        func integer(_ flag: String, minimum: Int = 1, maximum: Int = Int.max) throws -> Int {
            let text = try value(flag)
            guard let v = Int(text), v >= minimum, v <= maximum else {
                throw UsageError(description: "\(flag): '\(text)' is not a whole number "
                                 + (maximum == Int.max ? ">= \(minimum)" : "from \(minimum) to \(maximum)"))
            }
            return v
        }
        func real(_ flag: String) throws -> Double {
            let text = try value(flag)
            guard let v = Double(text), v.isFinite, v >= 0 else {
                throw UsageError(description: "\(flag): '\(text)' is not a non-negative number")
            }
            return v
        }
        while let flag = rest.popFirst() {
            explicit.insert(flag)
            switch flag {
            case "--model":
                options.model = try value(flag)
                guard ModelName(rawValue: options.model) != nil else {
                    throw UsageError(description: "--model: unknown model '\(options.model)' "
                                     + "(\(ModelName.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
            case "--dataset":
                let name = try value(flag)
                guard let d = DatasetName(rawValue: name) else {
                    throw UsageError(description: "--dataset: unknown data set '\(name)' "
                                     + "(\(DatasetName.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                options.dataset = d
            case "--data-dir": options.dataDirectory = try value(flag)
            case "--preset":
                options.preset = try value(flag)
                guard ["original", "strong"].contains(options.preset) else {
                    throw UsageError(description: "--preset: unknown preset '\(options.preset)' (original, strong)")
                }
            case "--epochs": options.configuration.epochs = try integer(flag, maximum: 1_000_000)
            case "--batch-size": options.configuration.batchSize = try integer(flag, maximum: 1_000_000)
            case "--lr": options.configuration.learningRate = try real(flag)
            case "--weight-decay": options.configuration.weightDecay = try real(flag)
            case "--shuffle": options.configuration.shuffle = true
            case "--seed": options.configuration.seed = UInt64(try integer(flag, minimum: 0))
            case "--threads": options.threads = try integer(flag, maximum: 4096)
            case "--init": options.initFile = try value(flag)
            case "--checkpoint-dir": options.checkpointDirectory = try value(flag)
            case "--resume": options.resume = true
            case "--eval-only": options.evalOnly = true
            case "--weights": options.weights = try value(flag)
            case "--metrics": options.metrics = try value(flag)
            case "--plot": options.plot = try value(flag)
            case "--recalibrate-bn": options.recalibrationBatches = try integer(flag, minimum: 0, maximum: 1_000_000)
            case "--compare": options.comparedModels = options.comparedModels ?? ["c4cnn", "cnn"]
            case "--models":
                let list = try value(flag).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                for name in list where ModelName(rawValue: name) == nil {
                    throw UsageError(description: "--models: unknown model '\(name)' (a comma-separated list of "
                                     + "\(ModelName.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                guard Set(list).count == list.count else {
                    throw UsageError(description: "--models: a model is listed twice in '\(list.joined(separator: ","))'")
                }
                options.comparedModels = list
            case "-h", "--help": options.help = true
            default: throw UsageError(description: "unknown option '\(flag)'")
            }
        }
        if options.preset == "strong" {
            // The strong recipe's defaults; explicit flags still win.
            var strong = TrainingConfiguration.strong
            if explicit.contains("--epochs") { strong.epochs = options.configuration.epochs }
            if explicit.contains("--batch-size") { strong.batchSize = options.configuration.batchSize }
            if explicit.contains("--lr") { strong.learningRate = options.configuration.learningRate }
            if explicit.contains("--weight-decay") { strong.weightDecay = options.configuration.weightDecay }
            strong.seed = options.configuration.seed
            options.configuration = strong
        }
        if options.evalOnly && options.weights == nil {
            throw UsageError(description: "--eval-only needs --weights FILE")
        }
        if options.resume && options.initFile != nil {
            throw UsageError(description: "--resume and --init cannot be combined")
        }
        return options
    }
}
