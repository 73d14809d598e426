import Autograd

// MARK: - Parameters

/// A learnable tensor owned by a module. The object is the parameter's identity: optimisers keep state per
/// parameter, and its `value` is a leaf that accumulates a gradient.
public final class Parameter {
    /// The current values; a leaf that requires a gradient.
    public private(set) var value: Tensor<Float>
    /// Incremented by every change of the values, so derived tensors (expanded filters) know when to rebuild.
    public private(set) var version = 0

    /// A parameter holding a copy of `initial`, detached from any graph, as a leaf that requires a gradient.
    public init(_ initial: Tensor<Float>) {
        value = initial.detached().requiringGradient()
    }

    /// The shape of the values.
    public var shape: [Int] { value.shape }
    /// The gradient accumulated by the last backward passes, or nil.
    public var grad: Tensor<Float>? { value.grad }
    /// Clears the accumulated gradient.
    public func zeroGradient() { value.zeroGradient() }

    /// Replaces the values (same count), keeping the identity. Precondition: matching element count.
    public func assign(_ scalars: [Float]) {
        value.assign(scalars)
        version += 1
    }

    /// Updates the values in place (for optimisers).
    public func update(_ body: (inout UnsafeMutableBufferPointer<Float>) -> Void) {
        value.withUnsafeMutableScalars(body)
        version += 1
    }
}

/// A tensor a module keeps that is not learned (running statistics of batch norm); saved with the parameters.
public final class Buffer {
    /// The values (no gradient).
    public var value: Tensor<Float>
    /// A buffer holding `value`.
    public init(_ value: Tensor<Float>) { self.value = value }
}

// MARK: - Errors

/// An input whose shape a layer cannot take.
public struct ShapeError: Error, CustomStringConvertible {
    /// The layer, as it describes itself (`Conv2d(1, 8)`).
    public let layer: String
    /// The shape the layer takes, in words (`(N, 1, 33, 33)`).
    public let expected: String
    /// The shape it was given.
    public let given: [Int]
    /// An error for `layer`, which expected `expected` and was given `given`.
    public init(layer: String, expected: String, given: [Int]) {
        self.layer = layer
        self.expected = expected
        self.given = given
    }
    /// `<layer>: expected an input of shape <expected>, got <given>`.
    public var description: String { "\(layer): expected an input of shape \(expected), got \(given)" }
}

// MARK: - Modules

/// A layer or model: parameters, buffers and submodules with PyTorch `state_dict` names, a train/eval mode, and
/// `forward`.
///
/// Registration is automatic: the stored properties of a subclass (and of its superclasses, base class first) that
/// hold a ``Parameter``, a ``Buffer`` or a `Module` — or an optional or an array of one of these — are found by
/// reflection and named by their property name, in declaration order. An array `convs` of modules gives the
/// children `convs.0`, `convs.1`, ... as PyTorch's `nn.ModuleList`; an array of parameters gives `name.0`, ...;
/// a `nil` optional registers nothing.
///
/// ```swift
/// final class TwoLayer: Module {
///     let hidden = Linear(4, 8)
///     let output = Linear(8, 2)
///     override func forward(_ x: Tensor<Float>) throws -> Tensor<Float> { try output(hidden(x).relu()) }
/// }
/// // TwoLayer().namedParameters: hidden.weight, hidden.bias, output.weight, output.bias
/// ```
///
/// Where a Swift property name differs from the name a PyTorch file uses, ``stateDictNames`` maps it (an empty
/// name leaves a property unregistered, for a reference to a module that is not a child). Overriding
/// ``localParameters``, ``localBuffers`` or ``children`` replaces the discovery altogether.
open class Module {
    /// True in training mode (the default); layers such as dropout and batch norm behave differently in eval mode.
    public private(set) var isTraining = true

    /// A module in training mode with nothing registered yet; subclasses store their layers and parameters.
    public init() {}

    /// State-dict names of stored properties whose Swift name is not the PyTorch name: property name -> name
    /// (`["groupconvEncoder": "groupconv_encoder"]`). A property mapped to "" is not registered. Empty by default.
    open var stateDictNames: [String: String] { [:] }

    /// This module's own parameters by local name ("weight", "bias"), in declaration order; found from the stored
    /// properties unless overridden.
    open var localParameters: [(name: String, parameter: Parameter)] {
        registeredProperties().flatMap { name, value -> [(name: String, parameter: Parameter)] in
            if let parameter = value as? Parameter { return [(name, parameter)] }
            if let list = value as? [Parameter] {
                return list.enumerated().map { ("\(name).\($0.offset)", $0.element) }
            }
            return []
        }
    }

    /// This module's own buffers by local name ("running_mean"), saved and loaded with the parameters; found from
    /// the stored properties unless overridden.
    open var localBuffers: [(name: String, buffer: Buffer)] {
        registeredProperties().flatMap { name, value -> [(name: String, buffer: Buffer)] in
            if let buffer = value as? Buffer { return [(name, buffer)] }
            if let list = value as? [Buffer] {
                return list.enumerated().map { ("\(name).\($0.offset)", $0.element) }
            }
            return []
        }
    }

    /// Direct submodules by local name, in declaration order; found from the stored properties unless overridden.
    open var children: [(name: String, module: Module)] {
        registeredProperties().flatMap { name, value -> [(name: String, module: Module)] in
            if let module = value as? Module { return module === self ? [] : [(name, module)] }
            if let list = value as? [Module] {
                return list.enumerated().map { ("\(name).\($0.offset)", $0.element) }
            }
            return []
        }
    }

    /// The stored properties of this object, base class first and in declaration order, with their state-dict
    /// names (``stateDictNames`` applied; unregistered ones left out). A `lazy var` counts under the property's
    /// name once it has been accessed.
    private func registeredProperties() -> [(name: String, value: Any)] {
        var mirrors: [Mirror] = []
        var next: Mirror? = Mirror(reflecting: self)
        while let mirror = next {
            mirrors.append(mirror)
            next = mirror.superclassMirror
        }
        let renamed = stateDictNames
        let lazyPrefix = "$__lazy_storage_$_"
        var result: [(name: String, value: Any)] = []
        for mirror in mirrors.reversed() {
            for child in mirror.children {
                guard var name = child.label else { continue }
                if name.hasPrefix(lazyPrefix) { name.removeFirst(lazyPrefix.count) }
                if let explicit = renamed[name] {
                    if explicit.isEmpty { continue }
                    name = explicit
                }
                result.append((name, child.value))
            }
        }
        return result
    }

    /// Maps an input to an output; throws `ShapeError` for an input it cannot take.
    open func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        fatalError("\(type(of: self)) must override forward(_:)")
    }

    /// Hook for subclasses that cache derived tensors (expanded filters) or hold statistics.
    open func modeDidChange() {}

    /// Restarts the random streams of stochastic layers (dropout) from `seed`; the trainer calls it at the start of
    /// every epoch so that a resumed run draws exactly what an uninterrupted one would.
    open func reseed(_ seed: UInt64) {
        for (index, child) in children.enumerated() {
            child.module.reseed(seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index + 1))
        }
    }

    /// Runs ``forward(_:)``; call a module as a function (`try model(x)`) so that ``summary(inputShape:)`` sees it.
    public func callAsFunction(_ input: Tensor<Float>) throws -> Tensor<Float> {
        let output = try forward(input)
        if let recorder = SummaryRecorder.current { recorder.record(self, output: output) }
        return output
    }

    // MARK: Tree

    /// All modules below and including this one, with their dotted prefixes ("" for this one), parents before
    /// their children. A module reachable twice is listed once, at its first name.
    public var namedModules: [(name: String, module: Module)] {
        var result: [(String, Module)] = []
        var seen = Set<ObjectIdentifier>()
        var stack: [(String, Module)] = [("", self)]
        while let (prefix, module) = stack.popLast() {
            guard seen.insert(ObjectIdentifier(module)).inserted else { continue }
            result.append((prefix, module))
            for (name, child) in module.children.reversed() {
                stack.append((prefix.isEmpty ? name : "\(prefix).\(name)", child))
            }
        }
        return result
    }

    /// Every parameter with its dotted `state_dict` name, in PyTorch's order (`head.0.weight`). A parameter
    /// reachable twice is listed once.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        var seen = Set<ObjectIdentifier>()
        return namedModules.flatMap { prefix, module in
            module.localParameters.map { (prefix.isEmpty ? $0.name : "\(prefix).\($0.name)", $0.parameter) }
        }.filter { seen.insert(ObjectIdentifier($0.1)).inserted }
    }

    /// Every parameter, in the order of ``namedParameters`` (PyTorch's `model.parameters()`).
    public func parameters() -> [Parameter] { namedParameters.map(\.parameter) }

    /// Every buffer with its dotted name.
    public var namedBuffers: [(name: String, buffer: Buffer)] {
        namedModules.flatMap { prefix, module in
            module.localBuffers.map { (prefix.isEmpty ? $0.name : "\(prefix).\($0.name)", $0.buffer) }
        }
    }

    /// Number of learnable scalars.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.value.count } }

    /// Sets training (true) or evaluation (false) mode on the whole tree.
    public func setTraining(_ training: Bool) {
        for (_, module) in namedModules where module.isTraining != training {
            module.isTraining = training
            module.modeDidChange()
        }
    }

    /// Training mode on the whole tree (PyTorch's `model.train()`).
    public func train() { setTraining(true) }
    /// Evaluation mode on the whole tree (PyTorch's `model.eval()`).
    public func eval() { setTraining(false) }

    /// Clears every parameter's gradient.
    public func zeroGradients() { parameters().forEach { $0.zeroGradient() } }
}

// MARK: - Sequential

/// Runs its children in order; they are named "0", "1", ... as in PyTorch.
public final class Sequential: Module {
    /// The layers, run in order; children "0", "1", ...
    public let layers: [Module]

    /// A container running `layers` in order: (input) -> layers[0] -> layers[1] -> ...
    public init(_ layers: [Module]) {
        self.layers = layers
    }

    /// A container running the layers in the order given.
    public convenience init(_ layers: Module...) { self.init(layers) }

    /// The layers, named "0", "1", ... as in PyTorch.
    override public var children: [(name: String, module: Module)] {
        layers.enumerated().map { ("\($0.offset)", $0.element) }
    }

    /// Runs the layers in order (each called as a function); throws the first layer's `ShapeError`.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try layers.reduce(input) { try $1($0) }
    }
}
