import Autograd
import Foundation
import Models
import NN
import Train
import XCTest

/// The command's logic as library types: presets merged with explicit settings, model names, the kind of a weights
/// file, run directories (names, refusal of an occupied one, the lock) and the checks of output paths.
final class RunSetupTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory("run-setup") }
    override func tearDown() { scratch?.remove() }

    func testPresetsMergeWithExplicitSettings() throws {
        XCTAssertEqual(Preset.original.configuration, .original)
        XCTAssertEqual(try Preset(parsing: "strong"), .strong)
        XCTAssertThrowsError(try Preset(parsing: "fast")) { XCTAssertEqual("\($0)", "unknown preset 'fast' (original, strong)") }
        XCTAssertTrue(Preset.strong.batchNorm)
        XCTAssertFalse(Preset.original.batchNorm)
        let merged = Preset.strong.configuration(TrainingOverrides(epochs: 3, learningRate: 1e-3, seed: 9))
        var expected = TrainingConfiguration.strong
        expected.epochs = 3
        expected.learningRate = 1e-3
        expected.seed = 9
        XCTAssertEqual(merged, expected)
        XCTAssertEqual(Preset.strong.configuration(TrainingOverrides()), .strong)
        let shuffled = Preset.original.configuration(TrainingOverrides(shuffle: true, schedule: .step))
        XCTAssertTrue(shuffled.shuffle)
        XCTAssertEqual(shuffled.schedule, .step)
        XCTAssertEqual(shuffled.learningRate, 5e-5)
    }

    func testModelNames() throws {
        XCTAssertEqual(try ModelName(parsing: "d4cnn"), .d4cnn)
        XCTAssertThrowsError(try ModelName(parsing: "resnet")) { XCTAssertTrue("\($0)".hasPrefix("unknown model 'resnet' (c4cnn, cnn")) }
        XCTAssertEqual(try ModelName.list(parsing: "cnn,c4cnn"), [.cnn, .c4cnn])
        XCTAssertThrowsError(try ModelName.list(parsing: "cnn,cnn")) { XCTAssertEqual("\($0)", "a model is listed twice in 'cnn,cnn'") }
        XCTAssertThrowsError(try ModelName.list(parsing: "cnn,")) { XCTAssertTrue("\($0)".hasPrefix("unknown model '' ("), "\($0)") }
        for name in ModelName.allCases {
            XCTAssertEqual(ModelName.of(name.make(batchNorm: false)), name)
            XCTAssertFalse(name.make(batchNorm: true).namedBuffers.isEmpty)
        }
        XCTAssertNil(ModelName.of(ReLU()))
    }

    func testWeightsFileKinds() throws {
        let model = CNN(seed: 1, batchNorm: true)
        let stateDict = scratch.file("cnn.safetensors")
        try model.save(to: stateDict, metadata: ["model": "cnn"])
        var kind = WeightsFileKind(try ParameterFile.read(stateDict))
        XCTAssertEqual(kind.form, .stateDict)
        XCTAssertEqual(kind.model, "cnn")
        XCTAssertTrue(kind.hasBatchNorm)
        XCTAssertTrue(kind.needsBatchNorm(requested: false))

        let exported = scratch.file("plain.safetensors")
        try ModelName.cnn.saveExport(of: model, preset: "strong", to: exported)
        kind = WeightsFileKind(try ParameterFile.read(exported))
        XCTAssertEqual(kind.form, .exported)
        XCTAssertEqual(kind.preset, "strong")
        XCTAssertFalse(kind.hasBatchNorm)

        var configuration = TrainingConfiguration()
        configuration.epochs = 1
        configuration.batchSize = 8
        let plain = CNN(seed: 1)
        let trainer = Trainer(model: plain, modelName: "cnn", configuration: configuration,
                              train: randomImages(count: 8, side: 33, seed: 1), test: randomImages(count: 2, side: 33, seed: 2),
                              progress: .silent)
        trainer.checkpointDirectory = scratch.file("run")
        try trainer.run()
        kind = WeightsFileKind(try ParameterFile.read(Trainer.checkpointURL(in: scratch.file("run"))))
        XCTAssertEqual(kind.form, .checkpoint)
        XCTAssertFalse(kind.needsBatchNorm(requested: false))
    }

    func testRunDirectoryNames() {
        XCTAssertEqual(RunDirectory.name(model: "cnn", dataset: "rot-digits", preset: "strong"), "cnn-rot-digits-strong")
        XCTAssertEqual(RunDirectory.url(base: nil, model: "cnn", dataset: "d", preset: "p", several: false).path,
                       URL(fileURLWithPath: "runs/cnn-d-p").path)
        XCTAssertEqual(RunDirectory.url(base: "/x", model: "cnn", dataset: "d", preset: "p", several: false).path, "/x")
        XCTAssertEqual(RunDirectory.url(base: "/x", model: "cnn", dataset: "d", preset: "p", several: true).path, "/x/cnn-d-p")
    }

    /// An occupied run directory is refused; replacing removes the run's files and nothing else.
    func testOccupiedRunDirectoryIsRefusedAndReplacedOnlyInPart() throws {
        let run = RunDirectory(scratch.file("run"))
        XCTAssertEqual(try run.prepareNewRun(model: "cnn", replacing: false), [])
        try scratch.write("run/metrics.jsonl", text: "{}\n")
        try scratch.write("run/cnn.safetensors", text: "x")
        try scratch.write("run/notes.txt", text: "mine")
        XCTAssertThrowsError(try run.prepareNewRun(model: "cnn", replacing: false)) { error in
            XCTAssertEqual(error as? RunDirectoryError, .occupied(directory: run.url, files: [run.metrics, run.weights(model: "cnn")]))
            XCTAssertTrue("\(error)".contains("already holds a run (metrics.jsonl, cnn.safetensors)"), "\(error)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.metrics.path), "a refusal removed a file")
        XCTAssertEqual(try run.prepareNewRun(model: "cnn", replacing: true).map(\.lastPathComponent),
                       ["metrics.jsonl", "cnn.safetensors"])
        XCTAssertEqual(try String(contentsOf: scratch.file("run/notes.txt"), encoding: .utf8), "mine")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.metrics.path))
        // A folder where a run's file belongs is never removed.
        try FileManager.default.createDirectory(at: run.curves, withIntermediateDirectories: true)
        XCTAssertThrowsError(try run.prepareNewRun(model: "cnn", replacing: true)) {
            XCTAssertEqual($0 as? RunDirectoryError, .notAFile(run.curves))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.curves.path))
    }

    /// The lock refuses a second holder, naming the first one's PID, and is free again once released.
    func testRunDirectoryLockNamesTheHolder() throws {
        let run = RunDirectory(scratch.file("locked"))
        let first = try run.lock()
        XCTAssertThrowsError(try run.lock()) { error in
            XCTAssertEqual(error as? RunDirectoryError, .busy(directory: run.url, pid: getpid()))
            XCTAssertTrue("\(error)".hasSuffix("is in use by another run (PID \(getpid()))"), "\(error)")
        }
        first.release()
        let second = try run.lock()
        second.release()
    }

    func testOutputPathConflictsAndWritability() throws {
        let weights = try scratch.write("w.safetensors", text: "w")
        let folder = scratch.file("d")
        XCTAssertEqual(OutputPaths.conflict(inputs: [("--weights", weights)], outputs: [("--export", weights)]),
                       "--export \(weights.path) is also --weights")
        XCTAssertEqual(OutputPaths.conflict(inputs: [], outputs: [("the checkpoint", folder.appendingPathComponent("last.safetensors")),
                                                                  ("--plot", URL(fileURLWithPath: folder.path + "/./last.safetensors"))]),
                       "--plot \(folder.path)/last.safetensors is also the checkpoint")
        let link = scratch.file("link.safetensors")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: weights)
        XCTAssertNotNil(OutputPaths.conflict(inputs: [("--init", link)], outputs: [("--export", weights)]))
        XCTAssertNil(OutputPaths.conflict(inputs: [("--init", weights)], outputs: [("--export", scratch.file("other"))]))

        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertThrowsError(try OutputPaths.checkWritable(folder)) {
            XCTAssertEqual("\($0)", "\(folder.path): is a directory, not a file")
        }
        let under = weights.appendingPathComponent("curves.svg")
        XCTAssertThrowsError(try OutputPaths.checkWritable(under)) {
            XCTAssertEqual("\($0)", "\(under.path): cannot be written: \(weights.path) is not a directory")
        }
        XCTAssertNoThrow(try OutputPaths.checkWritable(scratch.file("new/deeper/file.svg")))
    }

    /// A curve plot that cannot be written is an error naming the path.
    func testFailedPlotWriteIsAnError() throws {
        let blocker = try scratch.write("file", text: "x")
        let target = blocker.appendingPathComponent("curves.svg")
        XCTAssertThrowsError(try CurvePlot.write([], title: "t", to: target)) { error in
            XCTAssertTrue("\(error)".contains(blocker.path), "\(error)")
        }
    }
}
