import Autograd
import Foundation
import Models
import NN
import Train
import XCTest

/// The `train-c4cnn` command run as a child process: faulty files end it with `error: <file>: <place>: <fault>` and
/// exit status 1, a bad flag with status 2, a diverging loss with status 1 (never a trap); and a run killed in the
/// middle of an epoch and resumed ends with exactly the weights of an uninterrupted run.
final class CommandTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory("command") }
    override func tearDown() { scratch?.remove() }

    private func assertFails(_ result: CommandResult, status: Int32, firstLine pattern: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(result.killedBySignal, "the command crashed: \(result.errorOutput)", file: file, line: line)
        XCTAssertEqual(result.status, status, "exit status; stderr: \(result.errorOutput)", file: file, line: line)
        let first = result.errorOutput.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        XCTAssertNotNil(first.range(of: pattern, options: .regularExpression),
                        "stderr does not match \(pattern): \(result.errorOutput)", file: file, line: line)
    }

    private func escaped(_ text: String) -> String { NSRegularExpression.escapedPattern(for: text) }

    func testFaultyFilesAndFlagsEndTheCommandWithAClearMessage() throws {
        _ = try trainCommandURL()
        let data = scratch.file("data")
        try writeMNISTRot(in: data, train: 64, test: 8, seed: 3)
        let common = ["--model", "cnn", "--dataset", "mnist-rot", "--data-dir", data.path, "--epochs", "1",
                      "--batch-size", "16", "--threads", "1", "--checkpoint-dir", scratch.file("runs").path]

        // Parameter files: truncated, with a damaged header, of another model, with a NaN.
        let weights = scratch.file("cnn.safetensors")
        try CNN(seed: 1).save(to: weights, metadata: ["model": "cnn"])
        let bytes = Array(try Data(contentsOf: weights))
        let truncated = try scratch.write("truncated.safetensors", Array(bytes[0..<300]))
        var damaged = bytes
        damaged[8] = UInt8(ascii: "x")
        let badJSON = try scratch.write("bad-json.safetensors", damaged)
        let other = scratch.file("c4cnn.safetensors")
        try C4CNN(seed: 1).save(to: other, metadata: ["model": "c4cnn"])
        var nanFile = try ParameterFile.read(weights)
        var head = nanFile.entries["head.2.bias"]!.floats
        head[3] = .nan
        nanFile.entries["head.2.bias"] = SafetensorsEntry(shape: [10], values: .f32(head))
        let nanWeights = scratch.file("nan.safetensors")
        try nanFile.write(to: nanWeights)

        var result = try runCommand(common + ["--init", truncated.path], in: scratch.url, logName: "init-truncated")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(truncated.path)): header length \\(bytes 0-7\\): "
                    + "header length [0-9]+ runs past the end of the file")
        result = try runCommand(common + ["--init", badJSON.path], in: scratch.url, logName: "init-json")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(badJSON.path)): header: not valid JSON")
        result = try runCommand(common + ["--init", other.path], in: scratch.url, logName: "init-other")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(other.path)): tensors: holds parameters of the c4cnn "
                    + "model, not of cnn$")
        XCTAssertTrue(result.errorOutput.contains("\n  missing: first_conv.weight, first_conv.bias, convs.0.weight"),
                      result.errorOutput)
        XCTAssertTrue(result.errorOutput.contains("\n  unexpected: groupconv_encoder.0.bias"), result.errorOutput)
        result = try runCommand(common + ["--init", nanWeights.path], in: scratch.url, logName: "init-nan")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(nanWeights.path)): tensor \"head.2.bias\": "
                    + "element 3 is NaN")
        result = try runCommand(common + ["--eval-only", "--weights", badJSON.path], in: scratch.url, logName: "weights")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(badJSON.path)): header: not valid JSON")
        let absent = scratch.file("absent.safetensors").path
        result = try runCommand(common + ["--eval-only", "--weights", absent], in: scratch.url, logName: "weights-absent")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(absent)): cannot open \\(No such file or directory\\)$")

        // Data files: a label outside 0...9, a truncated file.
        let train = data.appendingPathComponent("mnist-rot").appendingPathComponent(DataCatalog.trainFileName)
        let original = try String(contentsOf: train, encoding: .utf8)
        var lines = original.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[2] = lines[2].split(separator: " ").dropLast().joined(separator: " ") + " 12"
        try lines.joined(separator: "\n").write(to: train, atomically: true, encoding: .utf8)
        result = try runCommand(common, in: scratch.url, logName: "data-label")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(train.path)): line 3: label 12 \\(field 785\\) is not a "
                    + "class 0...9$")
        try Data(Array(original.utf8)[0..<(original.utf8.count / 2)]).write(to: train)
        result = try runCommand(common, in: scratch.url, logName: "data-truncated")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(train.path)): line [0-9]+: expected 785 values \\(784 "
                    + "pixels and a label\\), found [0-9]+$")
        try Data(original.utf8).write(to: train)

        // A damaged checkpoint to resume from.
        let runs = scratch.file("resume-runs")
        result = try runCommand(common.dropLast(2) + ["--checkpoint-dir", runs.path], in: scratch.url, logName: "first")
        XCTAssertEqual(result.status, 0, result.errorOutput)
        let checkpoint = Trainer.checkpointURL(in: runs)
        let saved = Array(try Data(contentsOf: checkpoint))
        try Data(saved[0..<(saved.count - 5)]).write(to: checkpoint)
        result = try runCommand(common.dropLast(2) + ["--checkpoint-dir", runs.path, "--resume", "--epochs", "2"],
                                in: scratch.url, logName: "resume-damaged")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(checkpoint.path)): tensor \"[a-z_.0-9]+\": "
                    + "data_offsets \\[[0-9]+, [0-9]+\\] end past the data buffer")
        try Data(saved).write(to: checkpoint)
        result = try runCommand(common.dropLast(2) + ["--checkpoint-dir", runs.path, "--resume", "--epochs", "2",
                                                      "--seed", "9"], in: scratch.url, logName: "resume-other-seed")
        assertFails(result, status: 1, firstLine: "^error: \(escaped(checkpoint.path)): metadata \"configuration\": written "
                    + "by a run with different settings \\(seed 0 in the checkpoint, 9 now\\)")

        // Flags: status 2 and the flag named.
        for (arguments, pattern) in [(["--epochs", "0"], "^error: --epochs: '0' is not a whole number from 1 to 1000000$"),
                                     (["--bogus"], "^error: unknown option '--bogus'$"),
                                     (["--lr"], "^error: --lr needs a value$"),
                                     (["--lr", "fast"], "^error: --lr: 'fast' is not a non-negative number$"),
                                     (["--model", "resnet"], "^error: --model: unknown model 'resnet'"),
                                     (["--models", "c4cnn,resnet"], "^error: --models: unknown model 'resnet'"),
                                     (["--models", "cnn,cnn"], "^error: --models: a model is listed twice in 'cnn,cnn'$"),
                                     (["--threads", "-3"], "^error: --threads: '-3' is not a whole number from 1 to [0-9]+$"),
                                     (["--threads", "1000"], "^error: --threads: 1000 threads is more than this machine can use: at most [0-9]+ "),
                                     (["--preset", "fast"], "^error: --preset: unknown preset 'fast' \\(original, strong\\)$"),
                                     (["--schedule", "cosin"], "^error: --schedule: unknown schedule 'cosin' \\(constant, cosine, step\\)$")] {
            result = try runCommand(arguments, in: scratch.url, logName: "flag")
            assertFails(result, status: 2, firstLine: pattern)
        }

        // A loss driven to NaN: status 1 with the epoch and the batch, not a crash.
        result = try runCommand(common + ["--lr", "1e6"], in: scratch.url, logName: "diverge")
        assertFails(result, status: 1, firstLine: "^error: (the loss became NaN at epoch 1, batch [0-9]+|parameter "
                    + "[a-z_.0-9]+ became NaN or infinite in the update after epoch 1, batch [0-9]+); training stopped; ")
    }

    /// `--models` trains each listed model into its own folder and writes the table and one plot of all; with
    /// `--resume` finished runs are read back, not trained again.
    func testModelsTrainsEachAndReadsFinishedRunsBack() throws {
        _ = try trainCommandURL()
        let data = scratch.file("data")
        try writeMNISTRot(in: data, train: 64, test: 16, seed: 21)
        let runs = scratch.file("runs")
        let arguments = ["--models", "cnn,c4cnn", "--dataset", "mnist-rot", "--data-dir", data.path, "--epochs", "1",
                         "--batch-size", "32", "--threads", "1", "--checkpoint-dir", runs.path]
        let first = try runCommand(arguments, in: scratch.url, logName: "models")
        XCTAssertEqual(first.status, 0, first.errorOutput)
        for model in ["cnn", "c4cnn"] {
            let folder = runs.appendingPathComponent("\(model)-mnist-rot-original")
            XCTAssertTrue(FileManager.default.fileExists(atPath: Trainer.checkpointURL(in: folder).path), model)
            XCTAssertNotNil(first.output.range(of: "\n\(model) +[0-9]+ +1 +[0-9.]+%", options: .regularExpression),
                            first.output)
        }
        let plot = runs.appendingPathComponent("compare-mnist-rot-original.svg")
        let svg = try String(contentsOf: plot, encoding: .utf8)
        XCTAssertTrue(svg.contains("CNN vs C4CNN on mnist-rot"), svg)

        let again = try runCommand(arguments + ["--resume"], in: scratch.url, logName: "models-again")
        XCTAssertEqual(again.status, 0, again.errorOutput)
        XCTAssertFalse(again.output.contains("epoch 1/1"), "a finished run was trained again: \(again.output)")
        XCTAssertEqual(again.output.components(separatedBy: "after epoch 1\n").count, 3, again.output)
        // The table reads the recorded history: the same parameters, epochs and accuracies as the first time.
        let rows = { (text: String) in
            text.split(separator: "\n").filter { $0.hasPrefix("cnn ") || $0.hasPrefix("c4cnn ") }
                .map { $0.split(separator: " ").prefix(4).joined(separator: " ") }
        }
        XCTAssertEqual(rows(again.output).count, 2, again.output)
        XCTAssertEqual(rows(again.output), rows(first.output))
    }

    /// A run killed (SIGKILL) in the middle of its second epoch and resumed ends with exactly the weights of an
    /// uninterrupted run with the same seed: the optimiser state, the data order and the random streams are restored,
    /// and two threads sum in the same order every time.
    func testKilledRunResumesToTheSameWeights() throws {
        let command = try trainCommandURL()
        let data = scratch.file("data")
        try writeMNISTRot(in: data, train: 1600, test: 64, seed: 11)
        let arguments = ["--model", "cnn", "--dataset", "mnist-rot", "--data-dir", data.path, "--epochs", "3",
                         "--batch-size", "32", "--shuffle", "--seed", "5", "--threads", "2"]
        let whole = scratch.file("whole"), killed = scratch.file("killed")
        let start = Date()

        // Both runs at once: the uninterrupted one, and the one to kill.
        let reference = try CommandRun(command, arguments + ["--checkpoint-dir", whole.path], directory: scratch.url,
                                       logName: "whole")
        let victim = try CommandRun(command, arguments + ["--checkpoint-dir", killed.path], directory: scratch.url,
                                    logName: "victim")
        let checkpoint = Trainer.checkpointURL(in: killed)
        let deadline = Date().addingTimeInterval(240)
        while !FileManager.default.fileExists(atPath: checkpoint.path) && victim.process.isRunning && Date() < deadline {
            usleep(20_000)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.path), "no checkpoint after epoch 1: \(victim.output)")
        // Kill once the second epoch reports its 20th of 50 batches: a point reached by progress, not by the clock,
        // so a fast or a loaded machine kills at the same place (with 30 batches to spare).
        let marker = "epoch 2/3 [", mark = " 20/50 loss"
        while !victim.output.split(separator: "\n").contains(where: { $0.hasPrefix(marker) && $0.contains(mark) })
                && victim.process.isRunning && Date() < deadline {
            usleep(2_000)
        }
        victim.kill()
        let killedResult = victim.finish()
        XCTAssertTrue(killedResult.killedBySignal, "the run ended before it was killed: \(killedResult.output)")
        XCTAssertEqual(killedResult.status, SIGKILL)
        let interrupted = try ParameterFile.read(checkpoint)
        XCTAssertEqual(interrupted.metadata["epoch"], "1", "the kill did not land in the second epoch")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("cnn.safetensors").path))

        let resumed = try CommandRun(command, arguments + ["--checkpoint-dir", killed.path, "--resume"],
                                     directory: scratch.url, logName: "resumed").finish()
        XCTAssertEqual(resumed.status, 0, resumed.errorOutput)
        XCTAssertTrue(resumed.output.contains("resumed from \(checkpoint.path) after epoch 1"), resumed.output)
        let referenceResult = reference.finish()
        XCTAssertEqual(referenceResult.status, 0, referenceResult.errorOutput)

        // The final weights, bit for bit; the optimiser state and step count too.
        let a = try Data(contentsOf: whole.appendingPathComponent("cnn.safetensors"))
        let b = try Data(contentsOf: killed.appendingPathComponent("cnn.safetensors"))
        XCTAssertEqual(a, b, "the resumed run ends with other weights than the uninterrupted one")
        let lastA = try ParameterFile.read(Trainer.checkpointURL(in: whole))
        let lastB = try ParameterFile.read(Trainer.checkpointURL(in: killed))
        XCTAssertEqual(lastA.entries, lastB.entries)
        XCTAssertEqual(lastA.metadata["optimizer_step"], lastB.metadata["optimizer_step"])
        // One metrics line per epoch, none repeated.
        let metrics = try String(contentsOf: killed.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssertEqual(try metrics.split(separator: "\n").map {
            try JSONDecoder().decode(EpochMetrics.self, from: Data($0.utf8)).epoch
        }, [1, 2, 3])
        print("kill/resume: killed after batch 20 of 50 in epoch 2; resumed weights identical; "
              + "\(String(format: "%.1f", Date().timeIntervalSince(start))) s")
    }
}
