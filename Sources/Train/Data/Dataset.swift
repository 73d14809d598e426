import Autograd
import Foundation

// MARK: - Targets

/// What one sample is trained toward: a class index (classification) or a vector of values (regression).
public enum Target: Equatable, Sendable {
    /// A class index in `0..<classes`, scored against logits (N, classes).
    case label(Int)
    /// Regression targets, the same count for every sample of a data set.
    case values([Float])
}

// MARK: - Data sets

/// A data set the loader and the trainer can read: `count` samples, each an input of `sampleShape` (any shape, e.g.
/// `[channels, height, width]` for images) and a target.
///
/// Conform an in-memory array, a generator or a file reader:
///
/// ```swift
/// struct Squares: Dataset {
///     var count: Int { 100 }
///     var sampleShape: [Int] { [1] }
///     func input(_ index: Int) -> ArraySlice<Float> { [Float(index) / 100][...] }
///     func target(_ index: Int) -> Target { .values([Float(index * index) / 10_000]) }
/// }
/// ```
public protocol Dataset {
    /// The number of samples.
    var count: Int { get }
    /// The shape of one sample's input; a batch is `[B] + sampleShape`.
    var sampleShape: [Int] { get }
    /// The input of sample `index` (`0..<count`): `sampleShape`'s product of values, row-major.
    func input(_ index: Int) -> ArraySlice<Float>
    /// The target of sample `index`; every sample of a set has the same kind (all labels or all value vectors of one
    /// length).
    func target(_ index: Int) -> Target
}

extension Dataset {
    /// Values per sample: the product of `sampleShape`.
    public var valuesPerSample: Int { sampleShape.reduce(1, *) }
}

// MARK: - Batches

/// One mini-batch: inputs `[B] + sampleShape` and either class labels (B) or regression targets `[B, values]`.
public struct Batch {
    /// The inputs, `[B] + sampleShape` (images: (B, C, H, W)).
    public let inputs: Tensor<Float>
    /// One class index per sample; empty for a batch of regression targets.
    public let labels: [Int]
    /// Regression targets (B, values), or nil for a batch of class labels.
    public let targets: Tensor<Float>?

    /// The inputs (the name used for image batches).
    public var images: Tensor<Float> { inputs }

    /// The number of samples.
    public var count: Int { inputs.rank > 0 ? inputs.shape[0] : 0 }

    /// A batch of inputs with class labels, one per sample.
    public init(inputs: Tensor<Float>, labels: [Int]) {
        check(inputs.rank >= 1 && inputs.shape[0] == labels.count,
              "Batch: inputs of shape \(inputs.shape) do not hold one sample per label (\(labels.count) labels)")
        self.inputs = inputs
        self.labels = labels
        self.targets = nil
    }

    /// A batch of images (B, C, H, W) with class labels.
    public init(images: Tensor<Float>, labels: [Int]) {
        self.init(inputs: images, labels: labels)
    }

    /// A batch of inputs with regression targets (B, values).
    public init(inputs: Tensor<Float>, targets: Tensor<Float>) {
        check(inputs.rank >= 1 && targets.rank == 2 && inputs.shape[0] == targets.shape[0],
              "Batch: inputs of shape \(inputs.shape) and targets of shape \(targets.shape) are not (B, ...) and "
              + "(B, values) for the same B")
        self.inputs = inputs
        self.labels = []
        self.targets = targets
    }
}
