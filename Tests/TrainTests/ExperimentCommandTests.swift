import Autograd
import Foundation
import Train
import XCTest

/// `train-c4cnn`'s experiment flags on tiny data (64 training and 16 test images, one epoch): `--seeds` with
/// summary.json, resume of a partial sweep, `--summarize` over two machines' folders, `--rotation-sweep` with
/// sweep.json, `--train-size` and `--train-sizes`.
final class ExperimentCommandTests: XCTestCase {
    private var scratch: ScratchDirectory!
    private var data: URL!

    override func setUpWithError() throws {
        scratch = try ScratchDirectory("experiment-command")
        _ = try trainCommandURL()
        data = scratch.file("data")
        try writeMNISTRot(in: data, train: 64, test: 16, seed: 5)
    }
    override func tearDown() { scratch?.remove() }

    private func common(_ runs: URL) -> [String] {
        ["--dataset", "mnist-rot", "--data-dir", data.path, "--epochs", "1", "--batch-size", "16", "--threads", "1",
         "--lr", "0.01", "--checkpoint-dir", runs.path]
    }

    private func succeeds(_ arguments: [String], _ log: String, file: StaticString = #filePath,
                          line: UInt = #line) throws -> String {
        let result = try runCommand(arguments, in: scratch.url, logName: log)
        XCTAssertEqual(result.status, 0, "\(log): \(result.errorOutput)\n\(result.output)", file: file, line: line)
        return result.output
    }

    private func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    /// The last line's test_accuracy of a run's metrics.jsonl.
    private func finalAccuracy(_ runDirectory: URL) throws -> Double {
        let lines = try String(contentsOf: runDirectory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        let last = try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as! [String: Any]
        return last["test_accuracy"] as! Double
    }

    private func models(_ summary: [String: Any]) -> [String: [String: Any]] {
        summary["models"] as! [String: [String: Any]]
    }

    /// --seeds 3: three runs from three seeds in seed-<s>/cnn/, summary.json from their metrics (mean, std n-1,
    /// min, max), the strip plot; a sweep at 90 degrees per seed whose 0-degree accuracy is the run's.
    func testSeedsWriteTheSummaryAndTheSweeps() throws {
        let runs = scratch.file("sweep")
        let output = try succeeds(common(runs) + ["--model", "cnn", "--seeds", "3", "--rotation-sweep", "90"], "seeds")
        let accuracies = try (0..<3).map { try finalAccuracy(SeedSweep.runFolder(runs, seed: $0, model: "cnn")) }
        let weights = try (0..<3).map {
            try Data(contentsOf: SeedSweep.runFolder(runs, seed: $0, model: "cnn").appendingPathComponent("cnn.safetensors"))
        }
        XCTAssertEqual(Set(weights).count, 3, "each seed trains its own model")
        let summary = try json(runs.appendingPathComponent("summary.json"))
        XCTAssertEqual(summary["dataset"] as? String, "mnist-rot")
        XCTAssertEqual(summary["preset"] as? String, "original")
        XCTAssertEqual(summary["epochs"] as? Int, 1)
        let cnn = models(summary)["cnn"]!
        XCTAssertEqual(cnn["accuracies"] as? [Double], accuracies)
        let mean = accuracies.reduce(0, +) / 3
        let std = (accuracies.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot()
        XCTAssertEqual(cnn["mean"] as! Double, mean, accuracy: 1e-12)
        XCTAssertEqual(cnn["std"] as! Double, std, accuracy: 1e-12)
        XCTAssertEqual(cnn["min"] as? Double, accuracies.min())
        XCTAssertEqual(cnn["max"] as? Double, accuracies.max())
        XCTAssertEqual((cnn["seconds"] as? [Double])?.count, 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: runs.appendingPathComponent("summary.svg").path))
        XCTAssertTrue(output.contains(String(format: "cnn          3  %6.2f ± %5.2f", 100 * mean, 100 * std)), output)
        for seed in 0..<3 {
            let sweep = try json(SeedSweep.runFolder(runs, seed: seed, model: "cnn").appendingPathComponent("sweep.json"))
            XCTAssertEqual(sweep["angles"] as? [Double], [0, 90, 180, 270])
            XCTAssertEqual((sweep["accuracy"] as? [Double])?.first, accuracies[seed], "0 degrees is the plain accuracy")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: runs.appendingPathComponent("sweep.svg").path))
    }

    /// A sweep stopped after two of three seeds: rerun without --resume it refuses the occupied seed; with --resume
    /// it reads the finished seeds back (their files untouched) and trains only the third.
    func testPartialSweepResumes() throws {
        let runs = scratch.file("partial")
        _ = try succeeds(common(runs) + ["--model", "cnn", "--seeds", "0..1"], "first")
        let seed0 = SeedSweep.runFolder(runs, seed: 0, model: "cnn").appendingPathComponent("cnn.safetensors")
        let before = try Data(contentsOf: seed0)
        let refused = try runCommand(common(runs) + ["--model", "cnn", "--seeds", "3"], in: scratch.url, logName: "no-resume")
        XCTAssertEqual(refused.status, 1, refused.errorOutput)
        XCTAssertTrue(refused.errorOutput.contains("already holds a run"), refused.errorOutput)
        let output = try succeeds(common(runs) + ["--model", "cnn", "--seeds", "3", "--resume"], "resume")
        XCTAssertEqual(output.components(separatedBy: "finished earlier").count - 1, 2, output)
        XCTAssertEqual(output.components(separatedBy: "done: cnn").count - 1, 1, "only seed 2 trains: \(output)")
        XCTAssertEqual(try Data(contentsOf: seed0), before)
        let accuracies = try (0..<3).map { try finalAccuracy(SeedSweep.runFolder(runs, seed: $0, model: "cnn")) }
        XCTAssertEqual(models(try json(runs.appendingPathComponent("summary.json")))["cnn"]!["accuracies"] as? [Double],
                       accuracies)
    }

    /// Two machines' parts of one sweep (seeds 0..1 and 2..2, two models), gathered by --summarize into one summary
    /// with the paired wins of the first model.
    func testSummarizeGathersTwoPartialFolders() throws {
        let a = scratch.file("machine-a"), b = scratch.file("machine-b")
        _ = try succeeds(common(a) + ["--models", "cnn,c4cnn", "--seeds", "0..1", "--rotation-sweep", "90"], "a")
        _ = try succeeds(common(b) + ["--models", "cnn,c4cnn", "--seeds", "2..2", "--rotation-sweep", "90"], "b")
        try FileManager.default.removeItem(at: a.appendingPathComponent("sweep.svg"))
        let output = try succeeds(["--summarize", "\(a.path),\(b.path)", "--models", "cnn,c4cnn"], "summarize")
        let summary = try json(a.appendingPathComponent("summary.json"))
        var wins = 0
        var byModel: [String: [Double]] = [:]
        for model in ["cnn", "c4cnn"] {
            byModel[model] = try [a, a, b].enumerated().map {
                try finalAccuracy(SeedSweep.runFolder($0.element, seed: $0.offset, model: model))
            }
            XCTAssertEqual(models(summary)[model]!["accuracies"] as? [Double], byModel[model])
        }
        for seed in 0..<3 where byModel["cnn"]![seed] > byModel["c4cnn"]![seed] { wins += 1 }
        XCTAssertTrue(output.contains("cnn beats c4cnn in \(wins) of 3 seeds"), output)
        XCTAssertTrue(output.contains("cnn: seeds 0..2"), output)
        // The parts' sweeps gathered too: at 0 degrees the mean sweep is the mean accuracy of each model.
        XCTAssertTrue(output.contains("rotation sweep, mean test accuracy (%) over 3 seeds"), output)
        let zeroRow = output.split(separator: "\n").first { $0.hasPrefix("        0 ") }.map(String.init) ?? ""
        for model in ["cnn", "c4cnn"] {
            let mean = byModel[model]!.reduce(0, +) / 3
            XCTAssertTrue(zeroRow.contains(String(format: " %8.2f%%", 100 * mean)), "\(model): \(zeroRow)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: a.appendingPathComponent("sweep.svg").path))

        let empty = scratch.file("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let result = try runCommand(["--summarize", empty.path], in: scratch.url, logName: "summarize-empty")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.errorOutput.hasPrefix("error: no finished seeds"), result.errorOutput)
    }

    /// --train-size 20 trains on 20 images ("20 training") in a folder of its own; --train-sizes 20,40 makes one
    /// run per size in distinct folders, the table and the figure.
    func testTrainSizes() throws {
        let runs = scratch.file("sizes")
        var output = try succeeds(common(runs).dropLast(2) + ["--model", "cnn", "--train-size", "20"], "size")
        // 64 images in batches of 16 make 4 steps an epoch; 20 images make 2, so 2 epochs keep the 4 steps.
        XCTAssertTrue(output.contains("20 training images: 2 epochs, the optimiser steps of 1 epochs on all 64"), output)
        XCTAssertTrue(output.contains("cnn: 102698 parameters; 20 training and 16 test images"), output)
        XCTAssertTrue(output.contains("2 epochs"), output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: scratch.file("runs/cnn-mnist-rot-n20-original/metrics.jsonl").path))
        output = try succeeds(common(runs) + ["--model", "cnn", "--train-sizes", "20,40"], "sizes")
        XCTAssertTrue(output.contains("20 training and") && output.contains("40 training and"), output)
        let n20 = runs.appendingPathComponent("cnn-mnist-rot-n20-original")
        let n40 = runs.appendingPathComponent("cnn-mnist-rot-n40-original")
        let table = output.components(separatedBy: "data efficiency").last!
        XCTAssertTrue(table.contains(String(format: "             20 %.2f%%", 100 * (try finalAccuracy(n20)))), table)
        XCTAssertTrue(table.contains(String(format: "             40 %.2f%%", 100 * (try finalAccuracy(n40)))), table)
        XCTAssertTrue(FileManager.default.fileExists(atPath: runs.appendingPathComponent("efficiency-mnist-rot-original.svg").path))
        XCTAssertEqual(try String(contentsOf: n20.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").count, 2, "two epochs of 20 images")
        // --same-epochs keeps the one epoch; without a training-set size it is refused.
        output = try succeeds(common(scratch.file("same")) + ["--model", "cnn", "--train-size", "20", "--same-epochs"],
                              "same-epochs")
        XCTAssertFalse(output.contains("the optimiser steps of"), output)
        XCTAssertTrue(output.contains("20 training and 16 test images") && output.contains("1 epochs"), output)
        let lone = try runCommand(common(runs) + ["--model", "cnn", "--same-epochs"], in: scratch.url, logName: "lone")
        XCTAssertEqual(lone.status, 2)
        XCTAssertTrue(lone.errorOutput.contains("--same-epochs applies to --train-size"), lone.errorOutput)
        let refused = try runCommand(common(runs) + ["--model", "cnn", "--train-size", "65"], in: scratch.url,
                                     logName: "too-many")
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.errorOutput.contains("--train-size 65: the training set has 64 images"), refused.errorOutput)
    }

    /// --eval-only --weights FILE --rotation-sweep: sweep.json beside the weights, its 0-degree accuracy the one
    /// printed for the plain test set.
    func testRotationSweepOfSavedWeights() throws {
        let runs = scratch.file("eval")
        _ = try succeeds(common(runs) + ["--model", "cnn"], "train")
        let output = try succeeds(common(runs).dropLast(2) + ["--eval-only", "--weights",
                                                              runs.appendingPathComponent("cnn.safetensors").path,
                                                              "--rotation-sweep", "45"], "eval")
        let sweep = try json(runs.appendingPathComponent("sweep.json"))
        XCTAssertEqual(sweep["angles"] as? [Double], [0, 45, 90, 135, 180, 225, 270, 315])
        let zero = (sweep["accuracy"] as! [Double])[0]
        XCTAssertEqual(zero, try finalAccuracy(runs))
        XCTAssertTrue(output.contains(String(format: "accuracy %.2f%%", 100 * zero)), output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: runs.appendingPathComponent("sweep.svg").path))
    }
}
