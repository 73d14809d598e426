import Autograd
import CZlib
import Foundation
import NN

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Parameter files

/// Reading parameter files (state dicts saved here or by PyTorch, exported models, checkpoints) with every fault
/// reported as a `DataError` naming the file, the place in it and the fault.
public enum ParameterFile {
    /// Reads and validates a safetensors file.
    public static func read(_ url: URL) throws -> SafetensorsFile {
        let bytes = try DataFiles.readBytes(url, copies: 2)
        do {
            return try SafetensorsFile(bytes: bytes, source: url.path)
        } catch let error as SafetensorsError {
            throw DataError(error)
        }
    }

    /// The F32/F64 tensors of `file` whose names start with `prefix`, with it removed; throws when one holds a NaN
    /// or an infinity (F64 values too large for `Float` included). I64 tensors (PyTorch's `num_batches_tracked`)
    /// are left out.
    public static func tensors(in file: SafetensorsFile, prefix: String, url: URL) throws -> [String: Tensor<Float>] {
        var result: [String: Tensor<Float>] = [:]
        for name in file.entries.keys.sorted() where name.hasPrefix(prefix) {
            let entry = file.entries[name]!
            guard entry.dtype != .i64 else { continue }
            let values = entry.floats
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                let original = entry.doubles[bad]
                throw DataError(url, "tensor \(quoted(name))",
                                "element \(bad) is \(original.isNaN ? "NaN" : "\(original)")"
                                + (original.isFinite ? ", beyond the range of Float" : "")
                                + " (parameters must be finite)")
            }
            result[String(name.dropFirst(prefix.count))] = Tensor(shape: entry.shape, scalars: values)
        }
        return result
    }

    /// Loads the parameters in `url` into `model`, named `modelName` in messages: a state dict (saved here or by
    /// PyTorch), an exported model, or a checkpoint (its `model.` tensors). Everything is checked before anything
    /// changes; a file that does not fit is refused with the missing, unexpected and wrongly shaped names.
    public static func load(_ url: URL, into model: Module, modelName: String) throws {
        let file = try read(url)
        let prefix = file.entries.keys.contains { $0.hasPrefix("model.") } ? "model." : ""
        let tensors = try tensors(in: file, prefix: prefix, url: url)
        if let misfit = model.misfit(of: tensors, source: url.path) {
            var fault = "the tensors do not fit the \(modelName) model"
            if let other = file.metadata["model"], other != modelName {
                fault = "holds parameters of the \(other) model, not of \(modelName)"
            }
            throw DataError(url, "tensors", ([fault] + prefixed(misfit, prefix).listing).joined(separator: "\n  "))
        }
        try model.load(stateDict: tensors, source: url.path)
    }

    /// `error` with `prefix` put back in front of every name, so that the names are those of the file.
    static func prefixed(_ error: StateDictError, _ prefix: String) -> StateDictError {
        StateDictError(source: error.source, missing: error.missing.map { prefix + $0 },
                       unexpected: error.unexpected.map { prefix + $0 },
                       mismatched: error.mismatched.map { (prefix + $0.name, $0.expected, $0.given) },
                       other: error.other)
    }

    static func quoted(_ name: String) -> String {
        let shown = name.count > 60 ? String(name.prefix(57)) + "..." : name
        return "\"" + shown.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            + "\""
    }

    /// CRC-32 (zlib's) of `bytes`, as 8 hex digits.
    static func crc32Text(_ bytes: [UInt8]) -> String {
        var crc: uLong = CZlib.crc32(0, nil, 0)
        var offset = 0
        bytes.withUnsafeBufferPointer { buffer in
            while offset < buffer.count {
                let length = min(buffer.count - offset, 1 << 30)
                crc = CZlib.crc32(crc, buffer.baseAddress! + offset, uInt(length))
                offset += length
            }
        }
        let hex = String(UInt32(truncatingIfNeeded: crc), radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}

// MARK: - Checkpoints

/// A training checkpoint: model parameters and buffers (`model.<name>`), optimiser state (`optimizer.<key>`), and in
/// the metadata the model name, epoch, optimiser step, configuration (with the seed), history, the names of the
/// optimiser tensors and a checksum of everything else. One safetensors file, written to a temporary file, flushed
/// to disk and renamed over the previous one, so a kill at any moment leaves the last complete checkpoint in place.
///
/// Every random stream of training (the data order, dropout masks) is a function of (seed, epoch), so restoring the
/// epoch restores them: a resumed run continues exactly as an uninterrupted one.
extension Trainer {
    /// The checkpoint file in `directory`.
    public static func checkpointURL(in directory: URL) -> URL {
        directory.appendingPathComponent("last.safetensors")
    }

    /// The schedule and the loss of a trainer made from pieces, as stored in its checkpoints; nil for a trainer made
    /// from a configuration (whose schedule the configuration names, with cross-entropy).
    var piecesText: (schedule: String, loss: String)? {
        schedule.map { ("\($0)", loss.name) }
    }

    /// The metadata key of the checksum: CRC-32 of the file as serialized without this key.
    static let checksumKey = "checksum"

    /// The state-tensor kinds of the optimisers this file knows, or nil for another optimiser.
    private var optimizerStateKinds: [String]? {
        switch optimizer {
        case is AdamW: return ["exp_avg", "exp_avg_sq"]
        case is SGD: return ["momentum_buffer"]
        default: return nil
        }
    }

    /// Writes the checkpoint for the epochs completed so far.
    public func saveCheckpoint() throws {
        guard let checkpointDirectory else { return }
        do {
            try FileManager.default.createDirectory(at: checkpointDirectory, withIntermediateDirectories: true)
        } catch {
            throw DataError(checkpointDirectory, nil, "cannot create the checkpoint directory (\(error.localizedDescription))")
        }
        let url = Self.checkpointURL(in: checkpointDirectory)
        Self.removeStaleTemporaryFiles(of: url)

        var file = SafetensorsFile()
        for (name, tensor) in model.stateDict() {
            file.entries["model.\(name)"] = SafetensorsEntry(shape: tensor.shape, values: .f32(tensor.scalars))
        }
        let optimizerState = optimizer.stateTensors()
        for (key, tensor) in optimizerState {
            file.entries["optimizer.\(key)"] = SafetensorsEntry(shape: tensor.shape, values: .f32(tensor.scalars))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        file.metadata = [
            "format": "checkpoint",
            "model": modelName,
            "epoch": "\(completedEpochs)",
            "optimizer_step": "\(optimizer.stepCount)",
            "optimizer_state": String(decoding: try encoder.encode(optimizerState.keys.sorted()), as: UTF8.self),
            "configuration": String(decoding: try encoder.encode(configuration), as: UTF8.self),
            "history": String(decoding: try encoder.encode(history), as: UTF8.self),
        ]
        if let piecesText {
            // A trainer made from pieces: its schedule and loss, which the configuration does not name exactly.
            file.metadata["schedule"] = piecesText.schedule
            file.metadata["loss"] = piecesText.loss
        }
        file.metadata[Self.checksumKey] = "crc32:" + ParameterFile.crc32Text(file.serialized())
        do {
            try file.write(to: url)
        } catch let error as SafetensorsError {
            throw DataError(error)
        }
    }

    /// Removes temporary files left beside `url` by writers that were killed (their process no longer exists).
    static func removeStaleTemporaryFiles(of url: URL) {
        let directory = url.deletingLastPathComponent()
        let prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            let pidText = name.dropFirst(prefix.count).prefix { $0 != "-" }
            guard let pid = Int32(pidText), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                _ = unlink(directory.appendingPathComponent(name).path)
            }
        }
    }

    /// Restores model, optimiser and history from the checkpoint at `url`.
    ///
    /// Everything is checked before anything changes: the file's structure, that it is a checkpoint of this model
    /// written with the same configuration (only the number of epochs may differ) and the same number of batches
    /// per epoch, that its tensors fit the model and the optimiser exactly, its checksum, and that every value is
    /// finite. On any fault a `DataError` names the file, the place and the fault (misfits list every missing,
    /// unexpected and wrongly shaped tensor) and the model, the optimiser and the history are left unchanged.
    public func resume(from url: URL) throws {
        let file = try ParameterFile.read(url)
        let metadata = file.metadata
        func fault(_ place: String, _ text: String) -> DataError { DataError(url, place, text) }
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else {
                throw fault("metadata", "no \"\(key)\" entry (not a complete training checkpoint)")
            }
            return value
        }

        // What the file is.
        guard let format = metadata["format"] else {
            throw fault("metadata", "no \"format\" entry: not a training checkpoint (a plain state dict can "
                        + "initialise a run with --init instead)")
        }
        guard format == "checkpoint" else {
            throw fault("metadata \"format\"", "is '\(format)', not 'checkpoint'")
        }
        let savedModel = try field("model")
        guard savedModel == modelName else {
            throw fault("metadata \"model\"", "a checkpoint of the \(savedModel) model, not of \(modelName)")
        }

        // Progress and settings.
        let epochText = try field("epoch")
        guard let epoch = Int(epochText), epoch >= 0 else {
            throw fault("metadata \"epoch\"", "'\(epochText)' is not a whole number >= 0")
        }
        let stepText = try field("optimizer_step")
        guard let step = Int(stepText), step >= 0 else {
            throw fault("metadata \"optimizer_step\"", "'\(stepText)' is not a whole number >= 0")
        }
        let restored: [EpochMetrics]
        do {
            restored = try JSONDecoder().decode([EpochMetrics].self, from: Data(try field("history").utf8))
        } catch let error as DataError {
            throw error
        } catch {
            throw fault("metadata \"history\"", "not a list of epoch metrics (\(Self.reason(error)))")
        }
        guard restored.count == epoch, restored.map(\.epoch) == Array(stride(from: 1, through: epoch, by: 1)) else {
            throw fault("metadata \"history\"", "holds epochs \(restored.map(\.epoch)), expected 1 to \(epoch)")
        }
        let saved: TrainingConfiguration
        do {
            saved = try JSONDecoder().decode(TrainingConfiguration.self, from: Data(try field("configuration").utf8))
        } catch let error as DataError {
            throw error
        } catch {
            throw fault("metadata \"configuration\"", "not a training configuration (\(Self.reason(error)))")
        }
        let differences = Self.differences(saved, configuration)
        guard differences.isEmpty else {
            throw fault("metadata \"configuration\"", "written by a run with different settings ("
                        + differences.joined(separator: "; ") + "); resume with the same settings (only the "
                        + "number of epochs may change)")
        }
        for (key, current) in [("schedule", piecesText?.schedule), ("loss", piecesText?.loss)]
        where metadata[key] != current {
            throw fault("metadata \"\(key)\"", "written with \(metadata[key].map { "\(key) \($0)" } ?? "the configuration's \(key)"), "
                        + "this run has \(current.map { "\(key) \($0)" } ?? "the configuration's \(key)"); resume with the same \(key)")
        }
        let (expectedSteps, overflow) = epoch.multipliedReportingOverflow(by: trainLoader.batchCount)
        guard !overflow, step == expectedSteps else {
            throw fault("metadata \"optimizer_step\"", "\(step) optimiser steps in \(epoch) epochs, but this training "
                        + "set gives \(trainLoader.batchCount) batches per epoch (a different data set?)")
        }

        // Tensors: every name and shape, for the model and for the optimiser.
        let strays = file.entries.keys.filter { !$0.hasPrefix("model.") && !$0.hasPrefix("optimizer.") }.sorted()
        let integers = file.entries.filter { $0.value.dtype == .i64 }.map(\.key).sorted()
        var misfit = ParameterFile.prefixed(
            model.misfit(of: Module.tensors(in: file, prefix: "model."), source: url.path)
                ?? StateDictError(source: url.path), "model.")
        misfit.unexpected = (misfit.unexpected + strays).sorted()
        if let optimizerMisfit = try optimizerMisfit(file, url: url) {
            misfit.missing += optimizerMisfit.missing
            misfit.unexpected += optimizerMisfit.unexpected
            misfit.mismatched += optimizerMisfit.mismatched
        }
        if !integers.isEmpty { misfit.other = "integer (I64) tensors, which a checkpoint never holds: "
                                              + StateDictError.summary(integers) }
        if !misfit.missing.isEmpty || !misfit.unexpected.isEmpty || !misfit.mismatched.isEmpty || misfit.other != nil {
            throw fault("tensors", (["do not fit the \(modelName) model and its \(configuration.optimizer.rawValue) "
                                     + "optimiser"] + misfit.listing).joined(separator: "\n  "))
        }

        // Integrity.
        if let stored = metadata[Self.checksumKey] {
            var unsigned = file
            unsigned.metadata[Self.checksumKey] = nil
            let computed = "crc32:" + ParameterFile.crc32Text(unsigned.serialized())
            guard stored == computed else {
                throw fault("metadata \"checksum\"", "the content does not match the checksum (stored \(stored), "
                            + "computed \(computed)): the file is damaged")
            }
        }
        let parameters = try ParameterFile.tensors(in: file, prefix: "model.", url: url)
        let optimizerState = try ParameterFile.tensors(in: file, prefix: "optimizer.", url: url)

        // Everything fits: change the optimiser (it replaces its state only on success), then the model.
        let previousState = optimizer.stateTensors(), previousStep = optimizer.stepCount
        do {
            try optimizer.loadState(optimizerState, stepCount: step)
        } catch {
            throw fault("optimizer tensors", "\(error)")
        }
        do {
            try model.load(stateDict: parameters, source: url.path)
        } catch {
            try? optimizer.loadState(previousState, stepCount: previousStep)
            throw fault("model tensors", "\(error)")
        }
        history = restored
        metricsNeedRewrite = true
    }

    /// The optimiser tensors of `file` that do not fit this trainer's optimiser (names as in the file), or nil when
    /// all fit. A checkpoint lists the optimiser tensors it holds in its metadata, so missing ones are found too.
    private func optimizerMisfit(_ file: SafetensorsFile, url: URL) throws -> StateDictError? {
        guard let kinds = optimizerStateKinds else { return nil }
        let prefix = "optimizer."
        let present = Set(file.entries.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) })
        var shapes: [String: [Int]] = [:]
        for kind in kinds {
            for (name, parameter) in optimizer.parameters { shapes["\(kind).\(name)"] = parameter.shape }
        }
        var listed: Set<String>? = nil
        if let text = file.metadata["optimizer_state"] {
            guard let names = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
                throw DataError(url, "metadata \"optimizer_state\"", "not a list of tensor names")
            }
            listed = Set(names)
        }
        var error = StateDictError(source: url.path)
        error.missing = (listed ?? []).subtracting(present).sorted().map { prefix + $0 }
        error.unexpected = present.filter { shapes[$0] == nil || listed.map { !$0.contains($0) } ?? false }
            .sorted().map { prefix + $0 }
        for key in present.sorted() {
            guard let expected = shapes[key], let entry = file.entries[prefix + key] else { continue }
            if entry.shape != expected { error.mismatched.append((prefix + key, expected, entry.shape)) }
        }
        return error.missing.isEmpty && error.unexpected.isEmpty && error.mismatched.isEmpty ? nil : error
    }

    /// The settings in which two configurations differ, the number of epochs aside ("batchSize 32 in the
    /// checkpoint, 64 now").
    static func differences(_ saved: TrainingConfiguration, _ current: TrainingConfiguration) -> [String] {
        let a = Mirror(reflecting: saved).children, b = Mirror(reflecting: current).children
        return zip(a, b).compactMap { x, y in
            guard let label = x.label, label != "epochs" else { return nil }
            let old = "\(x.value)", new = "\(y.value)"
            return old == new ? nil : "\(label) \(old) in the checkpoint, \(new) now"
        }
    }

    private static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context), DecodingError.keyNotFound(_, let context),
             DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }
}
