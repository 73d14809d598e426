import Autograd
import Foundation

/// Names and shapes that do not fit when loading parameters into a module. Nothing is changed when it is thrown.
public struct StateDictError: Error, CustomStringConvertible {
    /// Where the tensors came from (a file name or "state dict").
    public var source: String
    /// Names the module has and the source lacks.
    public var missing: [String] = []
    /// Names the source has and the module lacks.
    public var unexpected: [String] = []
    /// name: expected shape vs given shape
    public var mismatched: [(name: String, expected: [Int], given: [Int])] = []
    /// Any other problem, in words.
    public var other: String? = nil

    /// An error about `source` listing what does not fit.
    public init(source: String, missing: [String] = [], unexpected: [String] = [],
                mismatched: [(name: String, expected: [Int], given: [Int])] = [], other: String? = nil) {
        self.source = source
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.other = other
    }

    /// How many names (or shape mismatches) a listing shows before it summarises the rest as "... and N more": a
    /// file of another model can hold thousands, which would fill megabytes of a terminal.
    public static let shownNames = 20

    /// The first `shownNames` of `names`, comma-separated, then "... and N more" for the rest.
    public static func summary(_ names: [String]) -> String {
        let shown = names.prefix(shownNames).joined(separator: ", ")
        return names.count > shownNames ? shown + ", ... and \(names.count - shownNames) more" : shown
    }

    /// One line per kind of misfit: the missing names, the unexpected names, each shape mismatch, then `other`; at
    /// most `shownNames` of each, then how many more.
    public var listing: [String] {
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing: \(Self.summary(missing))") }
        if !unexpected.isEmpty { parts.append("unexpected: \(Self.summary(unexpected))") }
        for m in mismatched.prefix(Self.shownNames) {
            parts.append("shape mismatch for \(m.name): model has \(m.expected), file has \(m.given)")
        }
        if mismatched.count > Self.shownNames {
            parts.append("... and \(mismatched.count - Self.shownNames) more shape mismatches")
        }
        if let other { parts.append(other) }
        return parts
    }

    /// The source and one indented line per kind of misfit.
    public var description: String {
        (["\(source): the parameters do not fit the model"] + listing).joined(separator: "\n  ")
    }
}

extension Module {
    /// The parameters by dotted name, as `state_dict` would give them.
    public func stateDict() -> [String: Tensor<Float>] {
        var result: [String: Tensor<Float>] = [:]
        for (name, parameter) in namedParameters { result[name] = parameter.value.detached() }
        for (name, buffer) in namedBuffers { result[name] = buffer.value }
        return result
    }

    /// Loads parameters by name. All names and shapes are checked first; on any misfit nothing is changed and a
    /// `StateDictError` lists the missing, unexpected and mismatched names.
    /// - Parameters:
    ///   - stateDict: tensors by dotted name, exactly the names of `stateDict()`.
    ///   - source: what the error calls the tensors' origin (a file name).
    public func load(stateDict: [String: Tensor<Float>], source: String = "state dict") throws {
        if let error = misfit(of: stateDict, source: source) { throw error }
        let parameters = namedParameters, buffers = namedBuffers
        for (name, parameter) in parameters { parameter.assign(stateDict[name]!.scalars) }
        for (name, buffer) in buffers { buffer.value = stateDict[name]!.detached() }
        for (_, module) in namedModules { module.modeDidChange() }
    }

    /// What keeps `stateDict` from loading into this module: every missing, unexpected and wrongly shaped name (in
    /// the module's order, unexpected names sorted), or nil when it fits exactly. Changes nothing.
    public func misfit(of stateDict: [String: Tensor<Float>], source: String = "state dict") -> StateDictError? {
        var error = StateDictError(source: source)
        let expected = namedParameters.map { ($0.name, $0.parameter.shape) }
            + namedBuffers.map { ($0.name, $0.buffer.value.shape) }
        for (name, shape) in expected {
            guard let given = stateDict[name] else { error.missing.append(name); continue }
            if given.shape != shape { error.mismatched.append((name, shape, given.shape)) }
        }
        let known = Set(expected.map(\.0))
        error.unexpected = stateDict.keys.filter { !known.contains($0) }.sorted()
        return error.missing.isEmpty && error.unexpected.isEmpty && error.mismatched.isEmpty ? nil : error
    }

    /// Saves the parameters as a safetensors file (atomically), with optional metadata.
    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        var file = SafetensorsFile(metadata: metadata)
        for (name, tensor) in stateDict() {
            file.entries[name] = SafetensorsEntry(shape: tensor.shape, values: .f32(tensor.scalars))
        }
        try file.write(to: url)
    }

    /// Loads the parameters from a safetensors file saved by `save` or by PyTorch's `safetensors.torch.save_file`.
    /// Entries named with `prefix` (e.g. "param.") are taken with the prefix removed; others are ignored when a
    /// prefix is given.
    public func load(from url: URL, prefix: String = "") throws {
        let file = try SafetensorsFile(contentsOf: url)
        try load(stateDict: Self.tensors(in: file, prefix: prefix), source: url.lastPathComponent)
    }

    /// The F32/F64 tensors of a safetensors file whose names start with `prefix`, with it removed.
    public static func tensors(in file: SafetensorsFile, prefix: String = "") -> [String: Tensor<Float>] {
        var result: [String: Tensor<Float>] = [:]
        for (name, entry) in file.entries where name.hasPrefix(prefix) && entry.dtype != .i64 {
            result[String(name.dropFirst(prefix.count))] = Tensor(shape: entry.shape, scalars: entry.floats)
        }
        return result
    }
}
