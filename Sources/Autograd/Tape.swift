import Foundation

// MARK: - Graph nodes

/// Something the tape can ask to push its gradient back to its inputs: the node of an op's result.
protocol BackwardStep: AnyObject {
    func propagate()
}

/// The autograd identity of a tensor: where its gradient accumulates.
///
/// A leaf that requires a gradient and every result of a recorded op own a node; tensors that share a node are the
/// same variable (copies of a `Tensor` value share it). A result's node owns its vector-Jacobian product, which holds
/// its inputs' nodes: the graph lives exactly as long as some tensor reaches it, and the tape only orders it.
public final class GradNode<Scalar: TensorScalar>: BackwardStep {
    let shape: [Int]
    /// Accumulated gradient, contiguous, of `shape`; nil until something flows into it.
    var grad: [Scalar]?
    /// True for user-created leaves (parameters, inputs): their gradient is kept after backward.
    let isLeaf: Bool
    /// For an op's result: pushes `grad` to the inputs' nodes. Cleared once run, which releases what it captured.
    var pushBack: ((GradNode) -> Void)?

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
                    if let a = add.baseAddress, let d = acc.baseAddress {
                        Scalar.accumulate(a, into: d, count: acc.count)
                    }
                }
            }
        }
    }

    func propagate() {
        guard let pushBack else { return }
        self.pushBack = nil
        if grad != nil { pushBack(self) }
    }
}

// MARK: - The tape

/// One recorded op: its result's node, held weakly so that a graph nobody can reach any more (a forward pass whose
/// result was dropped without a backward pass) is freed at once.
struct TapeEntry {
    weak var step: (any BackwardStep)?
}

/// The destructor of `Tape.key`: releases a thread's tape when the thread ends.
private func releaseTape(_ slot: UnsafeMutableRawPointer?) {
    if let slot { Unmanaged<Tape>.fromOpaque(slot).release() }
}

/// The record of ops run since the last backward, on this thread.
///
/// Ops append in execution order; `Tensor.backward` walks it in reverse (no recursion) and then releases it. An op is
/// always appended after the ops that produced its inputs, so the reverse walk reaches a node only after every consumer
/// has added its share: the node's gradient is complete when its own vjp runs.
public final class Tape {
    private(set) var entries: [TapeEntry] = []
    /// While false (inside `withoutGradients` or during backward) nothing is recorded.
    var isRecording = true
    /// Entry count after the last removal of dead entries; the next one happens when the tape has doubled.
    private var compactedCount = 0

    /// The thread-specific slot of each thread's tape (a retained reference, released when the thread ends). A
    /// pthread key, read on every recorded op: a thread dictionary's lookup bridges its string key each time.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { releaseTape($0) }
        check(status == 0, "Tape: no thread-specific key for the tapes (pthread_key_create: \(status))")
        return key
    }()

    /// The calling thread's tape.
    public static var current: Tape {
        if let slot = pthread_getspecific(key) { return Unmanaged<Tape>.fromOpaque(slot).takeUnretainedValue() }
        let tape = Tape()
        let status = pthread_setspecific(key, Unmanaged.passRetained(tape).toOpaque())
        check(status == 0, "Tape: cannot keep this thread's tape (pthread_setspecific: \(status))")
        return tape
    }

    /// Number of ops recorded, not yet consumed by a backward pass, whose results are still reachable.
    public var count: Int { entries.reduce(0) { $0 + ($1.step == nil ? 0 : 1) } }

    /// Forgets every recorded op (for example after an evaluation that recorded by mistake).
    public func reset() {
        entries.removeAll()
        compactedCount = 0
    }

    func append(_ step: any BackwardStep) {
        entries.append(TapeEntry(step: step))
        if entries.count >= 2 * max(compactedCount, 512) {
            entries.removeAll { $0.step == nil }
            compactedCount = entries.count
        }
    }

    /// Takes all entries off the tape, for a backward pass.
    func takeEntries() -> [TapeEntry] {
        defer { reset() }
        return entries
    }
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
    ///   - result: the op's output, computed without recording.
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
        node.pushBack = { node in
            guard let g = node.grad else { return }
            node.grad = nil
            let grads = vjp(Tensor(shape: node.shape, scalars: g))
            for (inputNode, grad) in zip(inputNodes, grads) {
                if let inputNode, let grad { inputNode.accumulate(grad) }
            }
        }
        tape.append(node)
        return out
    }

    /// Back-propagates from this tensor, seeded with `seed` (default: ones, which for a scalar loss is d loss).
    ///
    /// Gradients accumulate into the leaves (read them with `grad`); the tape is released afterwards.
    public func backward(seed: Tensor? = nil) {
        guard let node else {
            fatalError("backward: the tensor of shape \(shape) does not require a gradient")
        }
        let seed = seed ?? Tensor(repeating: 1, shape: shape)
        check(seed.shape == shape, "backward: seed shape \(seed.shape) differs from tensor shape \(shape)")
        let tape = Tape.current
        // A result's op is on the tape until a backward pass or reset consumes it; without it nothing would flow.
        check(node.isLeaf || (node.pushBack != nil && tape.entries.last(where: { $0.step === node }) != nil),
              "backward: the graph of the tensor of shape \(shape) was already consumed by a backward pass "
              + "or Tape.reset(), or was recorded on another thread; recompute it")
        let previous = tape.isRecording
        tape.isRecording = false
        defer { tape.isRecording = previous }
        node.accumulate(seed)
        // Hold every live node for the pass: running a node's step releases what it captured, which may be the last
        // reference to a node further down the tape.
        let steps = tape.takeEntries().compactMap(\.step)
        for step in steps.reversed() { step.propagate() }
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
