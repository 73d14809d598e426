import Autograd
import Foundation
import Models
import NN
import Train

/// One case computed by PyTorch: a safetensors file whose metadata names the op (`op`) and its JSON-encoded
/// arguments, with inputs, `output`, an upstream gradient `grad.output` and the input gradients `grad.X`.
///
/// `run()` recomputes it with the framework and reports the worst relative error of each compared tensor.
public struct ReferenceCase {
    public let name: String
    public let file: SafetensorsFile

    public init(url: URL) throws {
        name = url.deletingPathExtension().lastPathComponent
        file = try SafetensorsFile(contentsOf: url)
    }

    public var op: String { file.metadata["op"] ?? "?" }

    /// What a run found.
    public struct Outcome {
        public var passed: Bool
        /// Worst relative error over all compared tensors, measured against its tolerance's scale.
        public var worstError: Double
        /// One line per compared tensor that failed, or the reason the case could not run.
        public var notes: [String]
    }

    /// Relative error (max |a - b| / max |b|) and the tolerance of each compared tensor.
    struct Comparison {
        var name: String
        var error: Double
        var tolerance: Double
    }

    enum CaseError: Error, CustomStringConvertible {
        case missing(String)
        case badArgument(String, String)
        case unknownOp(String)
        var description: String {
            switch self {
            case .missing(let t): return "the case has no tensor '\(t)'"
            case .badArgument(let a, let v): return "cannot read argument \(a) = \(v)"
            case .unknownOp(let op): return "unknown op '\(op)': not implemented by reference-check"
            }
        }
    }

    /// Forward results within 1e-5 relative (1e-4 for models); gradients within 1e-4 of their largest magnitude.
    public func run() -> Outcome {
        do {
            let comparisons = try compute()
            let failed = comparisons.filter { !($0.error <= $0.tolerance) }
            let worst = comparisons.map(\.error).max() ?? 0
            return Outcome(passed: failed.isEmpty && !comparisons.isEmpty, worstError: worst,
                           notes: comparisons.isEmpty ? ["nothing to compare"]
                               : failed.map { "\($0.name): relative error \($0.error) > \($0.tolerance)" })
        } catch {
            return Outcome(passed: false, worstError: .infinity, notes: ["\(error)"])
        }
    }

    // MARK: - Reading

    func tensor(_ name: String) throws -> Tensor<Float> {
        guard let entry = file.entries[name] else { throw CaseError.missing(name) }
        return Tensor(shape: entry.shape, scalars: entry.floats)
    }

    /// The tensor `name` as integers; every value must be a whole number (a NaN or 1e30 is refused, not converted).
    func integers(_ name: String) throws -> [Int] {
        guard let entry = file.entries[name] else { throw CaseError.missing(name) }
        let values = entry.doubles
        if let bad = values.firstIndex(where: { !($0.rounded() == $0 && abs($0) < 0x1p53) }) {
            throw InvalidCase(reason: "\(name) element \(bad) is \(values[bad]), not an integer")
        }
        return values.map { Int($0) }
    }

    /// An argument that is an integer or a list of integers, as a list of `count` (a single integer is repeated);
    /// `count` 0 takes a list of any length.
    func ints(_ key: String, count: Int, default value: [Int]? = nil) throws -> [Int] {
        guard let text = file.metadata[key] else {
            if let value { return value }
            throw CaseError.missing("argument \(key)")
        }
        let json = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        if let n = json as? Int { return Array(repeating: n, count: max(count, 1)) }
        if let list = json as? [Int], list.count == count || count == 0 { return list }
        if let list = json as? [Int], list.count == 1 { return Array(repeating: list[0], count: count) }
        throw CaseError.badArgument(key, text)
    }

    func double(_ key: String, default value: Double? = nil) throws -> Double {
        guard let text = file.metadata[key] else {
            if let value { return value }
            throw CaseError.missing("argument \(key)")
        }
        guard let v = Double(text.trimmingCharacters(in: .whitespaces)) else { throw CaseError.badArgument(key, text) }
        return v
    }

    func flag(_ keys: [String]) -> Bool {
        for key in keys { if let v = file.metadata[key]?.lowercased() { return v == "true" || v == "1" } }
        return false
    }

    func axesDictionary() throws -> [String: Int] {
        guard let text = file.metadata["axes"], !text.isEmpty else { return [:] }
        guard let dict = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Int] else {
            throw CaseError.badArgument("axes", text)
        }
        return dict
    }

    static func relativeError(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Double {
        guard a.shape == b.shape else { return .infinity }
        var worst = 0.0, scale = 0.0
        for (x, y) in zip(a.scalars, b.scalars) {
            let d = abs(Double(x) - Double(y))
            worst = max(worst, d.isNaN ? .infinity : d)
            scale = max(scale, abs(Double(y)))
        }
        return scale == 0 ? worst : worst / scale
    }

    // MARK: - Ops

    /// Runs the op on the case's inputs and compares result and gradients.
    func compute() throws -> [Comparison] {
        try validate()
        if let library = try computeLibraryCase() { return library }  // LibraryCases.swift
        switch op {
        case "adamw": return try computeAdamW()
        case "model": return try computeModel()
        default: break
        }
        let inputNames = ["input", "a", "b", "weight", "bias"].filter { file.entries[$0] != nil }
        var inputs: [String: Tensor<Float>] = [:]
        for name in inputNames { inputs[name] = try tensor(name).requiringGradient() }
        func input(_ name: String) throws -> Tensor<Float> {
            guard let t = inputs[name] else { throw CaseError.missing(name) }
            return t
        }
        let output: Tensor<Float>
        switch op {
        case "conv2d":
            let s = try ints("stride", count: 2, default: [1, 1]), p = try ints("padding", count: 2, default: [0, 0])
            let d = try ints("dilation", count: 2, default: [1, 1])
            output = try input("input").conv2d(weight: input("weight"), bias: inputs["bias"], stride: (s[0], s[1]),
                                               padding: (p[0], p[1]), dilation: (d[0], d[1]))
        case "rot90":
            let k = try ints("k", count: 1)[0]
            let dims = try ints("dims", count: 2, default: [-2, -1])
            output = try input("input").rotated90(k, axes: (dims[0], dims[1]))
        case "rotate_p4":
            output = try PlanarGroup.c4.act(((ints("k", count: 1)[0] % 4) + 4) % 4, onFeatureMap: input("input"))
        case "rearrange":
            output = try input("input").rearranged(file.metadata["pattern"] ?? "", axesDictionary())
        case "repeat":
            output = try input("input").repeated(file.metadata["pattern"] ?? "", axesDictionary())
        case "maxpool2d":
            let k = try ints("kernel", count: 2), s = try ints("stride", count: 2, default: k)
            let p = try ints("padding", count: 2, default: [0, 0])
            output = try input("input").maxPool2d(kernel: (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]))
        case "maxpool3d":
            let k = try ints("kernel", count: 3), s = try ints("stride", count: 3, default: k)
            let p = try ints("padding", count: 3, default: [0, 0, 0])
            output = try input("input").maxPool3d(kernel: (k[0], k[1], k[2]), stride: (s[0], s[1], s[2]),
                                                  padding: (p[0], p[1], p[2]))
        case "cross_entropy":
            let reduction = file.metadata["reduction"] ?? "mean"
            guard reduction == "mean" else { throw CaseError.badArgument("reduction", reduction) }
            output = try input("input").crossEntropy(targets: integers("target")).reshaped([1])
        case "linear":
            output = try Tensor.linear(input("input"), weight: input("weight"), bias: inputs["bias"])
        case "relu":
            output = try input("input").relu()
        case "matmul":
            output = try input("a").matmul(input("b"))
        case "log_softmax":
            output = try input("input").logSoftmax(axis: ints("dim", count: 1, default: [-1])[0])
        case "mean":
            let dims = try ints("dim", count: 0)
            output = try input("input").mean(axes: dims, keepingDimensions: flag(["keepdim", "keepdims"]))
        case "sum":
            let dims = try ints("dim", count: 0)
            output = try input("input").sum(axes: dims, keepingDimensions: flag(["keepdim", "keepdims"]))
        case "concat", "cat":
            let names = ["a", "b", "c", "d"].filter { inputs[$0] != nil }
            output = try Tensor.concatenated(names.map { try input($0) }, axis: ints("dim", count: 1)[0])
        default:
            throw CaseError.unknownOp(op)
        }
        var comparisons = [Comparison(name: "output", error: Self.relativeError(output, try tensor("output")),
                                      tolerance: 1e-5)]
        guard output.shape == (try tensor("output")).shape else {
            return [Comparison(name: "output shape \(output.shape)", error: .infinity, tolerance: 0)]
        }
        if file.entries["grad.output"] != nil {
            output.backward(seed: try tensor("grad.output"))
            for name in inputNames where file.entries["grad.\(name)"] != nil {
                let grad = inputs[name]!.grad ?? Tensor(zeros: inputs[name]!.shape)
                comparisons.append(Comparison(name: "grad.\(name)",
                                              error: Self.relativeError(grad, try tensor("grad.\(name)")),
                                              tolerance: 1e-4))
            }
        }
        return comparisons
    }

    func computeAdamW() throws -> [Comparison] {
        let parameter = Parameter(try tensor("param"))
        let optimizer = AdamW(parameters: [("param", parameter)], learningRate: try double("lr"),
                              beta1: try double("beta1", default: 0.9), beta2: try double("beta2", default: 0.999),
                              epsilon: try double("eps", default: 1e-8),
                              weightDecay: try double("weight_decay", default: 1e-2))
        var comparisons: [Comparison] = []
        var step = 0
        while file.entries["grad.step\(step)"] != nil {
            parameter.zeroGradient()
            let grad = try tensor("grad.step\(step)")
            // Feed the given gradient through the tape: d sum(p * g) / dp = g.
            (parameter.value * grad).sum().backward()
            optimizer.step()
            comparisons.append(Comparison(name: "param.step\(step)",
                                          error: Self.relativeError(parameter.value, try tensor("param.step\(step)")),
                                          tolerance: 1e-5))
            step += 1
        }
        return comparisons
    }

    func computeModel() throws -> [Comparison] {
        guard let kind = ModelName(rawValue: file.metadata["model"] ?? "") else {
            throw CaseError.badArgument("model", file.metadata["model"] ?? "")
        }
        let model = kind.make()
        try model.load(stateDict: Module.tensors(in: file, prefix: "param."), source: name)
        let input = try tensor("input")
        let targets = try integers("target")
        let logits = try model(input)
        let loss = logits.crossEntropy(targets: targets)
        var comparisons = [
            Comparison(name: "logits", error: Self.relativeError(logits, try tensor("logits")), tolerance: 1e-4),
            Comparison(name: "loss", error: Self.relativeError(loss.reshaped([1]), try tensor("loss")),
                       tolerance: 1e-4),
        ]
        model.zeroGradients()
        loss.backward()
        for (pname, parameter) in model.namedParameters where file.entries["grad.\(pname)"] != nil {
            let grad = parameter.grad ?? Tensor(zeros: parameter.shape)
            comparisons.append(Comparison(name: "grad.\(pname)",
                                          error: Self.relativeError(grad, try tensor("grad.\(pname)")),
                                          tolerance: 1e-4))
        }
        if file.entries.keys.contains(where: { $0.hasPrefix("step1.") }) {
            let optimizer = AdamW(parameters: model.namedParameters, learningRate: try double("lr"),
                                  weightDecay: try double("weight_decay"))
            optimizer.step()
            for (pname, parameter) in model.namedParameters where file.entries["step1.\(pname)"] != nil {
                comparisons.append(Comparison(name: "step1.\(pname)",
                                              error: Self.relativeError(parameter.value,
                                                                        try tensor("step1.\(pname)")),
                                              tolerance: 1e-4))
            }
        }
        // PyTorch computed these after the AdamW step, with the updated parameters.
        if file.entries["logits.rot90"] != nil {
            let rotated = try withoutGradients { try model(input.rotated90(1, axes: (-2, -1))) }
            comparisons.append(Comparison(name: "logits.rot90",
                                          error: Self.relativeError(rotated, try tensor("logits.rot90")),
                                          tolerance: 1e-4))
        }
        return comparisons
    }
}

/// Finds the cases (`*.safetensors`) directly in a directory, sorted by name.
public func referenceCaseURLs(in directory: URL) throws -> [URL] {
    try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        .filter { $0.pathExtension == "safetensors" }
        .sorted { $0.lastPathComponent < $1.lastPathComponent }
}
