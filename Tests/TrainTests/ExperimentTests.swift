import Autograd
import Foundation
import Models
import NN
import Train
import XCTest

/// The library side of the experiments over several runs: seed lists, sample statistics (n - 1), paired wins,
/// summary.json, the gathering of partial sweeps, the figures' ticks and legends, the rotation sweep, training
/// subsets and the filters' rotated-copy measure.
final class ExperimentTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory("experiments") }
    override func tearDown() { scratch?.remove() }

    private func run(_ model: String, _ seed: Int, _ accuracy: Double, epochs: Int = 3) -> SeedRun {
        SeedRun(model: model, seed: seed, dataset: "rot-digits", preset: "strong", epochs: epochs, trainSize: 4000,
                testAccuracy: accuracy, seconds: Double(10 + seed))
    }

    // MARK: Seeds and statistics

    func testSeedSelections() throws {
        XCTAssertEqual(try SeedSelection(parsing: "3").seeds, [0, 1, 2])
        XCTAssertEqual(try SeedSelection(parsing: "5..9").seeds, [5, 6, 7, 8, 9])
        XCTAssertEqual(try SeedSelection(parsing: "4..4").seeds, [4])
        for bad in ["0", "-2", "9..5", "a", "1..", "..3", "-1..3", "2...4", ""] {
            XCTAssertThrowsError(try SeedSelection(parsing: bad), bad) { error in
                XCTAssertTrue("\(error)".contains("seeds '\(bad)'"), "\(error)")
            }
        }
    }

    func testSampleStatisticsUseNMinusOne() {
        let s = SampleStatistics([0.90, 0.92, 0.94, 0.96])
        XCTAssertEqual(s.mean, 0.93, accuracy: 1e-12)
        // sum of squares 0.002 over n - 1 = 3 (over n = 4 it would be 0.02236).
        XCTAssertEqual(s.standardDeviation!, (0.002 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(s.minimum, 0.90)
        XCTAssertEqual(s.maximum, 0.96)
        XCTAssertNil(SampleStatistics([0.5]).standardDeviation)
    }

    func testPairedWinsCountOnlySharedSeeds() {
        let a = ModelSeeds(model: "c4cnn", runs: [run("c4cnn", 0, 0.9), run("c4cnn", 1, 0.8), run("c4cnn", 2, 0.7),
                                                  run("c4cnn", 3, 0.95), run("c4cnn", 7, 0.99)])
        let b = ModelSeeds(model: "cnn", runs: [run("cnn", 3, 0.9), run("cnn", 2, 0.7), run("cnn", 1, 0.85),
                                                run("cnn", 0, 0.5), run("cnn", 5, 0.1)])
        let c = PairedComparison(a, b)
        XCTAssertEqual([c.wins, c.ties, c.losses], [2, 1, 1])
        XCTAssertEqual(c.sentence, "c4cnn beats cnn in 2 of 4 seeds (1 tie)")
    }

    func testSummaryJSONHasTheIssuesLayout() throws {
        let runs = [run("cnn", 1, 0.80), run("c4cnn", 0, 0.91), run("cnn", 0, 0.82), run("c4cnn", 1, 0.93),
                    run("d4cnn", 0, 0.95)]
        let summary = try SeedSummary(runs.map { ($0, nil) }, order: ["c4cnn", "cnn"])
        XCTAssertEqual(summary.models.map(\.model), ["c4cnn", "cnn", "d4cnn"])
        let object = try JSONSerialization.jsonObject(with: Data(summary.json.utf8)) as! [String: Any]
        XCTAssertEqual(Set(object.keys), ["dataset", "preset", "epochs", "models"])
        XCTAssertEqual(object["dataset"] as? String, "rot-digits")
        XCTAssertEqual(object["preset"] as? String, "strong")
        XCTAssertEqual(object["epochs"] as? Int, 3)
        let models = object["models"] as! [String: [String: Any]]
        XCTAssertEqual(Set(models.keys), ["c4cnn", "cnn", "d4cnn"])
        let cnn = models["cnn"]!
        XCTAssertEqual(Set(cnn.keys), ["accuracies", "mean", "std", "min", "max", "seconds"])
        XCTAssertEqual(cnn["accuracies"] as? [Double], [0.82, 0.80], "by ascending seed")
        XCTAssertEqual(cnn["seconds"] as? [Double], [10, 11])
        XCTAssertEqual(cnn["mean"] as! Double, 0.81, accuracy: 1e-12)
        XCTAssertEqual(cnn["std"] as! Double, (0.0002).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(cnn["min"] as? Double, 0.80)
        XCTAssertEqual(cnn["max"] as? Double, 0.82)
        XCTAssertTrue(models["d4cnn"]!["std"] is NSNull, "one seed has no sample std: \(summary.json)")
        XCTAssertEqual(summary.comparisons.map(\.sentence), ["c4cnn beats cnn in 2 of 2 seeds",
                                                             "c4cnn beats d4cnn in 0 of 1 seed"])
        XCTAssertTrue(summary.table.contains("c4cnn        2   92.00 ±  1.41"), summary.table)
    }

    func testRunsOfAnotherSweepOrTwiceTheSameSeedAreRefused() {
        XCTAssertThrowsError(try SeedSummary([(run("cnn", 0, 0.8), nil), (run("cnn", 1, 0.8, epochs: 4), nil)])) {
            XCTAssertTrue("\($0)".contains("not one sweep"), "\($0)")
        }
        let a = URL(fileURLWithPath: "/a/result.json"), b = URL(fileURLWithPath: "/b/result.json")
        XCTAssertThrowsError(try SeedSummary([(run("cnn", 2, 0.8), a), (run("cnn", 2, 0.7), b)])) {
            XCTAssertEqual("\($0)", "cnn seed 2 is both /a/result.json and /b/result.json")
        }
    }

    func testFinishedRunsAreGatheredFromSeveralFolders() throws {
        let first = scratch.file("machine-a"), second = scratch.file("machine-b")
        for (folder, seed, accuracy) in [(first, 0, 0.8), (first, 1, 0.9), (second, 2, 0.7)] {
            let dir = SeedSweep.runFolder(folder, seed: seed, model: "cnn")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try run("cnn", seed, accuracy).write(to: dir.appendingPathComponent(SeedRun.fileName))
        }
        // An unfinished seed (no result.json) is not gathered.
        try FileManager.default.createDirectory(at: SeedSweep.runFolder(second, seed: 3, model: "cnn"),
                                                withIntermediateDirectories: true)
        let runs = try SeedSweep.finishedRuns(in: [first, second])
        XCTAssertEqual(runs.map(\.run.seed).sorted(), [0, 1, 2])
        let summary = try SeedSummary(runs)
        XCTAssertEqual(summary.models[0].accuracies, [0.8, 0.9, 0.7])
        let files = try summary.write(into: first, title: "t")
        XCTAssertEqual(try SeedRun.read(SeedSweep.runFolder(first, seed: 1, model: "cnn")
            .appendingPathComponent(SeedRun.fileName)), run("cnn", 1, 0.9))
        XCTAssertTrue(try String(contentsOf: files.svg, encoding: .utf8).contains("cnn (3 seeds)"))

        // A record moved into another seed's folder is refused.
        let moved = SeedSweep.runFolder(second, seed: 4, model: "cnn")
        try FileManager.default.createDirectory(at: moved, withIntermediateDirectories: true)
        try run("cnn", 2, 0.7).write(to: moved.appendingPathComponent(SeedRun.fileName))
        XCTAssertThrowsError(try SeedSweep.finishedRuns(in: [second])) {
            XCTAssertTrue("\($0)".contains("records cnn seed 2, not cnn seed 4"), "\($0)")
        }
        XCTAssertThrowsError(try SeedSweep.finishedRuns(in: [scratch.file("absent")])) {
            XCTAssertTrue("\($0)".contains("is not a directory of seed folders"), "\($0)")
        }
    }

    // MARK: Figures

    func testTicksAreRoundAndCoverTheData() {
        XCTAssertEqual(SVGChart.ticks(low: 81.3, high: 92.7), [80, 85, 90, 95])
        XCTAssertEqual(SVGChart.ticks(low: 0, high: 1), [0, 0.25, 0.5, 0.75, 1])
        XCTAssertEqual(SVGChart.ticks(low: 97.1, high: 97.9), [97, 97.2, 97.4, 97.6, 97.8, 98])
        let flat = SVGChart.ticks(low: 50, high: 50)
        XCTAssertTrue(flat.first! < 50 && flat.last! > 50, "\(flat)")
        XCTAssertEqual(SVGChart.label(82.5), "82.5")
        XCTAssertEqual(SVGChart.label(80), "80")
        XCTAssertEqual(SVGChart.label(0.25), "0.25")
    }

    func testFiguresHaveTicksLabelsAndLegends() throws {
        let lines = SVGChart.lines(title: "T", xLabel: "rotation (degrees)", yLabel: "test accuracy (%)",
                                   series: [.init(name: "cnn", points: [(0, 81.3), (45, 60), (90, 81.3)]),
                                            .init(name: "c4cnn", points: [(0, 92), (45, 85), (90, 92)])],
                                   xTicks: [0, 45, 90])
        for text in [">test accuracy (%)<", ">rotation (degrees)<", ">cnn<", ">c4cnn<", ">legend<", ">60<", ">80<",
                     ">100<", ">45<"] {
            XCTAssertTrue(lines.contains(text), "no \(text) in the curves")
        }
        // A 15-degree sweep: ticks every 45 degrees up to 360, every point inside the plot's box (x 80 to 550).
        let sweep = SweepResult(angles: RotationSweep.angles(step: 15), accuracy: (0..<24).map { 0.5 + Double($0 % 6) / 20 })
        let figure = SweepResult.svg([("cnn", sweep, nil)], title: "T")
        XCTAssertTrue(figure.contains(">360<") && figure.contains(">315<") && !figure.contains(">345<"))
        let xs = try NSRegularExpression(pattern: "<circle cx=\"([0-9.]+)\"")
            .matches(in: figure, range: NSRange(figure.startIndex..., in: figure))
            .map { Double((figure as NSString).substring(with: $0.range(at: 1)))! }
        XCTAssertEqual(xs.count, 24)
        XCTAssertTrue(xs.allSatisfy { $0 >= 80 && $0 <= 550 }, "\(xs)")
        let strip = SVGChart.strip(title: "T", valueLabel: "test accuracy (%)",
                                   groups: [("cnn", [80, 82]), ("c4cnn", [91, 93, 92])])
        XCTAssertTrue(strip.contains(">c4cnn (3 seeds)<") && strip.contains("mean") && strip.contains(">test accuracy (%)<"))
        XCTAssertEqual(strip.components(separatedBy: "<circle").count - 1, 5 + 2, "a dot per seed and per legend entry")
    }

    // MARK: Rotation sweep

    func testSweepAngles() {
        XCTAssertEqual(RotationSweep.angles(step: 90), [0, 90, 180, 270])
        XCTAssertEqual(RotationSweep.angles(step: 15).count, 24)
        XCTAssertEqual(RotationSweep.angles(step: 15).last, 345)
        XCTAssertEqual(RotationSweep.angles(step: 360), [0])
        XCTAssertEqual(RotationSweep.angles(step: 7).last, 357)
    }

    /// Quarter turns are exact rot90s turning the same way as the bilinear rotation; other angles are the bilinear
    /// rotation that builds the data sets; 0 leaves the images as they are.
    func testSweepRotations() {
        let data = randomImages(count: 3, side: 9, seed: 4)
        XCTAssertEqual(RotationSweep.rotated(data, degrees: 0).images, data.images)
        let quarter = RotationSweep.rotated(data, degrees: 90)
        let bilinear = RotatedDigits.rotate(data, angles: [Double](repeating: .pi / 2, count: 3))
        XCTAssertEqual(quarter.images.count, bilinear.images.count)
        for (a, b) in zip(quarter.images, bilinear.images) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        let tensor = Tensor<Float>(shape: [3, 1, 9, 9], scalars: data.images)
        XCTAssertEqual(quarter.images, tensor.rotated90(1).scalars)
        XCTAssertEqual(RotationSweep.rotated(data, degrees: 270).images, tensor.rotated90(3).scalars)
        XCTAssertEqual(RotationSweep.rotated(data, degrees: 30).images,
                       RotatedDigits.rotate(data, angles: [Double](repeating: .pi / 6, count: 3)).images)
        XCTAssertEqual(RotationSweep.rotated(data, degrees: 30).labels, data.labels)
    }

    /// The 0-degree accuracy of the sweep is the plain test accuracy, and sweep.json reads back as written.
    func testSweepAtZeroIsThePlainTestAccuracy() throws {
        let test = randomImages(count: 40, side: 28, seed: 7)
        let padded = test.edgePadded(before: DataCatalog.padBefore, after: DataCatalog.padAfter)
        let model = CNN(seed: 3)
        let trainer = Trainer(model: model, modelName: "cnn", configuration: .original, train: padded, test: padded,
                              progress: .silent)
        let plain = try trainer.evaluate(trainer.testLoader!).accuracy
        let sweep = try RotationSweep.run(angles: RotationSweep.angles(step: 90), test: test, prepare: {
            $0.edgePadded(before: DataCatalog.padBefore, after: DataCatalog.padAfter)
        }) { try trainer.evaluate(DataLoader($0, batchSize: 256)).accuracy }
        XCTAssertEqual(sweep.angles, [0, 90, 180, 270])
        XCTAssertEqual(sweep.accuracy[0], plain)
        let url = scratch.file("sweep.json")
        try sweep.write(to: url)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: [Double]]
        XCTAssertEqual(Set(object.keys), ["angles", "accuracy"])
        XCTAssertEqual(try SweepResult.read(url), sweep)
        XCTAssertTrue(SweepResult.table([("cnn", sweep)]).contains("      180"))
    }

    // MARK: Training subsets

    func testTrainingSubsets() throws {
        let data = randomImages(count: 50, side: 4, seed: 2)
        let first = try data.trainingSubset(count: 10, shuffled: false, seed: 5)
        XCTAssertEqual(first.images, Array(data.images[0..<(10 * 16)]))
        let a = try data.trainingSubset(count: 10, shuffled: true, seed: 5)
        let again = try data.trainingSubset(count: 10, shuffled: true, seed: 5)
        let other = try data.trainingSubset(count: 10, shuffled: true, seed: 6)
        XCTAssertEqual(a.count, 10)
        XCTAssertEqual(a.images, again.images, "a seeded subset")
        XCTAssertNotEqual(a.images, other.images, "another seed, another subset")
        XCTAssertNotEqual(a.images, first.images)
        XCTAssertEqual(try data.trainingSubset(count: 50, shuffled: true, seed: 1).images, data.images)
        XCTAssertThrowsError(try data.trainingSubset(count: 51, shuffled: false, seed: 0)) {
            XCTAssertEqual("\($0)", "--train-size 51: the training set has 50 images (1 to 50 can be used)")
        }
    }

    func testEqualStepsEpochs() {
        var c = TrainingConfiguration()
        (c.epochs, c.batchSize) = (15, 64)
        // 4000 images: 63 steps an epoch, 945 in all; 250 images: 4 steps an epoch.
        XCTAssertEqual(c.epochsForEqualSteps(fullCount: 4000, subsetCount: 250), 237)
        XCTAssertEqual(c.epochsForEqualSteps(fullCount: 4000, subsetCount: 2000), 30)
        XCTAssertEqual(c.epochsForEqualSteps(fullCount: 4000, subsetCount: 4000), 15)
        c.epochs = 1
        XCTAssertEqual(c.epochsForEqualSteps(fullCount: 64, subsetCount: 64), 1)
        XCTAssertEqual(c.epochsForEqualSteps(fullCount: 100, subsetCount: 1), 2, "2 steps of 64 and 36 images")
    }

    func testDataEfficiencyTable() {
        let e = DataEfficiency(points: [.init(model: "c4cnn", trainSize: 250, accuracies: [0.5, 0.6]),
                                        .init(model: "cnn", trainSize: 250, accuracies: [0.4]),
                                        .init(model: "c4cnn", trainSize: 1000, accuracies: [0.8])])
        XCTAssertEqual(e.sizes, [250, 1000])
        let lines = e.table.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines[1].hasPrefix("            250 55.00% ± 7.07"), lines[1])
        XCTAssertTrue(lines[2].contains("80.00%") && lines[2].contains("-"), lines[2])
        let svg = e.svg(title: "t")
        XCTAssertTrue(svg.contains(">250<") && svg.contains(">1000<") && svg.contains("logarithmic"))
    }

    // MARK: Filters

    func testRotatedCopiesScoreOneRandomFiltersLess() {
        var rng = SeededRandom(seed: 11)
        let base = Tensor<Float>(shape: [2, 1, 3, 3], scalars: (0..<18).map { _ in Float(rng.uniform(-1, 1)) })
        // Filters 0 and 1, and a quarter turn of 0 and a half turn of 1 (the last scaled by 2).
        let copies = Tensor<Float>.concatenated([base, base.sliced(axis: 0, 0..<1).rotated90(1),
                                           base.sliced(axis: 0, 1..<2).rotated90(2) * 2], axis: 0)
        for value in FilterSimilarity.bestRotatedMatch(copies) { XCTAssertEqual(value, 1, accuracy: 1e-6) }
        let random = Tensor<Float>(shape: [8, 1, 3, 3], scalars: (0..<72).map { _ in Float(rng.uniform(-1, 1)) })
        let best = FilterSimilarity.bestRotatedMatch(random)
        XCTAssertEqual(best.count, 8)
        XCTAssertTrue(best.allSatisfy { $0 < 0.99 }, "\(best)")
        XCTAssertLessThan(FilterSimilarity.meanBestRotatedMatch(random), 0.9)
        XCTAssertEqual(FilterSimilarity.correlation([1, 2, 3], [2, 4, 6]), 1, accuracy: 1e-12)
        XCTAssertEqual(FilterSimilarity.correlation([1, 2, 3], [3, 2, 1]), -1, accuracy: 1e-12)
    }
}
