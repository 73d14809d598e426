import Autograd
import Foundation
import Models
import NN
import Train

// Evaluation of saved parameters in whichever file form they come, and export to plain convolutions.

// MARK: - Loading for evaluation

/// The model held by `path`, ready for evaluation. The file may be
/// - an exported plain model (metadata format=exported): rebuilt from its own architecture;
/// - a training checkpoint (metadata format=checkpoint, tensors named `model.<name>`);
/// - a state dict, ours or PyTorch's (tensors named as the model's parameters).
/// For a checkpoint or a state dict, the model is the file's `model` metadata when present (else `model`), and its
/// layout is the strong recipe's when the file holds batch-norm statistics (else `preset`'s).
/// Returns the model and its name (the file's `model` metadata, else `model`).
func loadModelForEvaluation(path: String, model: String, preset: String) throws -> (model: Module, name: String) {
    let url = URL(fileURLWithPath: path)
    let file = try ParameterFile.read(url)
    let name = url.lastPathComponent
    if ExportedModel.isExported(file) {
        let exported = try ExportedModel.load(file, source: url.path)
        let origin = [file.metadata["model"], file.metadata["preset"].map { "\($0) preset" }].compactMap { $0 }
        let described = origin.isEmpty ? "" : " (\(origin.joined(separator: ", ")))"
        print("weights: \(name), an exported plain model\(described) of \(exported.layers.count) layers")
        return (exported, file.metadata["model"] ?? model)
    }
    let isCheckpoint = file.metadata["format"] == "checkpoint" || file.entries.keys.contains { $0.hasPrefix("model.") }
    var kind = ModelName(rawValue: model) ?? .c4cnn
    if let stored = file.metadata["model"].flatMap(ModelName.init(rawValue:)), stored != kind {
        print("note: \(name) holds a \(stored.rawValue), not a \(kind.rawValue); evaluating the \(stored.rawValue)")
        kind = stored
    }
    let hasBatchNorm = file.entries.keys.contains { $0.hasSuffix("running_mean") }
    let layout = hasBatchNorm || preset == "strong" ? "strong" : "original"
    if hasBatchNorm && preset != "strong" {
        print("note: \(name) holds batch-norm statistics; using the strong recipe's model")
    }
    let instance = kind.make(preset: layout)
    try ParameterFile.load(url, into: instance, modelName: kind.rawValue)
    print("weights: \(name), a \(isCheckpoint ? "checkpoint" : "state dict") of the \(kind.rawValue) "
          + "(\(layout) layout)")
    return (instance, kind.rawValue)
}

// MARK: - --export FILE

/// The `--export FILE` option: the trained model, or the one given by `--weights`, is written as a plain model of
/// Conv2d layers (safetensors with format=exported). It is taken out of the arguments before the others are parsed.
enum ExportOption {
    static let usage = """
      --export FILE               also write the model as plain Conv2d/MaxPool2d/Linear layers (batch norm folded in,
                                  safetensors, format=exported): after training, or from --weights without training
                                  (the test set is then evaluated with both, and their speed compared)
    """

    /// The FILE of `--export FILE`, if given.
    private(set) static var path: String?

    /// `arguments` without `--export FILE` (recorded in `path`). `--weights` with `--export` and without
    /// `--eval-only` means exporting those weights, so `--eval-only` is implied.
    static func strip(_ arguments: [String]) throws -> [String] {
        var rest: [String] = []
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            guard argument == "--export" else { rest.append(argument); continue }
            guard let value = iterator.next(), !value.hasPrefix("--") else {
                throw UsageError(description: "--export needs a value")
            }
            path = value
        }
        if path != nil, rest.contains("--weights"), !rest.contains("--eval-only") { rest.append("--eval-only") }
        return rest
    }

    /// The export file for `model` when several models are trained in one run: the model's name before the extension.
    static func url(for model: String, several: Bool) -> URL? {
        guard let path else { return nil }
        let url = URL(fileURLWithPath: path)
        guard several else { return url }
        let ext = url.pathExtension.isEmpty ? "safetensors" : url.pathExtension
        return url.deletingPathExtension().appendingPathExtension(model).appendingPathExtension(ext)
    }
}

/// The kind of an experiment model.
func modelName(of model: Module) -> ModelName? {
    switch model {
    case is C4CNN: return .c4cnn
    case is D4CNN: return .d4cnn
    case is C8CNN: return .c8cnn
    case is C16CNN: return .c16cnn
    case is D8CNN: return .d8cnn
    case is CNN: return .cnn
    default: return nil
    }
}

/// "strong" for a model with batch norm, else "original".
func layoutPreset(of model: Module) -> String {
    model.namedBuffers.isEmpty ? "original" : "strong"
}

/// After training: writes the export when `--export` was given.
func exportAfterTraining(_ model: Module, name: String, several: Bool) throws {
    guard let url = ExportOption.url(for: name, several: several), let kind = modelName(of: model) else { return }
    let exported = try kind.saveExport(of: model, preset: layoutPreset(of: model), to: url)
    print("exported: \(url.path) (\(exported.layers.count) plain layers)")
}

/// With `--eval-only`: when `--export` was given, writes the export of `model`, then runs the test set through both
/// models, checks that they agree and compares their speed (fastest of three passes each, batches of 256).
func exportForEvaluation(_ model: Module, test: ImageDataset) throws {
    guard let url = ExportOption.url(for: "", several: false) else { return }
    guard let kind = modelName(of: model) else {
        throw UsageError(description: "--export: the weights are already an exported model")
    }
    let exported = try kind.saveExport(of: model, preset: layoutPreset(of: model), to: url)
    print("exported: \(url.path) (\(exported.layers.count) plain layers)")

    model.eval()
    let loader = DataLoader(test, batchSize: 256)
    let order = loader.order(epoch: 0)
    let batches = (0..<loader.batchCount).map { loader.batch($0, order: order) }
    // Warm-up (builds the group model's cached filters), then three timed passes over the test set for each model,
    // taking turns so that both see the same machine load; the fastest pass counts, in wall-clock time and in
    // processor time of this process (less sensitive to other programs on the machine).
    struct Pass { var logits: [Tensor<Float>]; var seconds: Double; var processorSeconds: Double }
    func pass(_ m: Module) throws -> Pass {
        try withoutGradients {
            let (start, processorStart) = (Date(), processorTime())
            let logits = try batches.map { try m($0.images) }
            return Pass(logits: logits, seconds: Date().timeIntervalSince(start),
                        processorSeconds: processorTime() - processorStart)
        }
    }
    _ = try withoutGradients { (try model(batches[0].images), try exported(batches[0].images)) }
    var original = try pass(model), plain = try pass(exported)
    for _ in 1..<3 {
        let a = try pass(model), b = try pass(exported)
        original.seconds = min(original.seconds, a.seconds)
        original.processorSeconds = min(original.processorSeconds, a.processorSeconds)
        plain.seconds = min(plain.seconds, b.seconds)
        plain.processorSeconds = min(plain.processorSeconds, b.processorSeconds)
    }
    var worst = 0.0, sameAnswers = 0, correct = (original: 0, plain: 0)
    for (index, batch) in batches.enumerated() {
        worst = max(worst, EquivarianceCheck.relativeError(plain.logits[index], original.logits[index]))
        let a = argmax(original.logits[index]), b = argmax(plain.logits[index])
        sameAnswers += zip(a, b).filter { $0 == $1 }.count
        correct.original += zip(a, batch.labels).filter { $0 == $1 }.count
        correct.plain += zip(b, batch.labels).filter { $0 == $1 }.count
    }
    let count = Double(test.count)
    print(String(format: "model:    accuracy %.2f%%, %.1f images/s (%.2f s; %.2f s of processor time)",
                 100 * Double(correct.original) / count, count / original.seconds, original.seconds,
                 original.processorSeconds))
    print(String(format: "exported: accuracy %.2f%%, %.1f images/s (%.2f s; %.2f s of processor time)",
                 100 * Double(correct.plain) / count, count / plain.seconds, plain.seconds, plain.processorSeconds))
    print(String(format: "exported vs model: %.2fx the speed (%.2fx in processor time); logits within %.1e "
                 + "(relative); same prediction for %d of %d images", original.seconds / plain.seconds,
                 original.processorSeconds / plain.processorSeconds, worst, sameAnswers, test.count))
}

/// User plus system processor time of this process so far, in seconds.
private func processorTime() -> Double {
    Double(clock()) / Double(CLOCKS_PER_SEC)
}

/// The index of the largest logit of each row of (N, C).
private func argmax(_ logits: Tensor<Float>) -> [Int] {
    let classes = logits.shape[1]
    return (0..<logits.shape[0]).map { row in
        let slice = logits.scalars[(row * classes)..<((row + 1) * classes)]
        return slice.indices.max { slice[$0] < slice[$1] }! - row * classes
    }
}
