import Autograd
import Foundation
import Models
import NN

// MARK: - Random model cases
//
// A model case is one model of the experiment (C4CNN or CNN) with the parameters it initialises from a seed, a batch
// of random images and random labels. Its gradients are computed twice: by the model itself in `Float` (the path
// training takes, with the group convolutions on Winograd) and by a `Double` copy of the same network built from the
// framework's generic ops on the im2col path (`DoubleModelMirror`), the float64 truth. `GradientErrors` measures the
// first against the second as the reference cases do: max |g - g_ref| / max |g_ref| per parameter tensor.

/// One random case of a model of the experiment: parameters as the model initialises them from `seed`, `batch`
/// images (batch, 1, 33, 33) uniform in [0, 1) and labels uniform in 0..<10, both drawn from a generator seeded by
/// `seed` as well (a different stream from the parameters').
public struct ModelGradientCase {
    /// The model: `.c4cnn` or `.cnn`.
    public let model: ModelName
    /// Seeds the model's parameters and the case's images and labels.
    public let seed: UInt64
    /// The model's parameters by state-dict name, in `namedParameters` order.
    public let parameters: [(name: String, value: Tensor<Float>)]
    /// Images (batch, 1, 33, 33).
    public let input: Tensor<Float>
    /// One label in 0..<10 per image.
    public let targets: [Int]

    /// The models a case can be made of.
    public static let models: [ModelName] = [.c4cnn, .cnn]

    /// The case of `model` drawn from `seed` with `batch` images; `model` must be `.c4cnn` or `.cnn`, `batch` >= 1.
    public init(model: ModelName, seed: UInt64, batch: Int) {
        check(Self.models.contains(model),
              "ModelGradientCase: model must be one of \(Self.models.map(\.rawValue)), got \(model.rawValue)")
        check(batch >= 1, "ModelGradientCase: batch must be at least 1, got \(batch)")
        self.model = model
        self.seed = seed
        parameters = model.make(seed: seed).namedParameters.map { ($0.name, $0.parameter.value.detached()) }
        // The images' and labels' stream: the seed mixed with a constant, so that it differs from the parameters'.
        var generator = SeededRandom(seed: seed ^ 0x5EED_CA5E_0000_0000)
        input = .uniform(shape: [batch, 1, 33, 33], low: 0, high: 1, generator: &generator)
        targets = (0..<batch).map { _ in Int(generator.next() % 10) }
    }

    /// What one pass over the case computes: the logits (batch, 10) and the gradient of the mean cross-entropy with
    /// respect to every parameter, by state-dict name.
    public struct Pass<Scalar: TensorScalar> {
        /// (batch, 10).
        public var logits: Tensor<Scalar>
        /// Each parameter's gradient, of the parameter's shape, by state-dict name.
        public var gradients: [String: Tensor<Scalar>]
    }

    /// The pass of the model itself, in `Float` (the training path).
    public func floatPass() throws -> Pass<Float> {
        let module = model.make(seed: seed)
        let logits = try module(input)
        let loss = logits.crossEntropy(targets: targets)
        module.zeroGradients()
        loss.backward()
        var gradients: [String: Tensor<Float>] = [:]
        for (name, parameter) in module.namedParameters {
            gradients[name] = parameter.grad ?? Tensor(zeros: parameter.shape)
        }
        return Pass(logits: logits.detached(), gradients: gradients)
    }

    /// The same pass in `Double` by `DoubleModelMirror` (the float64 truth).
    public func doublePass() throws -> Pass<Double> {
        var inputs: [String: Tensor<Double>] = [:]
        for (name, value) in parameters { inputs[name] = value.converted(to: Double.self).requiringGradient() }
        let logits = try DoubleModelMirror.logits(model: model, parameters: inputs,
                                                  input: input.converted(to: Double.self))
        logits.crossEntropy(targets: targets).backward()
        return Pass(logits: logits.detached(), gradients: inputs.mapValues { $0.grad ?? Tensor(zeros: $0.shape) })
    }

    // MARK: Files

    /// The case as a safetensors file: `param.<name>` (F32), `input` (F32), `target` (I64), metadata `model`,
    /// `seed`; with passes, also `logits.float` and `grad.float.<name>` (F32), `logits.double` and
    /// `grad.double.<name>` (F64).
    public func file(float: Pass<Float>? = nil, double: Pass<Double>? = nil) -> SafetensorsFile {
        var file = SafetensorsFile(metadata: ["op": "model_gradients", "model": model.rawValue, "seed": "\(seed)"])
        for (name, value) in parameters {
            file.entries["param.\(name)"] = SafetensorsEntry(shape: value.shape, values: .f32(value.scalars))
        }
        file.entries["input"] = SafetensorsEntry(shape: input.shape, values: .f32(input.scalars))
        file.entries["target"] = SafetensorsEntry(shape: [targets.count], values: .i64(targets.map(Int64.init)))
        if let float {
            file.entries["logits.float"] = SafetensorsEntry(shape: float.logits.shape,
                                                            values: .f32(float.logits.scalars))
            for (name, g) in float.gradients {
                file.entries["grad.float.\(name)"] = SafetensorsEntry(shape: g.shape, values: .f32(g.scalars))
            }
        }
        if let double {
            file.entries["logits.double"] = SafetensorsEntry(shape: double.logits.shape,
                                                             values: .f64(double.logits.scalars))
            for (name, g) in double.gradients {
                file.entries["grad.double.\(name)"] = SafetensorsEntry(shape: g.shape, values: .f64(g.scalars))
            }
        }
        return file
    }
}

// MARK: - Gradient errors

/// The relative error of each parameter's gradient against the truth: max |g - g_ref| / max |g_ref| over the tensor
/// (max |g - g_ref| when g_ref is all zeros; infinity for a NaN, a missing gradient or a shape mismatch).
public struct GradientErrors {
    /// The tolerance the reference cases hold gradients to, relative to the tensor's largest magnitude.
    public static let tolerance = 1e-4

    /// One error per parameter of the truth, sorted by name.
    public let errors: [(name: String, error: Double)]

    /// The errors of `gradients` against `truth`, for every parameter `truth` names.
    public init(_ gradients: [String: Tensor<Float>], truth: [String: Tensor<Double>]) {
        errors = truth.keys.sorted().map { name in
            (name, Self.relativeError(gradients[name], truth[name]!))
        }
    }

    /// The largest error and its parameter ("" and 0 without parameters).
    public var worst: (name: String, error: Double) {
        errors.max { $0.error < $1.error } ?? ("", 0)
    }

    /// Whether any parameter's error is above `tolerance` (or not a number).
    public func exceeds(_ tolerance: Double = GradientErrors.tolerance) -> Bool {
        errors.contains { !($0.error <= tolerance) }
    }

    /// max |g - g_ref| / max |g_ref|.
    static func relativeError(_ g: Tensor<Float>?, _ truth: Tensor<Double>) -> Double {
        guard let g, g.shape == truth.shape else { return .infinity }
        var worst = 0.0, scale = 0.0
        for (x, y) in zip(g.scalars, truth.scalars) {
            let d = abs(Double(x) - y)
            worst = max(worst, d.isNaN ? .infinity : d)
            scale = max(scale, abs(y))
        }
        return scale == 0 ? worst : worst / scale
    }
}

// MARK: - Measuring a case

extension ModelGradientCase {
    /// The errors of the `Float` gradients against the `Double` truth. With `directory`, also writes the case with
    /// both gradients there as `<model>_<seed>.safetensors` (for `scripts/gradient_accuracy.py`).
    public func measure(writingInto directory: URL? = nil) throws -> GradientErrors {
        let float = try floatPass(), truth = try doublePass()
        if let directory {
            try file(float: float, double: truth)
                .write(to: directory.appendingPathComponent("\(model.rawValue)_\(seed).safetensors"))
        }
        return GradientErrors(float.gradients, truth: truth.gradients)
    }
}
