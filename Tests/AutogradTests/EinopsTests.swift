import Foundation
import XCTest
@testable import Autograd

/// One reference case: the op, its pattern and sizes, and its tensors by name.
private struct EinopsReferenceCase {
    var op: String
    var pattern: String
    var axes: [String: Int]
    /// The reduction of a "reduce" case, when the file names one.
    var reduction: String?
    var tensors: [String: Tensor<Float>]
}

private struct EinopsReferenceError: Error, CustomStringConvertible {
    let description: String
}

/// Reads a reference case: an 8-byte little-endian header length, a JSON header, then little-endian F32 data.
private func einopsReferenceCase(_ url: URL) throws -> EinopsReferenceCase {
    let data = try Data(contentsOf: url)
    func fail(_ what: String) -> EinopsReferenceError {
        EinopsReferenceError(description: "\(url.lastPathComponent): \(what)")
    }
    guard data.count >= 8 else { throw fail("shorter than its header length") }
    let bytes = [UInt8](data)
    let headerLength = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
    guard 8 + headerLength <= bytes.count,
          let header = try JSONSerialization.jsonObject(with: Data(bytes[8 ..< 8 + headerLength])) as? [String: Any]
    else { throw fail("unreadable header") }
    let dataStart = 8 + headerLength

    let metadata = header["__metadata__"] as? [String: String] ?? [:]
    guard let op = metadata["op"], var pattern = metadata["pattern"] else { throw fail("no op or pattern") }
    // The pattern is stored as it is; accept a JSON-encoded string as well.
    if pattern.hasPrefix("\""),
       let decoded = try? JSONSerialization.jsonObject(with: Data(pattern.utf8), options: .fragmentsAllowed) as? String {
        pattern = decoded
    }
    var axes: [String: Int] = [:]
    if let text = metadata["axes"], !text.isEmpty {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw fail("axes \(text) is not a JSON object")
        }
        for (name, value) in object {
            guard let size = (value as? NSNumber)?.intValue else { throw fail("axis \(name) has no integer size") }
            axes[name] = size
        }
    }
    var reduction = metadata["reduction"]
    if let text = reduction, text.hasPrefix("\""),
       let decoded = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed) as? String {
        reduction = decoded
    }

    var tensors: [String: Tensor<Float>] = [:]
    for (name, value) in header where name != "__metadata__" {
        guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
              let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
        else { throw fail("bad entry \(name)") }
        guard dtype == "F32" else { continue }
        let begin = dataStart + offsets[0], end = dataStart + offsets[1]
        let count = shape.reduce(1, *)
        guard end <= bytes.count, end - begin == 4 * count else { throw fail("entry \(name) has the wrong size") }
        let scalars = (0..<count).map { i -> Float in
            let p = begin + 4 * i
            let bits = UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16
                | UInt32(bytes[p + 3]) << 24
            return Float(bitPattern: bits)
        }
        tensors[name] = Tensor(shape: shape, scalars: scalars)
    }
    return EinopsReferenceCase(op: op, pattern: pattern, axes: axes, reduction: reduction, tensors: tensors)
}

final class EinopsTests: XCTestCase {
    // MARK: - Helpers

    private func tensor(_ shape: [Int]) -> Tensor<Double> {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map(Double.init))
    }

    /// Asserts that `body` throws an `EinopsError` whose description quotes `pattern` and contains each of `phrases`.
    private func assertEinopsError(_ pattern: String, _ phrases: [String], file: StaticString = #filePath,
                                   line: UInt = #line, _ body: (String) throws -> Tensor<Double>) {
        do {
            let result = try body(pattern)
            XCTFail("\"\(pattern)\" was accepted, giving shape \(result.shape)", file: file, line: line)
        } catch let error as EinopsError {
            let message = error.description
            XCTAssertTrue(message.contains("\"\(pattern)\""), "message does not quote the pattern: \(message)",
                          file: file, line: line)
            for phrase in phrases {
                XCTAssertTrue(message.contains(phrase), "message lacks \"\(phrase)\": \(message)", file: file, line: line)
            }
        } catch {
            XCTFail("\"\(pattern)\" threw \(error), not an EinopsError", file: file, line: line)
        }
    }

    private func assertClose(_ actual: Tensor<Float>, _ expected: Tensor<Float>, relative: Float, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, "\(what): shape", file: file, line: line)
        guard actual.shape == expected.shape else { return }
        let scale = Swift.max(1e-30, expected.scalars.map(abs).max() ?? 0)
        let worst = zip(actual.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, relative * scale, "\(what): largest difference \(worst)", file: file, line: line)
    }

    // MARK: - Reference cases

    func testReferenceCases() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let directory = root.deletingLastPathComponent().appendingPathComponent("shared/reference")
        guard FileManager.default.fileExists(atPath: directory.path) else {
            throw XCTSkip("reference cases not found at \(directory.path)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { name in
            name.hasSuffix(".safetensors")
                && ["rearrange_", "repeat_", "reduce_"].contains { name.hasPrefix($0) }
        }.sorted()
        XCTAssertFalse(files.isEmpty, "no rearrange_* or repeat_* cases in \(directory.path)")

        for file in files {
            let reference = try einopsReferenceCase(directory.appendingPathComponent(file))
            let what = "\(file) \(reference.op) \"\(reference.pattern)\" \(reference.axes)"
            print("einops reference case: \(what)")
            guard let input = reference.tensors["input"], let output = reference.tensors["output"] else {
                XCTFail("\(what): no input or output")
                continue
            }
            if reference.op == "reduce", EinopsReduction(rawValue: reference.reduction ?? "") == nil {
                print("  skipped: reduction \(reference.reduction ?? "(none)") not supported")
                continue
            }
            guard ["rearrange", "repeat", "reduce"].contains(reference.op) else {
                XCTFail("\(what): unexpected op")
                continue
            }
            Tape.current.reset()
            let x = input.requiringGradient()
            let y = try x.applyingReference(reference)
            assertClose(y, output, relative: 1e-6, "\(what) forward")

            if let seed = reference.tensors["grad.output"], let expected = reference.tensors["grad.input"] {
                y.backward(seed: seed)
                guard let grad = x.grad else {
                    XCTFail("\(what): no gradient reached the input")
                    continue
                }
                assertClose(grad, expected, relative: 1e-5, "\(what) backward")
            }
            Tape.current.reset()
        }
    }

    // MARK: - Values

    func testRearrangeSplitsPermutesAndMerges() throws {
        let x = tensor([2, 6])
        let y = try x.rearranged("a (b c) -> c (a b)", ["c": 2])
        XCTAssertEqual(y.shape, [2, 6])
        // y[c, a * 3 + b] = x[a, b * 2 + c]
        XCTAssertEqual(y.scalars, [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11])
        XCTAssertEqual(try x.rearranged("a b -> b a").scalars, x.transposed().scalars)
    }

    func testEllipsis() throws {
        let x = tensor([2, 3, 4, 5])
        XCTAssertEqual(try x.rearranged("b ... -> b (...)").shape, [2, 60])
        XCTAssertEqual(try x.rearranged("b ... c -> c ... b").shape, [5, 3, 4, 2])
        XCTAssertEqual(try x.rearranged("b ... c -> c ... b").scalars, x.permuted([3, 1, 2, 0]).scalars)
        XCTAssertEqual(try x.rearranged("... -> (...)").scalars, x.scalars)
        // The ellipsis may cover no axes.
        let v = tensor([5])
        XCTAssertEqual(try v.rearranged("... c -> c ...").shape, [5])
        XCTAssertEqual(try v.rearranged("c ... -> (...) c").shape, [1, 5])
        // repeat and reduce with an ellipsis.
        XCTAssertEqual(try x.repeated("... -> k ...", ["k": 2]).shape, [2, 2, 3, 4, 5])
        XCTAssertEqual(try x.reduced("b ... -> b", .sum).scalars, x.sum(axes: [1, 2, 3]).scalars)
        XCTAssertEqual(try x.reduced("... c -> ...", .max).shape, [2, 3, 4])
    }

    func testUnitAxes() throws {
        let x = tensor([2, 3])
        XCTAssertEqual(try x.rearranged("h w -> h w 1").shape, [2, 3, 1])
        XCTAssertEqual(try x.rearranged("h w -> () h () w").shape, [1, 2, 1, 3])
        XCTAssertEqual(try x.rearranged("(1 h) w -> h (w 1)").shape, [2, 3])
        let y = tensor([2, 1, 3])
        XCTAssertEqual(try y.rearranged("h 1 w -> w h").shape, [3, 2])
        XCTAssertEqual(try y.rearranged("h () w -> w h").scalars, x.transposed().scalars)
        XCTAssertEqual(try Tensor<Double>(7).rearranged(" -> 1 1").shape, [1, 1])
        XCTAssertEqual(try x.reduced("a b -> ", .sum).shape, [])
    }

    func testRepeatCopies() throws {
        let x = Tensor<Double>(shape: [2, 2], scalars: [1, 2, 3, 4])
        XCTAssertEqual(try x.repeated("h w -> h w c", ["c": 2]).scalars, [1, 1, 2, 2, 3, 3, 4, 4])
        XCTAssertEqual(try x.repeated("h w -> (r h) w", ["r": 2]).scalars, [1, 2, 3, 4, 1, 2, 3, 4])
        XCTAssertEqual(try x.repeated("h w -> (h r) w", ["r": 2]).scalars, [1, 2, 1, 2, 3, 4, 3, 4])
        XCTAssertEqual(try x.repeated("h w -> h (w 2)").scalars, [1, 1, 2, 2, 3, 3, 4, 4])
        XCTAssertEqual(try x.repeated("h w -> h w 3").shape, [2, 2, 3])
        XCTAssertEqual(try Tensor<Double>(shape: [3], scalars: [1, 2, 3]).repeated("c -> c g", ["g": 2]).scalars,
                       [1, 1, 2, 2, 3, 3])
    }

    func testReduce() throws {
        let x = tensor([1, 1, 4, 4])
        let pooled = try x.reduced("b c (h 2) (w 2) -> b c h w", .max)
        XCTAssertEqual(pooled.shape, [1, 1, 2, 2])
        XCTAssertEqual(pooled.scalars, [5, 7, 13, 15])
        XCTAssertEqual(try x.reduced("b c (h 2) (w 2) -> b c h w", .min).scalars, [0, 2, 8, 10])
        XCTAssertEqual(try x.reduced("b c h w -> b c", .mean).scalars, [7.5])
        XCTAssertEqual(try x.reduced("b c (h h2) w -> w h", .sum, ["h2": 2]).shape, [4, 2])
        XCTAssertEqual(try x.reduced("b c h w -> w h", .sum).scalars, x.reshaped([4, 4]).transposed().scalars)
    }

    // MARK: - Gradients

    /// Finite differences of sum(repeat(x) * w): each element's gradient is the sum of w over its copies.
    func testRepeatGradientFiniteDifferences() throws {
        var generator = SeededRandom(seed: 3)
        let pattern = "h w -> (r h) w c", axes = ["r": 2, "c": 3]
        let x0 = Tensor<Double>.normal(shape: [2, 3], generator: &generator)
        let w = Tensor<Double>.normal(shape: [4, 3, 3], generator: &generator)
        func loss(_ x: Tensor<Double>) throws -> Tensor<Double> { (try x.repeated(pattern, axes) * w).sum() }

        let x = x0.requiringGradient()
        try loss(x).backward()
        let analytic = try XCTUnwrap(x.grad)
        // The sum over the copies, computed independently.
        XCTAssertEqual(analytic.scalars, try w.reduced("(r h) w c -> h w", .sum, ["r": 2]).scalars)

        let eps = 1e-6
        for i in 0..<x0.count {
            var plus = x0.scalars, minus = x0.scalars
            plus[i] += eps
            minus[i] -= eps
            let numeric = try withoutGradients {
                (try loss(Tensor(shape: x0.shape, scalars: plus)).item
                    - loss(Tensor(shape: x0.shape, scalars: minus)).item) / (2 * eps)
            }
            XCTAssertEqual(analytic.scalars[i], numeric, accuracy: 1e-7, "element \(i)")
        }
    }

    func testReduceGradients() throws {
        let x = Tensor<Double>(shape: [2, 4], scalars: [1, 5, 2, 0, 3, 3, -1, 2]).requiringGradient()
        try x.reduced("a (b 2) -> b a", .max).backward(seed: Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))
        // Output [b, a] with seed [[1, 2], [3, 4]]: row 0's maxima 5 and 2 get 1 and 3; row 1's tie 3, 3 shares 2
        // evenly and its maximum 2 gets 4.
        XCTAssertEqual(x.grad!.scalars, [0, 1, 3, 0, 1, 1, 0, 4])

        let y = Tensor<Double>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]).requiringGradient()
        try y.reduced("a b -> a", .mean).backward(seed: Tensor(shape: [2], scalars: [3, 6]))
        XCTAssertEqual(y.grad!.scalars, [1, 1, 1, 2, 2, 2])
    }

    // MARK: - Errors

    func testErrorMessages() {
        let x = tensor([2, 3])
        let flat = tensor([10])
        // Parentheses.
        assertEinopsError("a b) -> a b", ["unbalanced parentheses", "')' without a matching '('"]) {
            try x.rearranged($0)
        }
        assertEinopsError("a (b -> a b", ["unbalanced parentheses", "never closed"]) { try x.rearranged($0) }
        assertEinopsError("a b -> (a b", ["unbalanced parentheses", "right side"]) { try x.rearranged($0) }
        assertEinopsError("((a b)) -> a b", ["nested parentheses"]) { try flat.rearranged($0, ["a": 2]) }
        // The arrow.
        assertEinopsError("a b", ["missing '->'"]) { try x.rearranged($0) }
        assertEinopsError("a b -> b a -> a", ["'->' appears more than once"]) { try x.rearranged($0) }
        // Axes on one side only.
        assertEinopsError("a b -> a", ["'b' only on the left side"]) { try x.rearranged($0) }
        assertEinopsError("a b -> a b c", ["'c' only on the right side"]) { try x.rearranged($0) }
        assertEinopsError("h w -> h", ["'w' only on the left side", "repeat cannot drop axes"]) { try x.repeated($0) }
        assertEinopsError("h w -> h w c", ["'c' only on the right side", "reduce cannot create"]) {
            try x.reduced($0, .sum)
        }
        assertEinopsError("a (b 2) -> a b 2", ["anonymous axis of size 2"]) { try x.rearranged($0) }
        // Duplicates.
        assertEinopsError("a b a -> a b", ["axis 'a' appears twice on the left side"]) { try tensor([2, 3, 2]).rearranged($0) }
        assertEinopsError("h w -> h w c c", ["axis 'c' appears twice on the right side"]) {
            try x.repeated($0, ["c": 2])
        }
        // Sizes.
        assertEinopsError("h w -> h w c", ["unknown size for new axis 'c'"]) { try x.repeated($0) }
        assertEinopsError("(a b) -> a b", ["has size 10", "not divisible by 3", "a = 3"]) {
            try flat.rearranged($0, ["a": 3])
        }
        assertEinopsError("(a b) -> a b", ["cannot infer the sizes of 'a', 'b'"]) { try flat.rearranged($0) }
        assertEinopsError("(a b) -> a b", ["multiply to 12"]) { try flat.rearranged($0, ["a": 3, "b": 4]) }
        assertEinopsError("a b -> b a", ["axis 'a' is given size 3"]) { try x.rearranged($0, ["a": 3]) }
        assertEinopsError("a b -> b a", ["axis 'z', which the pattern does not use"]) { try x.rearranged($0, ["z": 1]) }
        assertEinopsError("a 1 -> a", ["unit dimension"]) { try x.reduced($0, .sum) }
        assertEinopsError("h w -> h w c", ["negative"]) { try x.repeated($0, ["c": -1]) }
        // Number of dimensions.
        assertEinopsError("a b c -> c b a", ["wrong number of dimensions", "left side has 3", "input has 2"]) {
            try x.rearranged($0)
        }
        assertEinopsError("a b ... c -> c b a ...", ["wrong number of dimensions", "at least 3"]) {
            try x.rearranged($0)
        }
        // Ellipsis.
        assertEinopsError("... a ... -> a", ["'...' appears more than once"]) { try x.rearranged($0) }
        assertEinopsError("a -> ... a", ["'...' appears on the right side but not on the left"]) {
            try flat.rearranged($0)
        }
        assertEinopsError("(...) a -> a", ["'...' may not be inside parentheses"]) { try x.rearranged($0) }
        // Axis names.
        assertEinopsError("a 2b -> 2b a", ["invalid axis name '2b'"]) { try x.rearranged($0) }
        assertEinopsError("a _b -> _b a", ["invalid axis name '_b'", "underscore"]) { try x.rearranged($0) }
        assertEinopsError("a b. -> b. a", ["invalid axis name 'b.'", "ellipsis"]) { try x.rearranged($0) }
        assertEinopsError("a b! -> b a", ["unexpected character '!'"]) { try x.rearranged($0) }
        assertEinopsError("a b -> b a", ["invalid axis name '1z' among the given sizes"]) {
            try x.rearranged($0, ["1z": 2])
        }
    }

    func testErrorDescriptionFormat() {
        let error = EinopsError(operation: "rearrange", pattern: "a -> b", reason: "something")
        XCTAssertEqual(error.description, "einops rearrange \"a -> b\": something")
    }

    // MARK: - The plan cache

    func testPlanCacheIsHit() throws {
        let pattern = "cache_p (cache_q r) -> r cache_q cache_p"
        let cache = EinopsPlanCache.shared
        let key = EinopsPlanCache.Key(pattern: pattern, operation: .rearrange, givenNames: ["r"], rank: 2)
        XCTAssertFalse(cache.contains(key))

        let x = tensor([2, 6])
        let first = try x.rearranged(pattern, ["r": 3])
        XCTAssertTrue(cache.contains(key))
        let before = cache.statistics
        let second = try x.rearranged(pattern, ["r": 3])
        XCTAssertGreaterThanOrEqual(cache.statistics.hits, before.hits + 1)
        XCTAssertEqual(first.scalars, second.scalars)

        // The same plan object comes back; other sizes with the same names share it too.
        let plan = try cache.plan(pattern, .rearrange, givenNames: ["r"], shape: [2, 6])
        XCTAssertTrue(plan === (try cache.plan(pattern, .rearrange, givenNames: ["r"], shape: [4, 9])))
        XCTAssertEqual(try tensor([4, 9]).rearranged(pattern, ["r": 3]).shape, [3, 3, 4])
        // Another set of given names, another operation or another rank is another plan.
        XCTAssertFalse(plan === (try cache.plan(pattern, .rearrange, givenNames: ["cache_q"], shape: [2, 6])))
        XCTAssertFalse(plan === (try cache.plan(pattern, .reduce, givenNames: ["r"], shape: [2, 6])))
        let ellipsisPattern = "cache_e ... -> ... cache_e"
        XCTAssertFalse(try cache.plan(ellipsisPattern, .rearrange, givenNames: [], shape: [2, 3])
                       === cache.plan(ellipsisPattern, .rearrange, givenNames: [], shape: [2, 3, 4]))
        // A failed build is not cached.
        XCTAssertThrowsError(try cache.plan("cache_f -> cache_f cache_g", .rearrange, givenNames: [], shape: [2]))
        XCTAssertFalse(cache.contains(.init(pattern: "cache_f -> cache_f cache_g", operation: .rearrange,
                                            givenNames: [], rank: 1)))
    }

    func testPlanCacheFromManyThreads() {
        let patterns = (0..<8).map { "t\($0)a (t\($0)b c) -> c t\($0)b t\($0)a" }
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let pattern = patterns[i % patterns.count]
            let x = Tensor<Float>(shape: [2, 6], scalars: (0..<12).map(Float.init))
            guard let y = try? x.rearranged(pattern, ["c": 2]),
                  y.shape == [2, 3, 2], y.scalars == x.reshaped([2, 3, 2]).permuted([2, 1, 0]).scalars
            else { failures.update { $0 += 1 }; return }
        }
        XCTAssertEqual(failures.value, 0)
        let cache = EinopsPlanCache.shared
        for pattern in patterns {
            XCTAssertTrue(cache.contains(.init(pattern: pattern, operation: .rearrange, givenNames: ["c"], rank: 2)))
        }
    }
}

/// A value shared between threads in a test.
private final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()
    init(_ value: Value) { stored = value }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout Value) -> Void) { lock.lock(); defer { lock.unlock() }; body(&stored) }
}

private extension Tensor where Scalar == Float {
    /// Runs a reference case's op on this tensor.
    func applyingReference(_ reference: EinopsReferenceCase) throws -> Tensor {
        switch reference.op {
        case "repeat": return try repeated(reference.pattern, reference.axes)
        case "reduce": return try reduced(reference.pattern, EinopsReduction(rawValue: reference.reduction!)!,
                                          reference.axes)
        default: return try rearranged(reference.pattern, reference.axes)
        }
    }
}
