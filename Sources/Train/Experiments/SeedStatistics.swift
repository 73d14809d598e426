import Autograd
import Foundation

// MARK: - Seed lists

/// The seeds of a repeated-seed sweep: `--seeds N` (seeds 0...N-1) or `--seeds A..B` (seeds A...B, both included),
/// so that a scheduler can hand each machine its own range of one sweep.
public struct SeedSelection: Equatable, Sendable {
    public let seeds: [Int]

    public init(_ seeds: [Int]) {
        check(!seeds.isEmpty, "SeedSelection: at least one seed is needed")
        self.seeds = seeds
    }

    /// Parses "N" (N >= 1: seeds 0..<N) or "A..B" (0 <= A <= B: seeds A...B); throws naming the text otherwise.
    public init(parsing text: String) throws {
        let fault = SeedSelectionError(text: text)
        if let range = text.range(of: "..") {
            guard let a = Int(text[..<range.lowerBound]), let b = Int(text[range.upperBound...]), a >= 0, b >= a,
                  b < Int(Int32.max)
            else { throw fault }
            self.init(Array(a...b))
        } else {
            guard let n = Int(text), n >= 1, n <= 100_000 else { throw fault }
            self.init(Array(0..<n))
        }
    }
}

/// A `--seeds` value that is neither "N" nor "A..B".
public struct SeedSelectionError: Error, CustomStringConvertible {
    public let text: String
    public var description: String {
        "seeds '\(text)': expected a count N >= 1 (seeds 0 to N-1) or a range A..B with 0 <= A <= B (e.g. 5..9)"
    }
}

// MARK: - Statistics

/// Mean, sample standard deviation (n - 1 in the denominator), minimum and maximum of a list of values.
public struct SampleStatistics: Equatable, Sendable {
    public let count: Int
    public let mean: Double
    /// The sample standard deviation sqrt(sum (x - mean)^2 / (n - 1)); nil for fewer than two values.
    public let standardDeviation: Double?
    public let minimum: Double
    public let maximum: Double

    /// The statistics of `values` (at least one).
    public init(_ values: [Double]) {
        check(!values.isEmpty, "SampleStatistics: no values")
        count = values.count
        mean = values.reduce(0, +) / Double(values.count)
        if values.count > 1 {
            let m = mean
            let squares = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
            standardDeviation = (squares / Double(values.count - 1)).squareRoot()
        } else {
            standardDeviation = nil
        }
        minimum = values.min()!
        maximum = values.max()!
    }
}

/// How often a model beats another over the seeds both were trained with (paired by seed).
public struct PairedComparison: Equatable, Sendable {
    public let model: String
    public let other: String
    /// Seeds in which `model`'s accuracy is higher, equal and lower than `other`'s.
    public let wins: Int, ties: Int, losses: Int
    public var pairs: Int { wins + ties + losses }

    /// Compares the accuracies of `a` and `b` seed by seed; seeds only one of them has are left out.
    public init(_ a: ModelSeeds, _ b: ModelSeeds) {
        let other = Dictionary(uniqueKeysWithValues: b.runs.map { ($0.seed, $0.testAccuracy) })
        var wins = 0, ties = 0, losses = 0
        for run in a.runs {
            guard let y = other[run.seed] else { continue }
            if run.testAccuracy > y { wins += 1 } else if run.testAccuracy == y { ties += 1 } else { losses += 1 }
        }
        (model, self.other, self.wins, self.ties, self.losses) = (a.model, b.model, wins, ties, losses)
    }

    /// "c4cnn beats cnn in 4 of 5 seeds (1 tie)".
    public var sentence: String {
        var text = "\(model) beats \(other) in \(wins) of \(pairs) seed\(pairs == 1 ? "" : "s")"
        if ties > 0 { text += " (\(ties) tie\(ties == 1 ? "" : "s"))" }
        return text
    }
}

// MARK: - One finished seed

/// The record of one model trained from one seed, written as `result.json` in the run's folder when it finishes:
/// what `--summarize` gathers. `testAccuracy` is the last epoch's, as a fraction (the unit of `test_accuracy` in
/// metrics.jsonl); `seconds` the training time of all epochs.
public struct SeedRun: Codable, Equatable, Sendable {
    public var model: String
    public var seed: Int
    public var dataset: String
    public var preset: String
    public var epochs: Int
    /// The number of training images (the whole set or `--train-size`).
    public var trainSize: Int
    public var testAccuracy: Double
    public var seconds: Double

    public init(model: String, seed: Int, dataset: String, preset: String, epochs: Int, trainSize: Int,
                testAccuracy: Double, seconds: Double) {
        (self.model, self.seed, self.dataset, self.preset, self.epochs) = (model, seed, dataset, preset, epochs)
        (self.trainSize, self.testAccuracy, self.seconds) = (trainSize, testAccuracy, seconds)
    }

    enum CodingKeys: String, CodingKey {
        case model, seed, dataset, preset, epochs, seconds
        case trainSize = "train_size", testAccuracy = "test_accuracy"
    }

    /// The file name in a run folder.
    public static let fileName = "result.json"

    /// Writes the record atomically; a failure is a `DataError` naming the path.
    public func write(to url: URL) throws {
        try JSONText.write(self, to: url)
    }

    /// Reads a record; a file that is not one is a `DataError` naming it.
    public static func read(_ url: URL) throws -> SeedRun {
        try JSONText.read(SeedRun.self, from: url)
    }
}

/// The finished runs of one model, by ascending seed.
public struct ModelSeeds: Equatable, Sendable {
    public let model: String
    public let runs: [SeedRun]

    public init(model: String, runs: [SeedRun]) {
        self.model = model
        self.runs = runs.sorted { $0.seed < $1.seed }
    }

    public var seeds: [Int] { runs.map(\.seed) }
    public var accuracies: [Double] { runs.map(\.testAccuracy) }
    public var statistics: SampleStatistics { SampleStatistics(accuracies) }
}

// MARK: - The summary

/// The summary of a repeated-seed sweep, written as `summary.json` in the sweep's folder:
/// `{"dataset": ..., "preset": ..., "epochs": ..., "models": {"<name>": {"accuracies": [...], "mean": ...,
/// "std": ..., "min": ..., "max": ..., "seconds": [...]}}}`, accuracies as fractions by ascending seed, `std` the
/// sample standard deviation (null for one seed).
public struct SeedSummary: Equatable, Sendable {
    public let dataset: String
    public let preset: String
    public let epochs: Int
    public let trainSize: Int
    /// The models in the order given (the first is compared with every other).
    public let models: [ModelSeeds]

    /// The summary of `runs` (any order) for the models in `order` (default: as they first appear); throws a
    /// `SummaryError` when the runs disagree on the data set, the preset, the epochs or the training size, or when
    /// a model holds the same seed twice.
    public init(_ runs: [(run: SeedRun, source: URL?)], order: [String]? = nil) throws {
        guard let first = runs.first else { throw SummaryError("no finished seeds") }
        for (run, source) in runs {
            let a = first.run
            if run.dataset != a.dataset || run.preset != a.preset || run.epochs != a.epochs
                || run.trainSize != a.trainSize {
                throw SummaryError("\(source?.path ?? run.model): \(run.dataset), \(run.preset), \(run.epochs) epochs, "
                                   + "\(run.trainSize) training images, where \(first.source?.path ?? a.model) has "
                                   + "\(a.dataset), \(a.preset), \(a.epochs) epochs, \(a.trainSize) training images: "
                                   + "not one sweep")
            }
        }
        var seen: [String: URL?] = [:]
        for (run, source) in runs {
            let key = "\(run.model) seed \(run.seed)"
            if let earlier = seen[key] {
                throw SummaryError("\(key) is both \(earlier?.path ?? "?") and \(source?.path ?? "?")")
            }
            seen[key] = source
        }
        var names = order ?? []
        for (run, _) in runs where !names.contains(run.model) { names.append(run.model) }
        let grouped = Dictionary(grouping: runs.map(\.run), by: \.model)
        dataset = first.run.dataset
        preset = first.run.preset
        epochs = first.run.epochs
        trainSize = first.run.trainSize
        models = names.compactMap { name in grouped[name].map { ModelSeeds(model: name, runs: $0) } }
    }

    /// The first model against each other one, paired by seed.
    public var comparisons: [PairedComparison] {
        guard let first = models.first else { return [] }
        return models.dropFirst().map { PairedComparison(first, $0) }
    }

    /// The table printed after a sweep: per model the seeds, mean ± std, min and max in %, then the paired wins.
    public var table: String {
        var lines = ["model    seeds  mean ± std (%)   min (%)  max (%)  mean train time"]
        for m in models {
            let s = m.statistics
            let std = s.standardDeviation.map { String(format: "%5.2f", 100 * $0) } ?? "    -"
            let seconds = m.runs.map(\.seconds).reduce(0, +) / Double(m.runs.count)
            lines.append(m.model.padding(toLength: 8, withPad: " ", startingAt: 0)
                         + String(format: " %5d  %6.2f ± %@  %7.2f  %7.2f  %@", s.count, 100 * s.mean, std,
                                  100 * s.minimum, 100 * s.maximum, ProgressReporter.duration(seconds)))
        }
        for c in comparisons { lines.append(c.sentence) }
        return lines.joined(separator: "\n")
    }

    /// summary.json's text (keys sorted, indented).
    public var json: String {
        struct ModelEntry: Encodable {
            let accuracies: [Double], mean: Double, std: Double?, min: Double, max: Double, seconds: [Double]
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(accuracies, forKey: .accuracies)
                try c.encode(mean, forKey: .mean)
                try c.encode(std, forKey: .std)  // null for a single seed
                try c.encode(min, forKey: .min)
                try c.encode(max, forKey: .max)
                try c.encode(seconds, forKey: .seconds)
            }
            enum CodingKeys: String, CodingKey { case accuracies, mean, std, min, max, seconds }
        }
        struct File: Encodable {
            let dataset: String, preset: String, epochs: Int, models: [String: ModelEntry]
        }
        var entries: [String: ModelEntry] = [:]
        for m in models {
            let s = m.statistics
            entries[m.model] = ModelEntry(accuracies: m.accuracies, mean: s.mean, std: s.standardDeviation,
                                          min: s.minimum, max: s.maximum, seconds: m.runs.map(\.seconds))
        }
        return JSONText.text(File(dataset: dataset, preset: preset, epochs: epochs, models: entries))
    }

    /// The strip plot of the accuracies: one column per model, a dot per seed, the mean and ± one std.
    public func svg(title: String) -> String {
        SVGChart.strip(title: title, valueLabel: "test accuracy (%)",
                       groups: models.map { (name: $0.model, values: $0.accuracies.map { 100 * $0 }) })
    }

    /// Writes `summary.json` and `summary.svg` into `folder` (each replaced atomically: they are computed from the
    /// seeds there); returns their URLs.
    @discardableResult
    public func write(into folder: URL, title: String) throws -> (json: URL, svg: URL) {
        let json = folder.appendingPathComponent(SeedSweep.summaryName)
        let svg = folder.appendingPathComponent(SeedSweep.summaryPlotName)
        try OutputPaths.checkWritable(json)
        try OutputPaths.checkWritable(svg)
        try JSONText.writeText(self.json, to: json)
        try SVGChart.write(self.svg(title: title), to: svg)
        return (json, svg)
    }
}

/// Finished seeds that do not make one summary.
public struct SummaryError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - The sweep's folders

/// Where a repeated-seed sweep puts its runs: `<folder>/seed-<s>/<model>/` (a run directory each, with the run's
/// `result.json` once finished), and its summary in `<folder>/summary.json` and `<folder>/summary.svg`.
public enum SeedSweep {
    public static let summaryName = "summary.json"
    public static let summaryPlotName = "summary.svg"

    /// `<folder>/seed-<seed>`.
    public static func seedFolder(_ folder: URL, seed: Int) -> URL {
        folder.appendingPathComponent("seed-\(seed)", isDirectory: true)
    }

    /// The run directory of `model` trained from `seed`: `<folder>/seed-<seed>/<model>`.
    public static func runFolder(_ folder: URL, seed: Int, model: String) -> URL {
        seedFolder(folder, seed: seed).appendingPathComponent(model, isDirectory: true)
    }

    /// Every finished run (a `seed-<s>/<model>/result.json`) under each of `folders`, with its file; throws a
    /// `DataError` for a folder that cannot be listed or a record that cannot be read, and a `SummaryError` when a
    /// record's seed or model differs from its folder's name.
    public static func finishedRuns(in folders: [URL]) throws -> [(run: SeedRun, source: URL?)] {
        var found: [(run: SeedRun, source: URL?)] = []
        for folder in folders {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue
            else { throw DataError(folder, nil, "is not a directory of seed folders (seed-<s>/<model>/)") }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() } catch {
                throw DataError(folder, nil, "cannot list (\(error.localizedDescription))")
            }
            for name in names where name.hasPrefix("seed-") {
                guard let seed = Int(name.dropFirst(5)), seed >= 0 else { continue }
                let seedFolder = folder.appendingPathComponent(name, isDirectory: true)
                let models = (try? FileManager.default.contentsOfDirectory(atPath: seedFolder.path).sorted()) ?? []
                for model in models {
                    let file = seedFolder.appendingPathComponent(model).appendingPathComponent(SeedRun.fileName)
                    guard DataFiles.exists(file) else { continue }
                    let run = try SeedRun.read(file)
                    guard run.seed == seed, run.model == model else {
                        throw SummaryError("\(file.path) records \(run.model) seed \(run.seed), not \(model) seed \(seed)")
                    }
                    found.append((run, file))
                }
            }
        }
        return found
    }
}

// MARK: - JSON files

/// Writing and reading the experiment's small JSON files.
enum JSONText {
    static func text<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Values are finite here (accuracies, seconds); a failure is a programming error.
        guard let data = try? encoder.encode(value) else { fatalError("JSONText: cannot encode \(T.self)") }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func write<T: Encodable>(_ value: T, to url: URL) throws {
        try writeText(text(value), to: url)
    }

    static func writeText(_ text: String, to url: URL) throws {
        let bytes = Array(text.utf8)
        try DataFiles.writeAtomically(url) { file in
            if fwrite(bytes, 1, bytes.count, file) != bytes.count {
                throw DataError(url, nil, "write failed (\(DataFiles.errnoText()))")
            }
        }
    }

    static func read<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        let bytes = try DataFiles.readBytes(url)
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw DataError(url, nil, "not a \(T.self) record (\(error))")
        }
    }
}
