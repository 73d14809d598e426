import Autograd
import Foundation
import NN

/// A training checkpoint: model parameters and buffers (`model.<name>`), optimiser state (`optimizer.<key>`), and in
/// the metadata the model name, epoch, optimiser step, configuration (with the seed) and history. One safetensors
/// file, written atomically, so a kill at any moment leaves the previous complete checkpoint in place.
///
/// Every random stream of training (the data order, dropout masks) is a function of (seed, epoch), so restoring the
/// epoch restores them: a resumed run continues exactly as an uninterrupted one.
extension Trainer {
    /// The checkpoint file in `directory`.
    public static func checkpointURL(in directory: URL) -> URL {
        directory.appendingPathComponent("last.safetensors")
    }

    /// Writes the checkpoint for the epochs completed so far.
    public func saveCheckpoint() throws {
        guard let checkpointDirectory else { return }
        try FileManager.default.createDirectory(at: checkpointDirectory, withIntermediateDirectories: true)
        var file = SafetensorsFile()
        for (name, tensor) in model.stateDict() {
            file.entries["model.\(name)"] = SafetensorsEntry(shape: tensor.shape, values: .f32(tensor.scalars))
        }
        for (key, tensor) in optimizer.stateTensors() {
            file.entries["optimizer.\(key)"] = SafetensorsEntry(shape: tensor.shape, values: .f32(tensor.scalars))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        file.metadata = [
            "format": "checkpoint",
            "model": modelName,
            "epoch": "\(completedEpochs)",
            "optimizer_step": "\(optimizer.stepCount)",
            "configuration": String(decoding: try encoder.encode(configuration), as: UTF8.self),
            "history": String(decoding: try encoder.encode(history), as: UTF8.self),
        ]
        try file.write(to: Self.checkpointURL(in: checkpointDirectory))
    }

    /// Restores model, optimiser and history from `url`. Throws, leaving everything unchanged, when
    /// the file is not a checkpoint of this model or its tensors do not fit.
    public func resume(from url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        let name = url.lastPathComponent
        guard file.metadata["format"] == "checkpoint" else {
            throw TrainingError.checkpoint("\(name): not a training checkpoint (no format=checkpoint metadata)")
        }
        guard file.metadata["model"] == modelName else {
            throw TrainingError.checkpoint(
                "\(name): a checkpoint of model '\(file.metadata["model"] ?? "?")', not '\(modelName)'")
        }
        guard let epochText = file.metadata["epoch"], let epoch = Int(epochText), epoch >= 0,
              let stepText = file.metadata["optimizer_step"], let step = Int(stepText), step >= 0,
              let historyText = file.metadata["history"],
              let history = try? JSONDecoder().decode([EpochMetrics].self, from: Data(historyText.utf8)),
              history.count == epoch
        else {
            throw TrainingError.checkpoint("\(name): damaged checkpoint metadata (epoch, optimizer_step, history)")
        }
        // Check everything before changing anything.
        let parameters = Module.tensors(in: file, prefix: "model.")
        let optimizerState = Module.tensors(in: file, prefix: "optimizer.")
        let snapshot = model.stateDict()
        try model.load(stateDict: parameters, source: name)
        do {
            try optimizer.loadState(optimizerState, stepCount: step)
        } catch {
            try? model.load(stateDict: snapshot, source: "snapshot")
            throw error
        }
        self.history = history
    }
}
