import Foundation

// MARK: - Graph nodes

/// The autograd identity of a tensor: where its gradient accumulates.
///
/// A leaf that requires a gradient and every result of a recorded op own a node; tensors that share a node are the
/// same variable (copies of a `Tensor` value share it).
public final class GradNode<Scalar: TensorScalar> {
    let shape: [Int]
    /// Accumulated gradient, contiguous, of `shape`; nil until something flows into it.
    var grad: [Scalar]?
    /// True for user-created leaves (parameters, inputs): their gradient is kept after backward.
    let isLeaf: Bool

    init(shape: [Int], isLeaf: Bool) {
        self.shape = shape
        self.isLeaf = isLeaf
    }

    /// Adds `g` into the gradient, summing over broadcast axes first when `g` has a broadcast shape: the one place
    /// where broadcasting is undone.
    func accumulate(_ g: Tensor<Scalar>) {
        let g = g.shape == shape ? g : g.sum(toShape: shape)
        if grad == nil {
            grad = g.scalars
        } else {
            grad!.withUnsafeMutableBufferPointer { acc in
                g.scalars.withUnsafeBufferPointer { add in
                    for i in 0..<acc.count { acc[i] += add[i] }
                }
            }
        }
    }
}

// MARK: - The tape

/// One recorded op: its result's node and how to push that node's gradient to its inputs' nodes.
struct TapeEntry {
    let output: AnyObject
    /// Runs the op's vector-Jacobian product if the output received a gradient; frees that gradient unless a leaf.
    let backward: () -> Void
}

/// The record of ops run since the last backward, on this thread.
///
/// Ops append in execution order; `Tensor.backward` walks it in reverse (no recursion) and then releases it. An op is
/// always appended after the ops that produced its inputs, so the reverse walk reaches a node only after every consumer
/// has added its share: the node's gradient is complete when its own vjp runs.
public final class Tape {
    var entries: [TapeEntry] = []
    /// While false (inside `withoutGradients` or during backward) nothing is recorded.
    var isRecording = true

    private static let key = "Autograd.Tape"

    /// The calling thread's tape.
    public static var current: Tape {
        let dictionary = Thread.current.threadDictionary
        if let tape = dictionary[key] as? Tape { return tape }
        let tape = Tape()
        dictionary[key] = tape
        return tape
    }

    /// Number of ops recorded and not yet consumed by a backward pass.
    public var count: Int { entries.count }

    /// Forgets every recorded op (for example after an evaluation that recorded by mistake).
    public func reset() { entries.removeAll() }
}

/// Runs `body` without recording any op: results do not require gradients. Use it for evaluation.
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    let tape = Tape.current
    let previous = tape.isRecording
    tape.isRecording = false
    defer { tape.isRecording = previous }
    return try body()
}

// MARK: - Recording and backward

extension Tensor {
    /// Records an op on the tape when gradients are on and some input requires one.
    ///
    /// - Parameters:
    ///   - inputs: the op's tensor inputs.
    ///   - vjp: given the gradient of the result (same shape as `result`), returns the gradient for each input, in
    ///     order, or nil where none is needed. A gradient may have a shape that broadcasts to its input's; it is
    ///     summed back. `vjp` runs with recording off.
    /// - Returns: `result`, tracked by a new node when recorded.
    public static func record(_ result: Tensor, inputs: [Tensor], vjp: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        let tape = Tape.current
        guard tape.isRecording else { return result }
        let inputNodes = inputs.map(\.node)
        guard inputNodes.contains(where: { $0 != nil }) else { return result }
        var out = result
        let node = GradNode<Scalar>(shape: result.shape, isLeaf: false)
        out.node = node
        tape.entries.append(TapeEntry(output: node) { [unowned node] in
            guard let g = node.grad else { return }
            node.grad = nil
            let grads = vjp(Tensor(shape: node.shape, scalars: g))
            for (inputNode, grad) in zip(inputNodes, grads) {
                if let inputNode, let grad { inputNode.accumulate(grad) }
            }
        })
        return out
    }

    /// Back-propagates from this tensor, seeded with `seed` (default: ones, which for a scalar loss is d loss).
    ///
    /// Gradients accumulate into the leaves (read them with `grad`); the tape is released afterwards.
    public func backward(seed: Tensor? = nil) {
        guard let node else {
            preconditionFailure("backward: the tensor of shape \(shape) does not require a gradient")
        }
        let seed = seed ?? Tensor(repeating: 1, shape: shape)
        precondition(seed.shape == shape, "backward: seed shape \(seed.shape) differs from tensor shape \(shape)")
        let tape = Tape.current
        // A result's op is on the tape until a backward pass or reset consumes it; without it nothing would flow.
        precondition(node.isLeaf || tape.entries.lastIndex(where: { $0.output === node }) != nil,
                     "backward: the graph of the tensor of shape \(shape) was already consumed by a backward pass "
                     + "or Tape.reset(), or was recorded on another thread; recompute it")
        let previous = tape.isRecording
        tape.isRecording = false
        defer { tape.isRecording = previous }
        node.accumulate(seed)
        let entries = tape.entries
        tape.entries.removeAll()
        for entry in entries.reversed() { entry.backward() }
    }
}

extension Tensor {
    /// `self` as the result of an op that leaves it unchanged (an identity reshape, permutation, flip, slice, ...):
    /// the same variable while recording; an untracked copy inside `withoutGradients`, where no result requires a
    /// gradient.
    var unchangedResult: Tensor {
        node == nil || Tape.current.isRecording ? self : detached()
    }
}
