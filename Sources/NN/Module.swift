import Autograd

// MARK: - Parameters

/// A learnable tensor owned by a module. The object is the parameter's identity: optimisers keep state per
/// parameter, and its `value` is a leaf that accumulates a gradient.
public final class Parameter {
    /// The current values; a leaf that requires a gradient.
    public private(set) var value: Tensor<Float>
    /// Incremented by every change of the values, so derived tensors (expanded filters) know when to rebuild.
    public private(set) var version = 0

    public init(_ initial: Tensor<Float>) {
        value = initial.detached().requiringGradient()
    }

    public var shape: [Int] { value.shape }
    /// The gradient accumulated by the last backward passes, or nil.
    public var grad: Tensor<Float>? { value.grad }
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
    public var value: Tensor<Float>
    public init(_ value: Tensor<Float>) { self.value = value }
}

// MARK: - Errors

/// An input whose shape a layer cannot take.
public struct ShapeError: Error, CustomStringConvertible {
    public let layer: String
    public let expected: String
    public let given: [Int]
    public init(layer: String, expected: String, given: [Int]) {
        self.layer = layer
        self.expected = expected
        self.given = given
    }
    public var description: String { "\(layer): expected an input of shape \(expected), got \(given)" }
}

// MARK: - Modules

/// A layer or model: parameters and submodules with PyTorch `state_dict` names, a train/eval mode, and `forward`.
///
/// Subclasses list their own parameters in `localParameters` and their submodules in `children`, and override
/// `forward`. Dotted names are built from these (`head.0.weight`).
open class Module {
    /// True in training mode (the default); layers such as dropout and batch norm behave differently in eval mode.
    public private(set) var isTraining = true

    public init() {}

    /// This module's own parameters by local name ("weight", "bias"), in registration order.
    open var localParameters: [(name: String, parameter: Parameter)] { [] }

    /// This module's own buffers by local name ("running_mean"), saved and loaded with the parameters.
    open var localBuffers: [(name: String, buffer: Buffer)] { [] }

    /// Direct submodules by local name, in order.
    open var children: [(name: String, module: Module)] { [] }

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

    public func callAsFunction(_ input: Tensor<Float>) throws -> Tensor<Float> { try forward(input) }

    // MARK: Tree

    /// All modules below and including this one, with their dotted prefixes ("" for this one).
    public var namedModules: [(name: String, module: Module)] {
        var result: [(String, Module)] = []
        var stack: [(String, Module)] = [("", self)]
        while let (prefix, module) = stack.popLast() {
            result.append((prefix, module))
            for (name, child) in module.children.reversed() {
                stack.append((prefix.isEmpty ? name : "\(prefix).\(name)", child))
            }
        }
        return result
    }

    /// Every parameter with its dotted `state_dict` name, in PyTorch's order.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        namedModules.flatMap { prefix, module in
            module.localParameters.map { (prefix.isEmpty ? $0.name : "\(prefix).\($0.name)", $0.parameter) }
        }
    }

    public var parameters: [Parameter] { namedParameters.map(\.parameter) }

    /// Every buffer with its dotted name.
    public var namedBuffers: [(name: String, buffer: Buffer)] {
        namedModules.flatMap { prefix, module in
            module.localBuffers.map { (prefix.isEmpty ? $0.name : "\(prefix).\($0.name)", $0.buffer) }
        }
    }

    /// Number of learnable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// Sets training (true) or evaluation (false) mode on the whole tree.
    public func setTraining(_ training: Bool) {
        for (_, module) in namedModules where module.isTraining != training {
            module.isTraining = training
            module.modeDidChange()
        }
    }

    public func train() { setTraining(true) }
    public func eval() { setTraining(false) }

    /// Clears every parameter's gradient.
    public func zeroGradients() { parameters.forEach { $0.zeroGradient() } }
}

// MARK: - Sequential

/// Runs its children in order; they are named "0", "1", ... as in PyTorch.
public final class Sequential: Module {
    public let layers: [Module]

    public init(_ layers: [Module]) {
        self.layers = layers
    }

    public convenience init(_ layers: Module...) { self.init(layers) }

    override public var children: [(name: String, module: Module)] {
        layers.enumerated().map { ("\($0.offset)", $0.element) }
    }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try layers.reduce(input) { try $1.forward($0) }
    }
}
