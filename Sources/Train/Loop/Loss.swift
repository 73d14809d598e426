import Autograd
import Foundation

/// A training loss: the scalar to minimise from a model's output and a batch, with a name for messages and
/// checkpoints.
///
/// Use one of the built-in losses or give a closure:
///
/// ```swift
/// let quartic = Loss("quartic") { output, batch in
///     let d = output - batch.targets!
///     return (d * d * d * d).mean()
/// }
/// ```
public struct Loss {
    /// The loss's name (stored in checkpoints written with it).
    public let name: String
    /// Whether accuracy is counted: the output is (N, classes) logits scored against the batch's labels.
    public let classifies: Bool
    let compute: (Tensor<Float>, Batch) throws -> Tensor<Float>
    let fault: (Tensor<Float>, Batch) -> String?

    /// A loss computed by `compute(output, batch)`, which returns a scalar tensor; `classifies` when the output is
    /// (N, classes) logits for the batch's labels (accuracy is then counted too).
    public init(_ name: String, classifies: Bool = false,
                _ compute: @escaping (_ output: Tensor<Float>, _ batch: Batch) throws -> Tensor<Float>) {
        self.name = name
        self.classifies = classifies
        self.compute = compute
        self.fault = { _, _ in nil }
    }

    init(_ name: String, classifies: Bool, fault: @escaping (Tensor<Float>, Batch) -> String?,
         _ compute: @escaping (Tensor<Float>, Batch) throws -> Tensor<Float>) {
        self.name = name
        self.classifies = classifies
        self.compute = compute
        self.fault = fault
    }

    /// The loss of `output` for `batch`, or an error naming why it cannot be computed.
    public func callAsFunction(_ output: Tensor<Float>, _ batch: Batch) throws -> Tensor<Float> {
        if let reason = fault(output, batch) { throw LossError(reason: reason) }
        return try compute(output, batch)
    }

    /// Cross-entropy of logits (N, classes) against the batch's labels, averaged over the batch.
    public static let crossEntropy = Loss("cross_entropy", classifies: true, fault: { output, batch in
        if batch.targets != nil { return "cross_entropy needs class labels; the batch has regression targets" }
        return Trainer.outputFault(output, batch.labels)
    }) { output, batch in
        output.crossEntropy(targets: batch.labels)
    }

    /// Mean squared error of the output against the batch's regression targets (the output reshaped to the
    /// targets' (B, values) when it holds as many values).
    public static let meanSquaredError = Loss("mse", classifies: false, fault: { output, batch in
        guard let targets = batch.targets else { return "mse needs regression targets; the batch has class labels" }
        guard output.count == targets.count, output.rank >= 1, output.shape[0] == targets.shape[0] else {
            return "the model's output of shape \(output.shape) does not fit the targets of shape \(targets.shape)"
        }
        return nil
    }) { output, batch in
        let targets = batch.targets!
        let difference = output.reshaped(targets.shape) - targets
        return (difference * difference).mean()
    }
}

/// Why a loss cannot be computed for a model's output and a batch.
public struct LossError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
