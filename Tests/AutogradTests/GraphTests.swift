import Foundation
import XCTest
@testable import Autograd

/// The graph shapes and tape behaviours that catch autograd bugs: reuse of a value, broadcasting, seeds, ties,
/// accumulation, the tape's lifetime, gradient-free regions, deep chains, detaching, constants, precision and threads.
final class GraphTests: XCTestCase {
    override func setUp() {
        super.setUp()
        Tape.current.reset()
    }

    private func tensor(_ shape: [Int], _ scalars: [Double]) -> Tensor<Double> {
        Tensor(shape: shape, scalars: scalars)
    }

    private func assertClose(_ actual: Tensor<Double>?, _ expected: [Double], tolerance: Double = 1e-12,
                             _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
        guard let actual else { return XCTFail("\(what): no gradient", file: file, line: line) }
        XCTAssertEqual(actual.count, expected.count, "\(what): count", file: file, line: line)
        guard actual.count == expected.count else { return }
        let error = relativeError(actual.scalars, expected)
        XCTAssertLessThanOrEqual(error, tolerance, "\(what): \(actual.scalars) vs \(expected)", file: file, line: line)
    }

    // MARK: - A value used more than once

    func testTensorUsedTwiceInOneOp() {
        let x = tensor([3], [1, -2, 3]).requiringGradient()
        (x * x).sum().backward()
        assertClose(x.grad, [2, -4, 6], "x * x")

        let y = tensor([3], [1, -2, 3]).requiringGradient()
        (y + y).sum().backward()
        assertClose(y.grad, [2, 2, 2], "x + x")

        let z = tensor([3], [1, -2, 3]).requiringGradient()
        (z - z).sum().backward()
        assertClose(z.grad, [0, 0, 0], "x - x")

        let w = tensor([2], [2, 4]).requiringGradient()
        (w / w).sum().backward()
        assertClose(w.grad, [0, 0], "x / x")
    }

    func testIntermediateUsedByTwoBranches() {
        // y = exp(x); loss = sum(y * 3 + log(y)) = sum(3 e^x + x): d/dx = 3 e^x + 1.
        let values: [Double] = [0.5, -1, 2]
        let x = tensor([3], values).requiringGradient()
        let y = x.exp()
        let loss = (y * 3 + y.log()).sum()
        loss.backward()
        assertClose(x.grad, values.map { 3 * Foundation.exp($0) + 1 }, "two branches")
        XCTAssertNil(y.grad, "an intermediate's gradient is not kept")
    }

    /// A non-leaf consumed by an early op and by the last op, with other ops recorded in between: its vjp must run
    /// only after both contributions arrived. Ops are recorded in execution order, so every consumer comes after its
    /// producer and the reverse walk is a topological order.
    func testNonLeafConsumedEarlyAndLate() {
        let values: [Double] = [0.3, -0.7, 1.1]
        let x = tensor([3], values).requiringGradient()
        let h = x * x                  // h = x^2
        let u = h.exp()                // consumer 1 of h
        let v = (u * 2).sqrt()         // unrelated ops in between
        let w = h * v                  // consumer 2 of h, recorded last
        w.sum().backward()
        // w = x^2 sqrt(2 e^{x^2}) = sqrt(2) x^2 e^{x^2 / 2};  dw/dx = sqrt(2) e^{x^2/2} (2x + x^3).
        let expected = values.map { Foundation.sqrt(2) * Foundation.exp($0 * $0 / 2) * (2 * $0 + $0 * $0 * $0) }
        assertClose(x.grad, expected, tolerance: 1e-13, "diamond")
    }

    func testDiamondWithManyPaths() {
        // a -> b, c -> d = b * c -> e = d + a + b: every path from a to e must be counted once.
        let a = tensor([], [1.5]).requiringGradient()
        let b = a * 2
        let c = a * a
        let d = b * c
        let e = d + a + b
        e.backward()
        // e = 2a * a^2 + a + 2a = 2a^3 + 3a: de/da = 6a^2 + 3.
        assertClose(a.grad, [6 * 1.5 * 1.5 + 3])
    }

    // MARK: - Broadcasting

    func testBroadcastBothDirections() {
        let a = tensor([3, 1], [1, 2, 3]).requiringGradient()
        let b = tensor([1, 4], [10, 20, 30, 40]).requiringGradient()
        let y = a + b
        XCTAssertEqual(y.shape, [3, 4])
        XCTAssertEqual(y.scalars, [11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43])
        let seed = tensor([3, 4], (0..<12).map(Double.init))
        y.backward(seed: seed)
        XCTAssertEqual(a.grad?.shape, [3, 1])
        XCTAssertEqual(b.grad?.shape, [1, 4])
        assertClose(a.grad, [0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9 + 10 + 11], "row sums")
        assertClose(b.grad, [0 + 4 + 8, 1 + 5 + 9, 2 + 6 + 10, 3 + 7 + 11], "column sums")
    }

    func testBroadcastMissingLeadingAxes() {
        let a = tensor([4], [1, 2, 3, 4]).requiringGradient()
        let b = tensor([2, 3, 4], (0..<24).map(Double.init)).requiringGradient()
        let seed = tensor([2, 3, 4], (0..<24).map { Double($0 % 5) - 2 })
        (a * b).backward(seed: seed)
        XCTAssertEqual(a.grad?.shape, [4])
        var expectedA = [Double](repeating: 0, count: 4)
        for i in 0..<24 { expectedA[i % 4] += seed.scalars[i] * b.scalars[i] }
        assertClose(a.grad, expectedA, "a: summed over the two leading axes")
        assertClose(b.grad, (0..<24).map { seed.scalars[$0] * a.scalars[$0 % 4] }, "b")
    }

    func testBroadcastMultiplicationMatchesSmallExample() {
        let a = tensor([2, 3], [1, 2, 3, 4, 5, 6]).requiringGradient()
        let b = tensor([3], [10, 20, 30]).requiringGradient()
        ((a + b) * a).sum().backward()
        // d/da = 2a + b, d/db = sum over rows of a.
        assertClose(a.grad, [12, 24, 36, 18, 30, 42])
        assertClose(b.grad, [5, 7, 9])
    }

    // MARK: - Seeds

    func testNonScalarSeed() {
        let x = tensor([2, 3], [1, 2, 3, 4, 5, 6]).requiringGradient()
        let seed = tensor([2, 3], [0.5, -1, 2, 0, 3, -0.25])
        (x * x * 3).backward(seed: seed)
        assertClose(x.grad, (0..<6).map { 6 * x.scalars[$0] * seed.scalars[$0] })
    }

    func testDefaultSeedIsOnes() {
        let x = tensor([2, 2], [1, 2, 3, 4]).requiringGradient()
        (x * 5).backward()
        assertClose(x.grad, [5, 5, 5, 5])
    }

    func testBackwardFromALeaf() {
        let x = tensor([2], [1, 2]).requiringGradient()
        x.backward(seed: tensor([2], [3, 4]))
        assertClose(x.grad, [3, 4])
        XCTAssertEqual(Tape.current.count, 0)
    }

    // MARK: - Kinks and ties

    func testReluAtZeroHasZeroGradient() {
        let x = tensor([5], [-1, 0, 2, -0.0, 1e-300]).requiringGradient()
        x.relu().sum().backward()
        assertClose(x.grad, [0, 0, 1, 0, 1])
    }

    func testMaximumTieSplitsGradient() {
        let a = tensor([4], [1, 2, 3, -1]).requiringGradient()
        let b = tensor([4], [1, 0, 3, 5]).requiringGradient()
        Tensor.maximum(a, b).backward(seed: tensor([4], [2, 2, 4, 2]))
        assertClose(a.grad, [1, 2, 2, 0], "a")
        assertClose(b.grad, [1, 0, 2, 2], "b")

        // maximum(x, x) is x: the two halves add up to 1.
        let x = tensor([3], [1, -2, 0]).requiringGradient()
        Tensor.maximum(x, x).sum().backward()
        assertClose(x.grad, [1, 1, 1], "maximum(x, x)")

        // A tie against a broadcast scalar: relu written as maximum(x, 0) has gradient 0.5 at 0.
        let y = tensor([3], [-1, 0, 1]).requiringGradient()
        Tensor.maximum(y, Tensor(0)).sum().backward()
        assertClose(y.grad, [0, 0.5, 1], "maximum(x, 0)")

        // A broadcast operand collects its share from every tie.
        let c = tensor([1], [2]).requiringGradient()
        Tensor.maximum(tensor([3], [2, 1, 2]), c).sum().backward()
        assertClose(c.grad, [0.5 + 1 + 0.5], "broadcast tie")
    }

    func testMaxReductionTiesShareGradient() {
        let x = tensor([2, 3], [1, 3, 3, 4, 4, 4]).requiringGradient()
        x.max(axes: [1]).backward(seed: tensor([2], [1, 6]))
        assertClose(x.grad, [0, 0.5, 0.5, 2, 2, 2])
    }

    // MARK: - Accumulation and clearing

    func testGradientsAccumulateOverTwoBackwardPasses() {
        let x = tensor([3], [1, 2, 3]).requiringGradient()
        (x * x).sum().backward()
        (x * x).sum().backward()
        assertClose(x.grad, [4, 8, 12])
        (x * 10).sum().backward()
        assertClose(x.grad, [14, 18, 22])
    }

    func testZeroGradientClears() {
        let x = tensor([3], [1, 2, 3]).requiringGradient()
        (x * x).sum().backward()
        XCTAssertNotNil(x.grad)
        x.zeroGradient()
        XCTAssertNil(x.grad)
        (x * 3).sum().backward()
        assertClose(x.grad, [3, 3, 3], "after clearing")
        // A copy of the value is the same variable: it sees and clears the same gradient.
        let copy = x
        assertClose(copy.grad, [3, 3, 3], "copy")
        copy.zeroGradient()
        XCTAssertNil(x.grad)
    }

    func testRequiringGradientMakesANewVariable() {
        let x = tensor([2], [1, 2]).requiringGradient()
        let y = x.requiringGradient()
        (y * 2).sum().backward()
        XCTAssertNil(x.grad)
        assertClose(y.grad, [2, 2])
    }

    // MARK: - The tape's lifetime

    func testTapeIsReleasedAfterBackward() {
        let x = tensor([2, 2], [1, 2, 3, 4]).requiringGradient()
        let loss = (x.exp() * x).sum()
        XCTAssertGreaterThanOrEqual(Tape.current.count, 3)
        loss.backward()
        XCTAssertEqual(Tape.current.count, 0)
    }

    /// Backward records nothing: a custom op's vjp, which runs other ops on tensors that require gradients, sees an
    /// empty tape with recording off, and its results are untracked.
    func testBackwardDoesNotRecord() {
        let x = tensor([3], [1, 2, 3]).requiringGradient()
        let w = tensor([3], [4, 5, 6]).requiringGradient()
        var observed: (count: Int, recording: Bool, tracked: Bool)?
        func scaled(_ t: Tensor<Double>) -> Tensor<Double> {
            Tensor.record(withoutGradients { t * w }, inputs: [t]) { g in
                let inner = (g * w).exp().log()
                observed = (Tape.current.count, Tape.current.isRecording, inner.requiresGradient)
                return [inner]
            }
        }
        let loss = scaled(x).sum()
        XCTAssertGreaterThanOrEqual(Tape.current.count, 2)
        loss.backward()
        XCTAssertEqual(observed?.count, 0)
        XCTAssertEqual(observed?.recording, false)
        XCTAssertEqual(observed?.tracked, false)
        XCTAssertEqual(Tape.current.count, 0)
        XCTAssertTrue(Tape.current.isRecording, "recording resumes after backward")
        assertClose(x.grad, [4, 5, 6])
        XCTAssertNil(w.grad, "w was used only inside the vjp")
    }

    func testBackwardConsumesTheWholeTape() {
        let x = tensor([2], [1, 2]).requiringGradient()
        let other = (x * 7).sum()          // recorded, then never back-propagated
        let recordedBefore = Tape.current.count
        let loss = (x * 3).sum()
        XCTAssertGreaterThan(recordedBefore, 0)
        XCTAssertGreaterThan(Tape.current.count, recordedBefore)
        loss.backward()
        XCTAssertEqual(Tape.current.count, 0)
        assertClose(x.grad, [3, 3], "only loss's graph contributes")
        _ = other
    }

    /// An intermediate's node is kept alive by the tape until backward, and freed after it (nothing else holds it).
    func testNodesAreFreedAfterBackward() {
        weak var intermediate: GradNode<Double>?
        weak var root: GradNode<Double>?
        let x = tensor([3], [1, 2, 3]).requiringGradient()
        do {
            let h = x.exp() * x
            intermediate = h.node
            let loss = h.sum()
            root = loss.node
            loss.backward()
        }
        XCTAssertNil(intermediate, "intermediate node retained after backward")
        XCTAssertNil(root, "root node retained after backward")
        XCTAssertNotNil(x.grad)

        do {
            let h = x * 2
            intermediate = h.node
        }
        XCTAssertNil(intermediate, "a result nobody holds is freed without a backward pass")
        XCTAssertEqual(Tape.current.count, 0, "the tape does not keep a dropped graph alive")

        var kept: Tensor<Double>? = x * 2
        intermediate = kept?.node
        XCTAssertEqual(Tape.current.count, 1)
        Tape.current.reset()
        XCTAssertNotNil(intermediate, "the tensor still holds its node")
        kept = nil
        XCTAssertNil(intermediate, "and it goes with the tensor")
    }

    // MARK: - Regions without gradients

    func testWithoutGradientsRecordsNothing() {
        let x = tensor([2, 3], [1, 2, 3, 4, 5, 6]).requiringGradient()
        let results: [Tensor<Double>] = withoutGradients {
            XCTAssertFalse(Tape.current.isRecording)
            return [x + x, x * 2, -x, x.exp(), x.sum(), x.max(axes: [1]), x.reshaped([3, 2]), x.transposed(),
                    x.flipped([0]), x.rotated90(1), x.sliced(axis: 1, 0..<2), x.padded(before: [1, 0], after: [0, 1]),
                    Tensor.concatenated([x, x], axis: 0), Tensor.stacked([x, x]), x.expanded(to: [2, 2, 3]),
                    try! x.rearranged("a b -> b a")]
        }
        XCTAssertEqual(Tape.current.count, 0)
        XCTAssertTrue(Tape.current.isRecording)
        for (i, r) in results.enumerated() { XCTAssertFalse(r.requiresGradient, "result \(i)") }
    }

    /// Ops that leave their input unchanged (an identity reshape, permutation, flip, quarter-turn count, slice, pad
    /// or expand) still give an untracked result inside `withoutGradients`.
    func testWithoutGradientsIdentityOpsAreUntracked() {
        let x = tensor([2, 3], [1, 2, 3, 4, 5, 6]).requiringGradient()
        let results: [Tensor<Double>] = withoutGradients {
            [x.reshaped([2, 3]), x.permuted([0, 1]), x.transposed(1, 1), x.flipped([]), x.rotated90(4),
             x.rotated90(0, axes: (0, 1)), x.sliced(lower: [0, 0], upper: [2, 3]),
             x.padded(before: [0, 0], after: [0, 0]), x.expanded(to: [2, 3]), x.sum(toShape: [2, 3]),
             try! x.rearranged("a b -> a b")]
        }
        XCTAssertEqual(Tape.current.count, 0)
        for (i, r) in results.enumerated() {
            XCTAssertFalse(r.requiresGradient, "result \(i)")
            XCTAssertEqual(r.scalars, x.scalars, "result \(i)")
        }
        // While recording, identity ops keep the variable: gradients flow straight to x.
        let y = x.reshaped([2, 3]).rotated90(4).flipped([])
        XCTAssertTrue(y.requiresGradient)
        (y * 2).sum().backward()
        assertClose(x.grad, [2, 2, 2, 2, 2, 2])
    }

    func testWithoutGradientsNestsAndRestores() {
        struct Failure: Error {}
        withoutGradients {
            withoutGradients { XCTAssertFalse(Tape.current.isRecording) }
            XCTAssertFalse(Tape.current.isRecording, "the inner region restores the outer state")
        }
        XCTAssertTrue(Tape.current.isRecording)
        XCTAssertThrowsError(try withoutGradients { () throws -> Int in throw Failure() })
        XCTAssertTrue(Tape.current.isRecording, "restored after a throw")
        let x = tensor([1], [2]).requiringGradient()
        XCTAssertTrue((x * 2).requiresGradient, "recording resumes")
    }

    // MARK: - Depth

    /// 10 000 recorded ops back-propagate through a loop, not recursion, and are freed without deep recursion.
    func testDeepChain() {
        let x = tensor([2], [0.5, -0.25]).requiringGradient()
        var y = x
        for i in 0..<5_000 {
            y = i % 2 == 0 ? y * 1.0001 : y + 0.001
            y = y - 0.0005
        }
        XCTAssertEqual(Tape.current.count, 10_000)
        y.sum().backward()
        XCTAssertEqual(Tape.current.count, 0)
        let expected: Double = Foundation.pow(1.0001 as Double, 2_500 as Double)
        assertClose(x.grad, [expected, expected], tolerance: 1e-12)
    }

    // MARK: - Detaching and constants

    func testDetachedCutsTheGraph() {
        let x = tensor([3], [1, 2, 3]).requiringGradient()
        let d = x.detached()
        XCTAssertFalse(d.requiresGradient)
        XCTAssertEqual(d.scalars, x.scalars)
        // loss = sum(stop(x) * x): only the tracked factor contributes, d/dx = x.
        (d * x).sum().backward()
        assertClose(x.grad, [1, 2, 3])
        XCTAssertNil(d.grad)
        // A detached intermediate stops the flow entirely.
        let z = tensor([3], [1, 2, 3]).requiringGradient()
        let cut = (z.exp() * 2).detached()
        let w = tensor([3], [1, 1, 1]).requiringGradient()
        (cut * w).sum().backward()
        XCTAssertNil(z.grad)
        XCTAssertNotNil(w.grad)
    }

    func testConstantsGetNoGradient() {
        let c = tensor([3], [4, 5, 6])
        let x = tensor([3], [1, 2, 3]).requiringGradient()
        XCTAssertFalse(c.requiresGradient)
        XCTAssertFalse((c * c + c.exp()).requiresGradient)
        XCTAssertEqual(Tape.current.count, 0, "ops on constants only are not recorded")
        (c * x + c / x + Tensor.maximum(c, x)).sum().backward()
        XCTAssertNil(c.grad)
        assertClose(x.grad, [4 - 4.0 / 1, 5 - 5.0 / 4, 6 - 6.0 / 9])
    }

    // MARK: - Precision

    /// The same computation in Float and Double agrees to Float precision, values and gradients.
    func testFloatAndDoubleAgree() {
        var generator = SeededRandom(seed: 99)
        let x64 = Tensor<Double>.normal(shape: [4, 5], generator: &generator)
        let w64 = Tensor<Double>.normal(shape: [5], generator: &generator)
        func run<S: TensorScalar>(_ x: Tensor<S>, _ w: Tensor<S>) -> (Tensor<S>, Tensor<S>, Tensor<S>) {
            let (xv, wv) = (x.requiringGradient(), w.requiringGradient())
            let h = (xv * wv).relu() + (xv - wv).exp().sqrt()
            let pooled = Tensor.concatenated([h, h.rotated90(1).transposed()], axis: 0).max(axes: [0])
            let loss = (pooled.pow(2) + 1).log().mean() + h.mean(axes: [1]).sum()
            loss.backward()
            return (loss, xv.grad!, wv.grad!)
        }
        let (l64, gx64, gw64) = run(x64, w64)
        let (l32, gx32, gw32) = run(x64.converted(to: Float.self), w64.converted(to: Float.self))
        XCTAssertLessThan(relativeError(l32.scalars.map(Double.init), l64.scalars), 1e-5)
        XCTAssertLessThan(relativeError(gx32.scalars.map(Double.init), gx64.scalars), 1e-5)
        XCTAssertLessThan(relativeError(gw32.scalars.map(Double.init), gw64.scalars), 1e-5)
    }

    // MARK: - Threads

    /// Each thread has its own tape: a graph built and back-propagated on another thread neither sees nor disturbs
    /// this thread's recorded ops.
    func testTapeIsThreadLocal() {
        let x = tensor([2], [1, 2]).requiringGradient()
        let pending = x * 3
        XCTAssertEqual(Tape.current.count, 1)

        final class Box: @unchecked Sendable {
            var countBefore = -1, countAfter = -1
            var grad: [Double]?
        }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let y = Tensor<Double>(shape: [2], scalars: [1, 2]).requiringGradient()
            box.countBefore = Tape.current.count
            (y * y).sum().backward()
            box.countAfter = Tape.current.count
            box.grad = y.grad?.scalars
            done.signal()
        }
        thread.start()
        done.wait()
        XCTAssertEqual(box.countBefore, 0, "a new thread starts with an empty tape")
        XCTAssertEqual(box.countAfter, 0)
        XCTAssertEqual(box.grad, [2, 4])
        XCTAssertEqual(Tape.current.count, 1, "this thread's tape is untouched")
        pending.sum().backward()
        assertClose(x.grad, [3, 3])
    }

    /// A thread's tape, and the graph it still holds, is released when the thread ends.
    func testThreadTapeIsReleasedWhenTheThreadEnds() {
        final class Box: @unchecked Sendable {
            weak var tape: Tape?
        }
        let box = Box()
        let thread = Thread {
            let y = Tensor<Double>(shape: [2], scalars: [1, 2]).requiringGradient()
            _ = y * y  // left on the tape
            box.tape = Tape.current
        }
        thread.start()
        let deadline = Date().addingTimeInterval(10)
        while (!thread.isFinished || box.tape != nil) && Date() < deadline { usleep(1000) }
        XCTAssertTrue(thread.isFinished)
        XCTAssertNil(box.tape, "the ended thread's tape is still alive")
    }
}
