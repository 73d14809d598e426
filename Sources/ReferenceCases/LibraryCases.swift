import Autograd
import Foundation

// MARK: - The library cases: ops a framework user reaches for first
//
// The ops of ../shared/reference/library (its README lists names and arguments). Every F32 tensor of a case other
// than `output` and `grad.*` is an input and requires a gradient; I64 tensors (`index`, an nll `target`) are
// positions. The output is compared within 1e-5 relative, and each `grad.X` present within 1e-4 of its largest
// magnitude, after back-propagating `grad.output`.

extension ReferenceCase {
    /// The ops `computeLibraryCase` runs.
    static let libraryOps: Set<String> = [
        "tanh", "sigmoid", "gelu", "abs", "leaky_relu", "clamp", "softmax", "logsumexp", "avgpool2d",
        "adaptive_avgpool2d", "layer_norm", "batch_norm", "batch_norm2d", "mse_loss", "bce_with_logits", "nll_loss",
        "reduce", "gather", "index_select",
    ]

    /// Runs a library case and compares its result and gradients; nil when the op is not a library op.
    func computeLibraryCase() throws -> [Comparison]? {
        guard Self.libraryOps.contains(op) else { return nil }
        var inputs: [String: Tensor<Float>] = [:]
        for (name, entry) in file.entries where entry.dtype != .i64 && name != "output" && !name.hasPrefix("grad.") {
            inputs[name] = try tensor(name).requiringGradient()
        }
        func input(_ name: String) throws -> Tensor<Float> {
            guard let t = inputs[name] else { throw CaseError.missing(name) }
            return t
        }
        let x = try input("input")
        var output = try libraryOutput(x, inputs)
        let expected = try tensor("output")
        // Reduced losses are rank 0 here and stored as [1] (or []).
        if output.rank == 0 && expected.count == 1 { output = output.reshaped(expected.shape) }
        guard output.shape == expected.shape else {
            return [Comparison(name: "output shape \(output.shape), expected \(expected.shape)", error: .infinity,
                               tolerance: 0)]
        }
        var comparisons = [Comparison(name: "output", error: Self.relativeError(output, expected), tolerance: 1e-5)]
        if file.entries["grad.output"] != nil {
            guard output.requiresGradient else {
                return comparisons + [Comparison(name: "output does not require a gradient", error: .infinity,
                                                 tolerance: 0)]
            }
            output.backward(seed: try tensor("grad.output"))
            for (name, leaf) in inputs.sorted(by: { $0.key < $1.key }) where file.entries["grad.\(name)"] != nil {
                let grad = leaf.grad ?? Tensor(zeros: leaf.shape)
                comparisons.append(Comparison(name: "grad.\(name)",
                                              error: Self.relativeError(grad, try tensor("grad.\(name)")),
                                              tolerance: 1e-4))
            }
        }
        return comparisons
    }

    // MARK: Arguments

    /// An optional number: nil when absent or JSON null.
    func optionalDouble(_ key: String) throws -> Double? {
        guard let text = file.metadata[key]?.trimmingCharacters(in: .whitespaces), text != "null", text != "None"
        else { return nil }
        return try double(key)
    }

    /// One integer axis argument, or a list of them (`dim`).
    func axes(_ key: String, default value: [Int]? = nil) throws -> [Int] {
        try ints(key, count: 0, default: value)
    }

    func reduction() throws -> LossReduction {
        let text = file.metadata["reduction"].map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")) }
        guard let reduction = LossReduction(rawValue: text ?? "mean") else {
            throw CaseError.badArgument("reduction", text ?? "")
        }
        return reduction
    }

    func text(_ key: String) -> String? {
        file.metadata[key].map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")) }
    }

    func index(_ name: String) throws -> IndexTensor {
        guard let entry = file.entries[name] else { throw CaseError.missing(name) }
        return IndexTensor(shape: entry.shape, indices: try integers(name))
    }

    // MARK: Ops

    private func libraryOutput(_ x: Tensor<Float>, _ inputs: [String: Tensor<Float>]) throws -> Tensor<Float> {
        switch op {
        case "tanh": return x.tanh()
        case "sigmoid": return x.sigmoid()
        case "gelu":
            let approximate = text("approximate") ?? "none"
            guard approximate == "none" || approximate == "tanh" else {
                throw CaseError.badArgument("approximate", approximate)
            }
            return x.gelu(approximate: approximate)
        case "abs": return x.abs()
        case "leaky_relu": return x.leakyRelu(negativeSlope: Float(try double("negative_slope", default: 0.01)))
        case "clamp":
            let low = try optionalDouble("min"), high = try optionalDouble("max")
            guard low != nil || high != nil else { throw CaseError.missing("argument min or max") }
            return x.clamped(min: low, max: high)
        case "softmax": return x.softmax(axis: try ints("dim", count: 1, default: [-1])[0])
        case "logsumexp":
            return x.logSumExp(axes: try axes("dim"), keepingDimensions: flag(["keepdim", "keepdims"]))
        case "avgpool2d":
            let k = try ints("kernel", count: 2), s = try ints("stride", count: 2, default: k)
            let p = try ints("padding", count: 2, default: [0, 0])
            if flag(["ceil_mode"]) { throw CaseError.badArgument("ceil_mode", "true") }
            if let include = file.metadata["count_include_pad"], !flag(["count_include_pad"]) {
                throw CaseError.badArgument("count_include_pad", include)
            }
            return x.avgPool2d(kernel: (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]))
        case "adaptive_avgpool2d":
            let size = try ints("output_size", count: 2)
            return x.adaptiveAvgPool2d(outputSize: (size[0], size[1]))
        case "layer_norm":
            return x.layerNorm(normalizedShape: try axes("normalized_shape"), weight: inputs["weight"],
                               bias: inputs["bias"], epsilon: try double("eps", default: 1e-5))
        case "batch_norm", "batch_norm2d":
            let training = file.metadata["training"] == nil || flag(["training"])
            var running: RunningStatistics<Float>? = nil
            if let mean = inputs["running_mean"], let variance = inputs["running_var"] {
                running = RunningStatistics(mean: mean, variance: variance)
            }
            if !training && running == nil { throw CaseError.missing("running_mean and running_var") }
            return x.batchNorm(running: running, weight: inputs["weight"], bias: inputs["bias"], training: training,
                               momentum: try double("momentum", default: 0.1), epsilon: try double("eps", default: 1e-5))
        case "mse_loss":
            guard let target = inputs["target"] else { throw CaseError.missing("target") }
            return x.mseLoss(target: target, reduction: try reduction())
        case "bce_with_logits":
            guard let target = inputs["target"] else { throw CaseError.missing("target") }
            return x.binaryCrossEntropyWithLogits(target: target, weight: inputs["weight"],
                                                  positiveWeight: inputs["pos_weight"], reduction: try reduction())
        case "nll_loss":
            let ignore = try ints("ignore_index", count: 1, default: [-100])[0]
            return x.nllLoss(targets: try integers("target"), weight: inputs["weight"], ignoreIndex: ignore,
                             reduction: try reduction())
        case "reduce":
            let name = text("reduction") ?? ""
            guard let reduction = EinopsReduction(rawValue: name) else {
                throw CaseError.badArgument("reduction", name)
            }
            return try x.reduced(text("pattern") ?? "", reduction, axesDictionary())
        case "gather":
            return x.gather(axis: try ints("dim", count: 1)[0], index: try index("index"))
        case "index_select":
            return x.indexSelect(axis: try ints("dim", count: 1)[0], indices: try integers("index"))
        default:
            throw CaseError.unknownOp(op)
        }
    }
}
