import Autograd
import Foundation

// MARK: - Plain architectures

/// One layer of a plain model — the kinds every framework has (`Conv2d`, `ReLU`, `MaxPool2d`, `Flatten`,
/// `Linear`) — as written in the `architecture` metadata of an exported file.
public struct PlainLayer: Codable, Equatable, Sendable, CustomStringConvertible {
    /// The layer kinds a plain model holds, by their names in the `architecture` metadata.
    public enum Kind: String, Codable, Sendable {
        /// `Conv2d`, `ReLU`, `MaxPool2d` ("max_pool2d"), `Flatten`, `Linear`.
        case conv2d, relu, maxPool2d = "max_pool2d", flatten, linear
    }

    /// What the layer is.
    public var kind: Kind
    /// Input channels (conv2d) or features (linear).
    public var inputs: Int?
    /// Output channels (conv2d) or features (linear).
    public var outputs: Int?
    /// Square kernel side (conv2d, max_pool2d).
    public var kernel: Int?
    /// Stride (conv2d: 1 when nil; max_pool2d: the kernel when nil).
    public var stride: Int?
    /// Zero (conv2d) or -inf (max_pool2d) padding on every side; 0 when nil.
    public var padding: Int?

    /// A layer spec; the fields a kind does not use stay nil.
    public init(kind: Kind, inputs: Int? = nil, outputs: Int? = nil, kernel: Int? = nil, stride: Int? = nil,
                padding: Int? = nil) {
        self.kind = kind
        self.inputs = inputs
        self.outputs = outputs
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    /// The layer as one short line: `Conv2d(8, 16, k3, stride 1, pad 1)`.
    public var description: String {
        switch kind {
        case .conv2d:
            return "Conv2d(\(inputs ?? 0), \(outputs ?? 0), k\(kernel ?? 0), stride \(stride ?? 1), "
                + "pad \(padding ?? 0))"
        case .relu: return "ReLU"
        case .maxPool2d: return "MaxPool2d(k\(kernel ?? 0), stride \(stride ?? 0), pad \(padding ?? 0))"
        case .flatten: return "Flatten"
        case .linear: return "Linear(\(inputs ?? 0), \(outputs ?? 0))"
        }
    }

    /// The spec of a layer of the plain kinds; nil for any other module.
    public init?(_ module: Module) {
        switch module {
        case let c as Conv2d:
            guard c.dilation == 1 else { return nil }
            self.init(kind: .conv2d, inputs: c.inChannels, outputs: c.outChannels, kernel: c.kernelSize,
                      stride: c.stride, padding: c.padding)
        case is ReLU: self.init(kind: .relu)
        case let p as MaxPool2d:
            self.init(kind: .maxPool2d, kernel: p.kernelSize, stride: p.stride, padding: p.padding)
        case is Flatten: self.init(kind: .flatten)
        case let l as Linear: self.init(kind: .linear, inputs: l.inFeatures, outputs: l.outFeatures)
        default: return nil
        }
    }

    /// A fresh layer of this spec (parameters to be loaded); throws for an incomplete or impossible spec.
    public func makeModule(generator: inout SeededRandom) throws -> Module {
        func positive(_ v: Int?, _ what: String) throws -> Int {
            guard let v, v >= 1 else { throw ExportError("\(kind.rawValue): '\(what)' missing or < 1") }
            return v
        }
        func nonNegative(_ v: Int?) throws -> Int {
            let value = v ?? 0
            guard value >= 0 else { throw ExportError("\(kind.rawValue): negative padding") }
            return value
        }
        switch kind {
        case .conv2d:
            return Conv2d(try positive(inputs, "inputs"), try positive(outputs, "outputs"),
                          kernelSize: try positive(kernel, "kernel"), stride: try positive(stride ?? 1, "stride"),
                          padding: try nonNegative(padding), generator: &generator)
        case .relu: return ReLU()
        case .maxPool2d:
            let k = try positive(kernel, "kernel"), p = try nonNegative(padding)
            guard 2 * p <= k else { throw ExportError("max_pool2d: padding \(p) exceeds half the kernel \(k)") }
            return MaxPool2d(kernelSize: k, stride: try positive(stride ?? k, "stride"), padding: p)
        case .flatten: return Flatten()
        case .linear:
            return Linear(try positive(inputs, "inputs"), try positive(outputs, "outputs"), generator: &generator)
        }
    }
}

/// A file or model that cannot be exported or read as an exported model.
public struct ExportError: LocalizedError, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    /// An error described by `description`.
    public init(_ description: String) { self.description = description }
    /// The same text as `description`, for `localizedDescription`.
    public var errorDescription: String? { description }
}

// MARK: - Plain models

/// A model exported to plain layers: its layers run in order, named "0", "1", ... as in PyTorch's `nn.Sequential`.
/// Its convolutions use the fastest algorithm the framework has for their geometry (Winograd for 3x3 stride-1
/// filters, as the group layers use, with the transform kept in evaluation mode as they keep it), so that the export
/// is at least as fast as the model it came from.
public final class PlainModel: Module {
    /// The layers, run in order; children "0", "1", ...
    public let layers: [Module]

    /// A model running `layers` in order.
    public init(_ layers: [Module]) {
        self.layers = layers
    }

    /// The layers, named "0", "1", ...
    override public var children: [(name: String, module: Module)] {
        layers.enumerated().map { ("\($0.offset)", $0.element) }
    }

    /// Runs the layers in order; throws the first layer's `ShapeError`.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try layers.reduce(input) { x, layer in
            guard let conv = layer as? Conv2d else { return try layer(x) }
            try checkImageInput(x, channels: conv.inChannels, kernel: conv.kernelSize, padding: conv.padding,
                                dilation: conv.dilation, layer: "Conv2d(\(conv.inChannels), \(conv.outChannels))")
            return x.conv2d(weight: conv.weight.value, bias: conv.bias?.value, stride: (conv.stride, conv.stride),
                            padding: (conv.padding, conv.padding), dilation: (conv.dilation, conv.dilation),
                            algorithm: .fastest, filterCache: conv.evaluationFilterCache)
        }
    }
}

// MARK: - Exported files

/// A model exported to plain layers: a `PlainModel` of `PlainLayer` kinds whose parameters are named as PyTorch's
/// `nn.Sequential` names them ("0.weight", "0.bias", ...), saved as safetensors with the metadata
/// `format = "exported"`, `architecture` (JSON list of layers) and whatever the exporter adds (model, preset).
/// Such a file is self-describing: `load` rebuilds the model from it alone.
public enum ExportedModel {
    /// The value of the `format` metadata key.
    public static let format = "exported"

    /// The layer specs of `model`; throws when a layer is not of a plain kind.
    public static func architecture(of model: PlainModel) throws -> [PlainLayer] {
        try model.layers.enumerated().map { index, layer in
            guard let spec = PlainLayer(layer) else {
                throw ExportError("layer \(index) (\(type(of: layer))) is not a plain layer")
            }
            return spec
        }
    }

    /// A model of the given layers with placeholder parameters.
    public static func build(_ architecture: [PlainLayer]) throws -> PlainModel {
        var generator = SeededRandom(seed: 0)
        return PlainModel(try architecture.map { try $0.makeModule(generator: &generator) })
    }

    /// True when `file` was written by `save`.
    public static func isExported(_ file: SafetensorsFile) -> Bool { file.metadata["format"] == format }

    /// Writes `model` with its architecture and `metadata` (which may not override `format` or `architecture`).
    public static func save(_ model: PlainModel, to url: URL, metadata: [String: String] = [:]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let architecture = String(decoding: try encoder.encode(try architecture(of: model)), as: UTF8.self)
        var all = metadata
        all["format"] = format
        all["architecture"] = architecture
        try model.save(to: url, metadata: all)
    }

    /// Rebuilds an exported model from `file` (in evaluation mode); `source` names it in errors.
    public static func load(_ file: SafetensorsFile, source: String) throws -> PlainModel {
        guard isExported(file) else { throw ExportError("\(source): not an exported model (no format=exported)") }
        guard let text = file.metadata["architecture"],
              let architecture = try? JSONDecoder().decode([PlainLayer].self, from: Data(text.utf8)),
              !architecture.isEmpty
        else { throw ExportError("\(source): missing or damaged 'architecture' metadata") }
        let model = try build(architecture)
        try model.load(stateDict: Module.tensors(in: file), source: source)
        model.eval()
        return model
    }

    /// Reads an exported model and its metadata from `url`.
    public static func load(from url: URL) throws -> (model: PlainModel, metadata: [String: String]) {
        let file = try SafetensorsFile(contentsOf: url)
        return (try load(file, source: url.lastPathComponent), file.metadata)
    }
}

// MARK: - Folding batch norm

extension BatchNorm {
    /// Folds this batch norm's evaluation-mode affine map into the convolution that feeds it, given as filters
    /// (C * r, ...) and bias (C * r) where output channel `k` belongs to batch-norm channel `k / r` (r = 1 for a
    /// plain convolution, |G| for the expanded filters of a group convolution): w' = w * scale, b' = b * scale +
    /// shift.
    public func fold(weight: Tensor<Float>, bias: Tensor<Float>?) -> (weight: Tensor<Float>, bias: Tensor<Float>) {
        let outputs = weight.shape[0]
        check(outputs % channels == 0, "BatchNorm.fold: \(outputs) filters for \(channels) channels")
        let repeats = outputs / channels
        let perFilter = weight.count / outputs
        let (scale, shift) = evaluationAffine()
        var w = weight.scalars
        var b = bias?.scalars ?? [Float](repeating: 0, count: outputs)
        for k in 0..<outputs {
            let c = k / repeats
            for i in (k * perFilter)..<((k + 1) * perFilter) { w[i] *= scale[c] }
            b[k] = b[k] * scale[c] + shift[c]
        }
        return (Tensor(shape: weight.shape, scalars: w), Tensor(shape: [outputs], scalars: b))
    }
}

extension Conv2d {
    /// A plain convolution holding the given filters (out, in, k, k) and bias.
    public static func holding(weight: Tensor<Float>, bias: Tensor<Float>?, stride: Int = 1, padding: Int = 0)
        -> Conv2d {
        check(weight.rank == 4 && weight.shape[2] == weight.shape[3], "Conv2d.holding: \(weight.shape)")
        var generator = SeededRandom(seed: 0)
        let conv = Conv2d(weight.shape[1], weight.shape[0], kernelSize: weight.shape[2], stride: stride,
                          padding: padding, bias: bias != nil, generator: &generator)
        conv.weight.assign(weight.scalars)
        if let bias { conv.bias!.assign(bias.scalars) }
        return conv
    }
}

extension Linear {
    /// A linear layer holding the given weight (out, in) and bias.
    public static func holding(weight: Tensor<Float>, bias: Tensor<Float>?) -> Linear {
        check(weight.rank == 2, "Linear.holding: \(weight.shape)")
        var generator = SeededRandom(seed: 0)
        let linear = Linear(weight.shape[1], weight.shape[0], bias: bias != nil, generator: &generator)
        linear.weight.assign(weight.scalars)
        if let bias { linear.bias!.assign(bias.scalars) }
        return linear
    }
}
