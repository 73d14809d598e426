/// An n-dimensional array of `Float` or `Double`, row-major, with value semantics (copy-on-write storage), that can
/// take part in reverse-mode automatic differentiation.
///
/// A tensor that requires a gradient (a leaf made with `requiringGradient()`, or the result of an op on one) is
/// tracked by a `GradNode`; copies of the value share that node. Ops record themselves on the thread's `Tape`, and
/// `backward()` walks it in reverse.
public struct Tensor<Scalar: TensorScalar> {
    /// Size of each axis.
    public let shape: [Int]
    /// The elements, row-major, `shape.reduce(1, *)` of them.
    public internal(set) var scalars: [Scalar]
    /// Autograd identity; nil for constants.
    var node: GradNode<Scalar>?

    // MARK: - Creating tensors

    /// A tensor with the given elements; precondition: `scalars.count` equals the product of `shape`.
    public init(shape: [Int], scalars: [Scalar]) {
        check(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
        check(scalars.count == shape.reduce(1, *),
              "Tensor: \(scalars.count) scalars do not fill shape \(shape)")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of `shape` filled with `value`.
    public init(repeating value: Scalar, shape: [Int]) {
        let count = shape.reduce(1, *)
        // All-zero bytes are +0.0 for Float and Double: a byte fill for zeros (not a generic per-element loop).
        let zero = value == 0 && value.sign == .plus
        self.init(shape: shape, scalars: [Scalar](fillingAll: count) { out in
            if zero {
                UnsafeMutableRawPointer(out).initializeMemory(as: UInt8.self, repeating: 0,
                                                             count: count * MemoryLayout<Scalar>.stride)
            } else {
                out.initialize(repeating: value, count: count)
            }
        })
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) { self.init(repeating: 0, shape: shape) }

    /// A rank-0 tensor holding `value`.
    public init(_ value: Scalar) { self.init(shape: [], scalars: [value]) }

    /// Builds a tensor by filling a fresh contiguous buffer of `count(shape)` elements.
    public init(shape: [Int], filling body: (UnsafeMutableBufferPointer<Scalar>) -> Void) {
        let count = shape.reduce(1, *)
        let scalars = [Scalar](unsafeUninitializedCapacity: count) { buffer, initialized in
            // All-zero bytes are +0.0 for Float and Double; a byte fill avoids a generic per-element loop.
            UnsafeMutableRawBufferPointer(buffer).initializeMemory(as: UInt8.self, repeating: 0)
            body(buffer)
            initialized = count
        }
        self.init(shape: shape, scalars: scalars)
    }

    /// Samples from N(mean, std^2) with `generator`.
    public static func normal(shape: [Int], mean: Double = 0, std: Double = 1,
                              generator: inout SeededRandom) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, scalars: (0..<count).map { _ in Scalar(mean + std * generator.normal()) })
    }

    /// Samples from U[low, high) with `generator`.
    public static func uniform(shape: [Int], low: Double, high: Double, generator: inout SeededRandom) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, scalars: (0..<count).map { _ in Scalar(generator.uniform(low, high)) })
    }

    // MARK: - Properties

    public var rank: Int { shape.count }
    public var count: Int { scalars.count }

    /// The single element of a tensor with one element.
    public var item: Scalar {
        check(scalars.count == 1, "item: tensor of shape \(shape) has \(scalars.count) elements")
        return scalars[0]
    }

    /// Converts to another element type (a constant: not tracked).
    public func converted<Other: TensorScalar>(to: Other.Type = Other.self) -> Tensor<Other> {
        Tensor<Other>(shape: shape, scalars: scalars.map { Other($0) })
    }

    // MARK: - Autograd

    /// True when this tensor is tracked by autograd.
    public var requiresGradient: Bool { node != nil }

    /// A copy of this value as a new leaf that accumulates a gradient.
    public func requiringGradient() -> Tensor {
        var t = self
        t.node = GradNode(shape: shape, isLeaf: true)
        return t
    }

    /// The same values, cut from the graph.
    public func detached() -> Tensor {
        Tensor(shape: shape, scalars: scalars)
    }

    /// The gradient accumulated into this tensor by `backward`, or nil.
    public var grad: Tensor? {
        guard let g = node?.grad else { return nil }
        return Tensor(shape: shape, scalars: g)
    }

    /// Clears the accumulated gradient.
    public func zeroGradient() { node?.grad = nil }

    /// Replaces the values in place, keeping the autograd identity (for optimisers and loading weights).
    /// Precondition: same number of elements.
    public mutating func assign(_ newScalars: [Scalar]) {
        check(newScalars.count == scalars.count,
              "assign: \(newScalars.count) values for a tensor of shape \(shape)")
        scalars = newScalars
    }

    /// Mutable access to the values, keeping the autograd identity (for optimisers).
    public mutating func withUnsafeMutableScalars<R>(_ body: (inout UnsafeMutableBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer(body)
    }
}
