import Autograd
import Foundation
import Models
import NN
import Train
import XCTest

/// The commands never lose what a user points them at: a directory given as a file, an occupied run directory, an
/// output that is an input, a second run in the same directory; a failed write is an error naming the path; Ctrl-C
/// says how to resume; bench refuses an unknown section.
final class RunSafetyCommandTests: XCTestCase {
    private var scratch: ScratchDirectory!
    private var data: URL!

    override func setUpWithError() throws {
        scratch = try ScratchDirectory("run-safety")
        _ = try trainCommandURL()
        data = scratch.file("data")
        try writeMNISTRot(in: data, train: 64, test: 8, seed: 3)
    }
    override func tearDown() { scratch?.remove() }

    private func common(_ runs: URL, epochs: Int = 1) -> [String] {
        ["--model", "cnn", "--dataset", "mnist-rot", "--data-dir", data.path, "--epochs", "\(epochs)", "--batch-size",
         "32", "--threads", "1", "--checkpoint-dir", runs.path]
    }

    private func firstLine(_ result: CommandResult) -> String {
        result.errorOutput.split(separator: "\n").first.map(String.init) ?? ""
    }

    /// `--metrics DIR` on an existing directory is refused, and the directory and its files stay (it was deleted
    /// and replaced by a JSON file before).
    func testMetricsDirectoryIsRefusedNotDeleted() throws {
        let metrics = try scratch.write("earlier/runs/keep.txt", text: "keep").deletingLastPathComponent()
        let result = try runCommand(common(scratch.file("runs")) + ["--metrics", metrics.path], in: scratch.url,
                                    logName: "metrics-dir")
        XCTAssertEqual(result.status, 1, result.errorOutput)
        XCTAssertEqual(firstLine(result), "error: \(metrics.path): is a directory, not a file")
        XCTAssertEqual(try String(contentsOf: metrics.appendingPathComponent("keep.txt"), encoding: .utf8), "keep")
    }

    /// A new run into the directory of a finished run refuses and says how to resume or start over; `--overwrite`
    /// replaces only that run's files.
    func testOccupiedRunDirectoryRefusesThenOverwriteReplacesOnlyTheRunsFiles() throws {
        let runs = scratch.file("runs")
        var result = try runCommand(common(runs), in: scratch.url, logName: "first")
        XCTAssertEqual(result.status, 0, result.errorOutput)
        let checkpoint = Trainer.checkpointURL(in: runs)
        let before = try Data(contentsOf: checkpoint)
        try scratch.write("runs/notes.txt", text: "mine")

        result = try runCommand(common(runs, epochs: 2), in: scratch.url, logName: "second")
        XCTAssertEqual(result.status, 1, result.errorOutput)
        XCTAssertTrue(firstLine(result).hasPrefix("error: \(runs.path) already holds a run (last.safetensors, "
                                                  + "metrics.jsonl, curves.svg, cnn.safetensors); continue it with "
                                                  + "--resume, start it over with --overwrite"), result.errorOutput)
        XCTAssertEqual(try Data(contentsOf: checkpoint), before, "a refused run changed the checkpoint")
        XCTAssertEqual(try String(contentsOf: runs.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
                        .split(separator: "\n").count, 1)

        result = try runCommand(common(runs, epochs: 2) + ["--overwrite"], in: scratch.url, logName: "overwrite")
        XCTAssertEqual(result.status, 0, result.errorOutput)
        XCTAssertTrue(result.output.contains("--overwrite: replaced the earlier run's last.safetensors"), result.output)
        XCTAssertEqual(try String(contentsOf: runs.appendingPathComponent("notes.txt"), encoding: .utf8), "mine")
        XCTAssertEqual(try ParameterFile.read(checkpoint).metadata["epoch"], "2")
    }

    /// An output that is an input or another output is refused before anything is written.
    func testOutputsThatAreInputsAreRefused() throws {
        let weights = scratch.file("cnn.safetensors")
        try CNN(seed: 1).save(to: weights, metadata: ["model": "cnn"])
        let original = try Data(contentsOf: weights)
        var result = try runCommand(common(scratch.file("runs")) + ["--weights", weights.path, "--export", weights.path],
                                    in: scratch.url, logName: "export-over-weights")
        XCTAssertEqual(result.status, 2, result.errorOutput)
        XCTAssertEqual(firstLine(result), "error: --export \(weights.path) is also --weights: refusing to overwrite it")
        XCTAssertEqual(try Data(contentsOf: weights), original)

        let runs = scratch.file("runs")
        result = try runCommand(common(runs) + ["--plot", runs.appendingPathComponent("last.safetensors").path],
                                in: scratch.url, logName: "plot-over-checkpoint")
        XCTAssertEqual(result.status, 2, result.errorOutput)
        XCTAssertEqual(firstLine(result), "error: --plot \(runs.path)/last.safetensors is also the checkpoint of cnn: "
                       + "refusing to overwrite it")
    }

    /// A plot that cannot be written is an error naming the path, never "curves in ...".
    func testPlotThatCannotBeWrittenIsAnError() throws {
        let blocker = try scratch.write("blocker", text: "x")
        let plot = blocker.appendingPathComponent("curves.svg")
        let result = try runCommand(common(scratch.file("runs")) + ["--plot", plot.path], in: scratch.url,
                                    logName: "plot-unwritable")
        XCTAssertEqual(result.status, 1, result.errorOutput)
        XCTAssertEqual(firstLine(result), "error: \(plot.path): cannot be written: \(blocker.path) is not a directory")
        XCTAssertFalse(result.output.contains("curves in"), result.output)
    }

    /// A second run in a locked run directory is refused, naming the first one's PID.
    func testSecondConcurrentRunIsRefused() throws {
        let runs = scratch.file("runs")
        let lock = try RunDirectory(runs).lock()
        defer { lock.release() }
        let result = try runCommand(common(runs), in: scratch.url, logName: "concurrent")
        XCTAssertEqual(result.status, 1, result.errorOutput)
        XCTAssertEqual(firstLine(result), "error: \(runs.path) is in use by another run (PID \(getpid())); wait for it "
                       + "to finish or choose another --checkpoint-dir")
        XCTAssertFalse(FileManager.default.fileExists(atPath: Trainer.checkpointURL(in: runs).path))
    }

    /// Ctrl-C during training prints where the last checkpoint is and the exact command that resumes (the same
    /// arguments and --resume), and exits 130 (it ended the run without a word before).
    func testInterruptSaysHowToResume() throws {
        let runs = scratch.file("runs")
        let run = try CommandRun(try trainCommandURL(), common(runs, epochs: 100_000), directory: scratch.url,
                                 logName: "interrupted")
        let checkpoint = Trainer.checkpointURL(in: runs)
        let deadline = Date().addingTimeInterval(120)
        while !run.output.contains("epoch 2/") && run.process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.path), run.output)
        _ = kill(run.process.processIdentifier, SIGINT)
        let result = run.finish(timeout: 60)
        XCTAssertFalse(result.killedBySignal, result.errorOutput)
        XCTAssertEqual(result.status, 130, result.errorOutput)
        let lines = result.errorOutput.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("interrupted: the last checkpoint (after epoch ")
                                       && $0.hasSuffix(") is \(checkpoint.path)") }, result.errorOutput)
        let command = try trainCommandURL().path + " " + common(runs, epochs: 100_000).joined(separator: " ") + " --resume"
        XCTAssertTrue(lines.contains("resume with: \(command)"), result.errorOutput)
    }

    /// `bench --only bogus` fails naming the unknown section and listing the valid ones (it ran nothing and exited
    /// 0 before).
    func testBenchRefusesAnUnknownSection() throws {
        let result = try CommandRun(try commandURL("bench"), ["--only", "conv,bogus"], directory: scratch.url,
                                    logName: "bench").finish(timeout: 60)
        XCTAssertEqual(result.status, 2, result.errorOutput)
        XCTAssertEqual(firstLine(result), "error: --only: unknown section 'bogus' (valid: memory, sgemm, conv, pool, "
                       + "filters, parts, steps, steerable)")
    }
}
