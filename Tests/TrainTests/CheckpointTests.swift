import Autograd
import Foundation
import Models
import NN
import Train
import XCTest

/// Checkpoints: exact resumption, and refusal of damaged, edited or foreign checkpoints with the model, the
/// optimiser and the history left exactly as they were.
final class CheckpointTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory("checkpoints") }
    override func tearDown() { scratch?.remove() }

    // MARK: helpers

    private let data = randomImages(count: 24, side: 4, seed: 9)

    /// A small model with every kind of state: linear layers, batch-norm buffers and dropout.
    private func makeModel(seed: UInt64) -> Module {
        var g = SeededRandom(seed: seed)
        return Sequential(Flatten(), Linear(16, 12, generator: &g), BatchNorm(12), ReLU(), Dropout(0.25),
                          Linear(12, 10, generator: &g))
    }

    private func makeTrainer(epochs: Int, optimizer: OptimizerKind = .adamw, directory: URL? = nil,
                             name: String = "tiny", seed: UInt64 = 3) -> Trainer {
        var configuration = TrainingConfiguration()
        configuration.epochs = epochs
        configuration.batchSize = 8
        configuration.learningRate = 1e-2
        configuration.optimizer = optimizer
        configuration.shuffle = true
        configuration.seed = seed
        configuration.schedule = .cosine
        configuration.warmupSteps = 2
        let trainer = Trainer(model: makeModel(seed: 1), modelName: name, configuration: configuration, train: data,
                              test: data.subset([0, 1, 2, 3]), progress: .silent)
        trainer.checkpointDirectory = directory
        return trainer
    }

    /// Everything a resume may change.
    private struct State: Equatable {
        var model: [String: [Float]]
        var shapes: [String: [Int]]
        var versions: [Int]
        var optimizer: [String: [Float]]
        var step: Int
        var history: [EpochMetrics]

        init(_ trainer: Trainer) {
            let dict = trainer.model.stateDict()
            model = dict.mapValues(\.scalars)
            shapes = dict.mapValues(\.shape)
            versions = trainer.model.parameters().map(\.version)
            optimizer = trainer.optimizer.stateTensors().mapValues(\.scalars)
            step = trainer.optimizer.stepCount
            history = trainer.history
        }

        /// Equal bit for bit (NaN-safe).
        func same(_ other: State) -> Bool {
            func bits(_ d: [String: [Float]]) -> [String: [UInt32]] { d.mapValues { $0.map(\.bitPattern) } }
            return bits(model) == bits(other.model) && shapes == other.shapes && versions == other.versions
                && bits(optimizer) == bits(other.optimizer) && step == other.step && history == other.history
        }
    }

    /// A safetensors file from a header object and a data buffer.
    private func safetensors(header: Any, data: [UInt8]) throws -> [UInt8] {
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        return safetensors(headerBytes: Array(json), data: data)
    }

    private func safetensors(headerBytes: [UInt8], data: [UInt8], length: UInt64? = nil) -> [UInt8] {
        var out = [UInt8]()
        var n = length ?? UInt64(headerBytes.count)
        for _ in 0..<8 { out.append(UInt8(n & 255)); n >>= 8 }
        return out + headerBytes + data
    }

    /// The header object, header length and data buffer of a safetensors file.
    private func split(_ bytes: [UInt8]) throws -> (header: [String: Any], length: Int, data: [UInt8]) {
        var n = 0
        for i in (0..<8).reversed() { n = n << 8 | Int(bytes[i]) }
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as! [String: Any]
        return (header, n, Array(bytes[(8 + n)...]))
    }

    // MARK: exact resumption

    func testResumeContinuesExactlyAsAnUninterruptedRun() throws {
        // The uninterrupted run keeps a copy of the checkpoint of every epoch, as a run killed then would leave it.
        let directory = scratch.file("exact")
        let whole = makeTrainer(epochs: 4, directory: directory)
        whole.onEpochEnd = { metrics in
            try? FileManager.default.copyItem(at: Trainer.checkpointURL(in: directory),
                                              to: directory.appendingPathComponent("epoch-\(metrics.epoch).safetensors"))
        }
        try whole.run()

        for stop in [1, 2, 3] {
            let second = makeTrainer(epochs: 4, directory: scratch.file("resumed-\(stop)"))
            try second.resume(from: directory.appendingPathComponent("epoch-\(stop).safetensors"))
            XCTAssertEqual(second.completedEpochs, stop)
            try second.run()
            let a = State(whole), b = State(second)
            XCTAssertEqual(a.model.mapValues { $0.map(\.bitPattern) }, b.model.mapValues { $0.map(\.bitPattern) },
                           "parameters after resuming at epoch \(stop)")
            XCTAssertEqual(a.optimizer.mapValues { $0.map(\.bitPattern) }, b.optimizer.mapValues { $0.map(\.bitPattern) })
            XCTAssertEqual(a.step, b.step)
            XCTAssertEqual(a.history.map(\.trainLoss), b.history.map(\.trainLoss))
        }
    }

    func testMetricsFileIsRewrittenFromTheCheckpointOnResume() throws {
        let directory = scratch.file("metrics")
        let metrics = directory.appendingPathComponent("metrics.jsonl")
        let first = makeTrainer(epochs: 2, directory: directory)
        first.metricsFile = metrics
        try first.run()
        // An epoch that ended and logged its metrics, but was killed before its checkpoint was written.
        let extra = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n").last!
        try (try String(contentsOf: metrics, encoding: .utf8) + extra + "\n").write(to: metrics, atomically: true, encoding: .utf8)
        let second = makeTrainer(epochs: 3, directory: directory)
        second.metricsFile = metrics
        try second.resume(from: Trainer.checkpointURL(in: directory))
        try second.run()
        let lines = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let epochs = try lines.map { try JSONDecoder().decode(EpochMetrics.self, from: Data($0.utf8)).epoch }
        XCTAssertEqual(epochs, [1, 2, 3])
    }

    // MARK: atomic writing

    func testCheckpointsAreWrittenAtomically() throws {
        let directory = scratch.file("atomic")
        let trainer = makeTrainer(epochs: 1, directory: directory)
        try trainer.run()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["last.safetensors"])
        // A temporary file of a writer that was killed is removed by the next save; one of a live writer is not.
        var child: pid_t = 0
        let status = posix_spawn(&child, "/bin/true", nil, nil, [strdup("/bin/true"), nil], nil)
        XCTAssertEqual(status, 0)
        var exit: Int32 = 0
        waitpid(child, &exit, 0)
        let stale = directory.appendingPathComponent(".last.safetensors.tmp-\(child)-abc")
        let live = directory.appendingPathComponent(".last.safetensors.tmp-1-abc")
        try Data([1, 2, 3]).write(to: stale)
        try Data([1, 2, 3]).write(to: live)
        try trainer.saveCheckpoint()
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live.path))
        // The checkpoint holds a checksum and the names of the optimiser tensors.
        let file = try ParameterFile.read(Trainer.checkpointURL(in: directory))
        XCTAssertTrue(file.metadata["checksum"]?.hasPrefix("crc32:") ?? false)
        XCTAssertEqual(file.metadata["optimizer_state"].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) },
                       trainer.optimizer.stateTensors().keys.sorted())
    }

    // MARK: refusals

    /// A checkpoint of another model, or with missing, extra or wrongly shaped tensors, is refused with a message
    /// that lists them.
    func testMisfittingCheckpointsAreRefusedWithLists() throws {
        let cnnDirectory = scratch.file("cnn")
        var configuration = TrainingConfiguration()
        configuration.epochs = 0
        let cnn = Trainer(model: CNN(seed: 1), modelName: "cnn", configuration: configuration,
                          train: randomImages(count: 2, side: 33, seed: 1), test: randomImages(count: 1, side: 33, seed: 2),
                          progress: .silent)
        cnn.checkpointDirectory = cnnDirectory
        try cnn.saveCheckpoint()
        let url = Trainer.checkpointURL(in: cnnDirectory)

        let c4 = Trainer(model: C4CNN(seed: 1), modelName: "c4cnn", configuration: configuration,
                         train: randomImages(count: 2, side: 33, seed: 1), test: randomImages(count: 1, side: 33, seed: 2),
                         progress: .silent)
        let before = State(c4)
        XCTAssertThrowsError(try c4.resume(from: url)) { error in
            XCTAssertEqual("\(error)", "\(url.path): metadata \"model\": a checkpoint of the cnn model, not of c4cnn")
        }
        XCTAssertTrue(State(c4).same(before))

        // The same name but another architecture (batch norm): every misfit is listed.
        let strong = Trainer(model: CNN(seed: 1, batchNorm: true), modelName: "cnn", configuration: configuration,
                             train: randomImages(count: 2, side: 33, seed: 1), test: randomImages(count: 1, side: 33, seed: 2),
                             progress: .silent)
        let strongBefore = State(strong)
        XCTAssertThrowsError(try strong.resume(from: url)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("\(url.path): tensors: do not fit the cnn model and its adamw optimiser"), text)
            XCTAssertTrue(text.contains("\n  missing: model.first_norm.weight, model.first_norm.bias, "), text)
            XCTAssertTrue(text.contains(", model.first_norm.running_mean, model.first_norm.running_var"), text)
            XCTAssertTrue(text.contains("\n  unexpected: model.convs.3.bias, model.convs.3.weight"), text)
            XCTAssertTrue(text.contains("\n  shape mismatch for model.convs.9.weight: model has [64], file has [128, 64, 3, 3]"), text)
        }
        XCTAssertTrue(State(strong).same(strongBefore))

        // As initial parameters (--init), another model's file is refused the same way.
        let model = C4CNN(seed: 1)
        let parameters = model.stateDict()
        XCTAssertThrowsError(try ParameterFile.load(url, into: model, modelName: "c4cnn")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("\(url.path): tensors: holds parameters of the cnn model, not of c4cnn\n  missing: "
                                         + "model.liftingconv.weight, model.liftingconv.bias"), text)
            XCTAssertTrue(text.contains("\n  unexpected: model.convs.0.bias"), text)
            XCTAssertTrue(text.contains("\n  shape mismatch for model.head.0.weight: model has [256, 3200], file has [32, 128]"), text)
        }
        XCTAssertEqual(model.stateDict().mapValues(\.scalars), parameters.mapValues(\.scalars))
    }

    /// Malformed, damaged and edited checkpoints are refused with a `DataError` naming the file, the place and the
    /// fault, and the trainer — model, optimiser state, step count, history — stays exactly as it was.
    func testMalformedCheckpointsAreRefusedAndChangeNothing() throws {
        let counter = RejectionCounter()
        let directory = scratch.file("source")
        let source = makeTrainer(epochs: 2, directory: directory)
        try source.run()
        let valid = Array(try Data(contentsOf: Trainer.checkpointURL(in: directory)))
        let file = try ParameterFile.read(Trainer.checkpointURL(in: directory))

        // The trainer that is asked to resume has state of its own, which must survive every refusal.
        let target = makeTrainer(epochs: 4)
        try target.run()
        let before = State(target)
        var n = 0
        func attempt(_ kind: String, _ bytes: [UInt8], _ fragments: [String], line: UInt = #line) throws {
            n += 1
            let url = try scratch.write("bad-\(n).safetensors", bytes)
            counter.expect(kind, url, anyOf: fragments, line: line) { try target.resume(from: url) }
            XCTAssertTrue(State(target).same(before), "[\(kind)] the trainer changed", line: line)
        }
        func attempt(_ kind: String, _ edited: SafetensorsFile, _ fragments: [String], line: UInt = #line) throws {
            try attempt(kind, edited.serialized(), fragments, line: line)
        }
        func resigned(_ f: SafetensorsFile) -> SafetensorsFile {
            var unsigned = f
            unsigned.metadata["checksum"] = nil
            var out = unsigned
            let crc = Self.crc32(unsigned.serialized())
            out.metadata["checksum"] = "crc32:" + crc
            return out
        }

        let (header, headerLength, dataBuffer) = try split(valid)
        let dataStart = 8 + headerLength
        let anyParse = ["header length", "header:", "tensor \"", "data offsets"]

        // Truncated: in the length prefix, the header, and the data.
        for length in 0..<8 { try attempt("truncated", Array(valid[0..<length]), ["header length (bytes 0-7)"]) }
        for length in stride(from: 8, to: dataStart, by: max(1, headerLength / 40)) {
            try attempt("truncated", Array(valid[0..<length]), ["header length (bytes 0-7): header length \(headerLength) runs past"])
        }
        for length in stride(from: dataStart, to: valid.count, by: max(1, dataBuffer.count / 40)) + [valid.count - 1] {
            try attempt("truncated", Array(valid[0..<length]), ["end past the data buffer"])
        }
        // Inverted bytes: the length prefix, the header (never valid UTF-8 then), the data (the checksum fails).
        for position in Array(0..<8) + Array(stride(from: 8, to: dataStart, by: max(1, headerLength / 30)))
            + Array(stride(from: dataStart, to: valid.count, by: max(1, dataBuffer.count / 30))) {
            var damaged = valid
            damaged[position] ^= 0xFF
            try attempt("inverted byte", damaged, position < 8 ? anyParse
                        : position < dataStart ? ["header: not valid UTF-8"] : ["metadata \"checksum\": the content does not match"])
        }
        // Edited headers: every tensor's entry.
        let names = file.entries.keys.sorted()
        let other = names.first { file.entries[$0]!.floats.count == file.entries[names[0]]!.floats.count && $0 != names[0] }
        for name in names {
            var entry = header[name] as! [String: Any]
            let offsets = entry["data_offsets"] as! [Int]
            let shape = entry["shape"] as! [Int]
            var edits: [(String, [String: Any]?, [String])] = [
                ("unsupported dtype", ["dtype": "F16"], ["unsupported dtype \"F16\""]),
                ("wrong dtype size", ["dtype": "F64"], ["needs \((offsets[1] - offsets[0]) * 2) bytes"]),
                ("dtype not a string", ["dtype": 3], ["\"dtype\" is not a string"]),
                ("byte count mismatch", ["shape": shape + [2]], ["needs \((offsets[1] - offsets[0]) * 2) bytes"]),
                ("shape overflow", ["shape": [1 << 62, 1 << 62]], ["element count overflows"]),
                ("byte size overflow", ["shape": [1 << 61, 2]], ["byte size overflows"]),
                ("negative dimension", ["shape": [-1]], ["is not a non-negative integer"]),
                ("shape not an array", ["shape": "x"], ["\"shape\" is not an array"]),
                ("offsets out of range", ["data_offsets": [offsets[0], dataBuffer.count + 4]], ["end past the data buffer"]),
                ("offsets reversed", ["data_offsets": [offsets[1], offsets[0]]], ["begin after end"]),
                ("offsets not integers", ["data_offsets": [0.5, 1]], ["are not two non-negative integers"]),
                ("offsets not a pair", ["data_offsets": [0]], ["is not an array of two integers"]),
                ("entry not an object", nil, ["entry is not a JSON object"]),
            ]
            for key in ["dtype", "shape", "data_offsets"] {
                var missing = entry
                missing[key] = nil
                edits.append(("missing \(key)", ["__replace__": missing], ["missing \"\(key)\""]))
            }
            if let other, name == names[0] || name == other {
                let target = (header[name == names[0] ? other : names[0]] as! [String: Any])["data_offsets"] as! [Int]
                edits.append(("overlapping offsets", ["data_offsets": target], ["data offsets:", "overlap"]))
            }
            for (kind, change, fragments) in edits {
                var edited = header
                if let change {
                    if let replacement = change["__replace__"] {
                        edited[name] = replacement
                    } else {
                        for (k, v) in change { entry[k] = v }
                        edited[name] = entry
                        entry = header[name] as! [String: Any]
                    }
                } else {
                    edited[name] = [1, 2]
                }
                try attempt("edited header: \(kind)", try safetensors(header: edited, data: dataBuffer), fragments)
            }
        }
        // Edited headers: the whole header and its length.
        let headerBytes = Array(valid[8..<dataStart])
        try attempt("edited header: not an object", safetensors(headerBytes: Array("[1, 2]".utf8), data: dataBuffer),
                    ["header: not a JSON object"])
        try attempt("edited header: bad JSON", safetensors(headerBytes: Array(headerBytes.dropLast(1 + headerBytes.reversed().firstIndex(of: UInt8(ascii: "}"))!)), data: dataBuffer),
                    ["header: not valid JSON"])
        try attempt("edited header: bad JSON", safetensors(headerBytes: [UInt8(ascii: "{")] + headerBytes, data: dataBuffer),
                    ["header: not valid JSON"])
        var metadataEdit = header
        metadataEdit["__metadata__"] = ["epoch": 2]
        try attempt("edited header: metadata not strings", try safetensors(header: metadataEdit, data: dataBuffer),
                    ["header \"__metadata__\": value for key \"epoch\" is not a string"])
        for length: UInt64 in [0, 1, UInt64(headerLength - 1), UInt64(valid.count), 1 << 40, UInt64.max] {
            try attempt("edited header length", safetensors(headerBytes: headerBytes, data: dataBuffer, length: length),
                        ["header length (bytes 0-7)", "header: ", "metadata \"checksum\""])
        }
        // Missing, extra and wrongly shaped tensors (the lists name them all).
        for name in names {
            var edited = file
            edited.entries[name] = nil
            try attempt("missing tensor", edited, ["tensors: do not fit", "missing: \(name)"])
            let entry = file.entries[name]!
            var reshaped = file
            let count = entry.floats.count
            reshaped.entries[name] = SafetensorsEntry(shape: entry.shape.count == 1 ? [1, count] : [count], values: entry.values)
            try attempt("wrongly shaped tensor", reshaped, ["tensors: do not fit", "shape mismatch for \(name)"])
        }
        for extra in ["model.extra.weight", "optimizer.exp_avg.extra", "optimizer.momentum_buffer.1.weight", "stray"] {
            var edited = file
            edited.entries[extra] = SafetensorsEntry(shape: [2], values: .f32([1, 2]))
            try attempt("unexpected tensor", edited, ["tensors: do not fit", "unexpected: ", extra])
        }
        var integer = file
        integer.entries["model.1.weight"] = SafetensorsEntry(shape: file.entries["model.1.weight"]!.shape,
                                                             values: .i64([Int64](repeating: 1, count: file.entries["model.1.weight"]!.floats.count)))
        try attempt("integer tensor", integer, ["integer (I64) tensors"])
        var listed = file
        listed.metadata["optimizer_state"] = "[\"exp_avg.9.weight\"," + listed.metadata["optimizer_state"]!.dropFirst()
        try attempt("optimizer tensor listed but absent", listed, ["missing: optimizer.exp_avg.9.weight"])
        // Metadata: another model, not a checkpoint, damaged progress or settings.
        let metadataEdits: [(String, String, String?, [String])] = [
            ("another model", "model", "c4cnn", ["metadata \"model\": a checkpoint of the c4cnn model, not of tiny"]),
            ("no model", "model", nil, ["metadata: no \"model\" entry"]),
            ("not a checkpoint", "format", "weights", ["metadata \"format\": is 'weights'"]),
            ("not a checkpoint", "format", nil, ["metadata: no \"format\" entry"]),
            ("bad epoch", "epoch", "two", ["metadata \"epoch\": 'two' is not a whole number"]),
            ("bad epoch", "epoch", "-1", ["metadata \"epoch\""]),
            ("bad epoch", "epoch", "1", ["metadata \"history\": holds epochs [1, 2], expected 1 to 1"]),
            ("bad epoch", "epoch", nil, ["metadata: no \"epoch\" entry"]),
            ("bad step", "optimizer_step", "x", ["metadata \"optimizer_step\": 'x' is not a whole number"]),
            ("bad step", "optimizer_step", "5", ["metadata \"optimizer_step\": 5 optimiser steps in 2 epochs"]),
            ("bad history", "history", "[{\"epoch\": 1}", ["metadata \"history\": not a list of epoch metrics"]),
            ("bad history", "history", "[]", ["metadata \"history\": holds epochs [], expected 1 to 2"]),
            ("bad configuration", "configuration", "{}", ["metadata \"configuration\": not a training configuration"]),
            ("bad configuration", "configuration", "{", ["metadata \"configuration\": not a training configuration"]),
            ("bad optimizer list", "optimizer_state", "exp_avg", ["metadata \"optimizer_state\": not a list of tensor names"]),
            ("bad checksum", "checksum", "crc32:00000000", ["metadata \"checksum\": the content does not match"]),
        ]
        for (kind, key, value, fragments) in metadataEdits {
            var edited = file
            edited.metadata[key] = value
            try attempt("metadata: \(kind)", edited, fragments)
        }
        let configuration = file.metadata["configuration"]!
        for (from, to, fragment) in [("\"seed\":3", "\"seed\":4", "seed 4 in the checkpoint, 3 now"),
                                     ("\"batchSize\":8", "\"batchSize\":6", "batchSize 6 in the checkpoint, 8 now"),
                                     ("\"optimizer\":\"adamw\"", "\"optimizer\":\"sgd\"", "optimizer sgd in the checkpoint, adamw now"),
                                     ("\"shuffle\":true", "\"shuffle\":false", "shuffle false in the checkpoint, true now")] {
            XCTAssertTrue(configuration.contains(from), configuration)
            var edited = file
            edited.metadata["configuration"] = configuration.replacingOccurrences(of: from, with: to)
            try attempt("metadata: other settings", edited, ["metadata \"configuration\": written by a run with different settings",
                                                             fragment])
        }
        // Values that are not finite, in an otherwise intact (checksummed) file.
        for (name, value) in [("model.1.weight", Float.nan), ("model.2.running_var", Float.infinity),
                              ("optimizer.exp_avg_sq.5.bias", -Float.infinity)] {
            var edited = file
            var values = edited.entries[name]!.floats
            values[values.count / 2] = value
            edited.entries[name] = SafetensorsEntry(shape: edited.entries[name]!.shape, values: .f32(values))
            try attempt("non-finite value", resigned(edited), ["tensor \"\(name)\": element \(values.count / 2) is"])
        }
        var wide = file
        let bias = wide.entries["model.5.bias"]!
        wide.entries["model.5.bias"] = SafetensorsEntry(shape: bias.shape, values: .f64(bias.doubles.map { _ in 1e300 }))
        try attempt("non-finite value", resigned(wide), ["beyond the range of Float"])

        // No file, or a directory.
        let absent = scratch.file("absent.safetensors")
        counter.expect("unreadable", absent, anyOf: ["cannot open"], placeRequired: false) { try target.resume(from: absent) }
        counter.expect("unreadable", scratch.url, anyOf: ["is a directory"], placeRequired: false) { try target.resume(from: scratch.url) }
        XCTAssertTrue(State(target).same(before))

        // The intact file still resumes, to exactly the source's state.
        try target.resume(from: Trainer.checkpointURL(in: directory))
        let restored = State(target), expected = State(source)
        XCTAssertEqual(restored.model.mapValues { $0.map(\.bitPattern) }, expected.model.mapValues { $0.map(\.bitPattern) })
        XCTAssertEqual(restored.optimizer.mapValues { $0.map(\.bitPattern) }, expected.optimizer.mapValues { $0.map(\.bitPattern) })
        XCTAssertEqual(restored.step, expected.step)
        XCTAssertEqual(restored.history, expected.history)

        counter.report("checkpoints")
        XCTAssertGreaterThanOrEqual(counter.tried, 200)
    }

    /// CRC-32 as the checkpoint writer computes it (bitwise, so that the test does not share its code).
    static func crc32(_ bytes: [UInt8]) -> String {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        let hex = String(crc ^ 0xFFFF_FFFF, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}
