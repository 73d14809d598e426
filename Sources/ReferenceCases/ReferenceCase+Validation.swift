import Autograd
import Foundation

// MARK: - Validation of a case before it runs
//
// A case file comes from outside: its arguments and shapes may be anything. The library's ops stop the program on a
// wrong shape or argument (with a message), and a size taken from a case could ask for terabytes; so every case is
// checked here first, against the same rules as the op, and one that cannot run is refused with the reason. The
// output shape an op would give is computed and compared with the case's `output`, which bounds what a run allocates
// by what the file itself holds.

/// A case that cannot run: what is wrong with it.
struct InvalidCase: Error, CustomStringConvertible {
    var reason: String
    var description: String { "cannot run the case: \(reason)" }
}

extension ReferenceCase {
    /// Largest magnitude accepted for an integer argument (stride, padding, kernel, dims, k).
    static let argumentLimit = 1 << 31

    /// Throws `InvalidCase` unless the case's op can run on its tensors and arguments without stopping the program.
    func validate() throws {
        func require(_ condition: Bool, _ reason: @autoclosure () -> String) throws {
            if !condition { throw InvalidCase(reason: "\(op): \(reason())") }
        }
        func shape(_ name: String) throws -> [Int] {
            guard let entry = file.entries[name] else { throw CaseError.missing(name) }
            return entry.shape
        }
        /// An integer argument list, each value within `argumentLimit`.
        func arguments(_ key: String, count: Int, default value: [Int]? = nil) throws -> [Int] {
            let list = try ints(key, count: count, default: value)
            try require(list.allSatisfy { abs($0) <= Self.argumentLimit },
                        "argument \(key) = \(list) is out of range (at most \(Self.argumentLimit) in magnitude)")
            return list
        }
        /// `axis` of a tensor of `rank` made non-negative, or a refusal.
        func axis(_ axis: Int, rank: Int, _ key: String) throws -> Int {
            try require(axis >= -rank && axis < rank, "\(key) \(axis) is out of range for rank \(rank)")
            return axis < 0 ? axis + rank : axis
        }
        /// The output shape the op gives must be the case's.
        func expectOutput(_ computed: [Int]) throws {
            let expected = try shape("output")
            try require(computed == expected, "the case's output has shape \(expected), but its inputs and arguments "
                        + "give \(computed)")
        }

        // Shapes with absurd dimensions (an empty tensor may declare any) would overflow the arithmetic below.
        for name in file.entries.keys.sorted() {
            let dims = file.entries[name]!.shape
            try require(dims.allSatisfy { $0 <= Self.argumentLimit },
                        "tensor \(name) has shape \(dims), a dimension beyond \(Self.argumentLimit)")
        }

        switch op {
        case "adamw":
            let parameter = try shape("param")
            var step = 0
            while file.entries["grad.step\(step)"] != nil {
                let gradient = try shape("grad.step\(step)")
                try require(gradient == parameter, "grad.step\(step) has shape \(gradient), param has \(parameter)")
                step += 1
            }
            return
        case "model":
            let input = try shape("input")
            try require(input.count == 4 && input[0] > 0, "input shape \(input) is not (N, C, H, W)")
            let classes = file.entries["logits"].map { $0.shape.last ?? 0 } ?? 10
            try validateTargets(rows: input[0], classes: classes)
            return
        default:
            break
        }

        // Every other op compares an output and, when given, back-propagates a gradient of the output's shape.
        let output = try shape("output")
        if let seed = file.entries["grad.output"] {
            try require(seed.shape == output, "grad.output has shape \(seed.shape), the output \(output)")
        }

        switch op {
        case "conv2d":
            let x = try shape("input"), w = try shape("weight")
            let s = try arguments("stride", count: 2, default: [1, 1])
            let p = try arguments("padding", count: 2, default: [0, 0])
            let d = try arguments("dilation", count: 2, default: [1, 1])
            try require(x.count == 4 && w.count == 4 && x[1] == w[1],
                        "input shape \(x) (N, Cin, H, W) does not match weight shape \(w) (Cout, Cin, kh, kw)")
            try require(s.allSatisfy { $0 > 0 } && d.allSatisfy { $0 > 0 } && p.allSatisfy { $0 >= 0 },
                        "stride \(s) and dilation \(d) must be positive and padding \(p) not negative")
            if let bias = file.entries["bias"] {
                try require(bias.shape == [w[0]], "bias shape \(bias.shape) does not match weight shape \(w)")
            }
            try require(x[1] > 0 && w[0] > 0 && w[2] > 0 && w[3] > 0, "empty channels or kernel (weight \(w))")
            let reach = (0..<2).map { d[$0] * (w[2 + $0] - 1) + 1 }
            try require((0..<2).allSatisfy { x[2 + $0] + 2 * p[$0] >= reach[$0] },
                        "input shape \(x) is too small for weight shape \(w) with padding \(p) and dilation \(d)")
            try expectOutput([x[0], w[0]] + (0..<2).map { (x[2 + $0] + 2 * p[$0] - reach[$0]) / s[$0] + 1 })
        case "rot90":
            let x = try shape("input")
            _ = try arguments("k", count: 1)
            let dims = try arguments("dims", count: 2, default: [-2, -1])
            let a0 = try axis(dims[0], rank: x.count, "dims"), a1 = try axis(dims[1], rank: x.count, "dims")
            try require(a0 != a1, "dims \(dims) name the same axis twice")
            var rotated = x
            if try ints("k", count: 1)[0] % 2 != 0 { rotated.swapAt(a0, a1) }
            try expectOutput(rotated)
        case "rotate_p4":
            let x = try shape("input")
            _ = try arguments("k", count: 1)
            try require(x.count >= 3 && x[x.count - 3] == 4, "input shape \(x) has no group axis of size 4 at -3")
            try expectOutput(x)
        case "maxpool2d", "maxpool3d":
            let n = op == "maxpool2d" ? 2 : 3
            let x = try shape("input")
            let k = try arguments("kernel", count: n)
            let s = try arguments("stride", count: n, default: k)
            let p = try arguments("padding", count: n, default: Array(repeating: 0, count: n))
            try require(x.count == n + 2, "input shape \(x) is not (N, C, \(n == 2 ? "H, W" : "D, H, W"))")
            try require(k.allSatisfy { $0 > 0 } && s.allSatisfy { $0 > 0 },
                        "kernel \(k) and stride \(s) must be positive")
            try require((0..<n).allSatisfy { p[$0] >= 0 && p[$0] <= k[$0] / 2 },
                        "padding \(p) must be between 0 and half the kernel \(k)")
            try require((0..<n).allSatisfy { x[2 + $0] + 2 * p[$0] >= k[$0] },
                        "input shape \(x) is smaller than the kernel \(k) with padding \(p)")
            try expectOutput(Array(x[0..<2]) + (0..<n).map { (x[2 + $0] + 2 * p[$0] - k[$0]) / s[$0] + 1 })
        case "cross_entropy":
            let x = try shape("input")
            try require(x.count == 2, "input shape \(x) is not (N, C)")
            try validateTargets(rows: x[0], classes: x[1])
            try expectOutput([1])
        case "linear":
            let x = try shape("input"), w = try shape("weight")
            try require(x.count >= 1 && w.count == 2 && x[x.count - 1] == w[1],
                        "input shape \(x) does not match weight shape \(w) (out, in)")
            if let bias = file.entries["bias"] {
                try require(bias.shape == [w[0]], "bias shape \(bias.shape) does not match weight shape \(w)")
            }
            try expectOutput(Array(x.dropLast()) + [w[0]])
        case "matmul":
            let a = try shape("a"), b = try shape("b")
            try require(a.count >= 2 && b.count >= 2, "operands need rank >= 2, got shapes \(a) and \(b)")
            try require(a[a.count - 1] == b[b.count - 2], "inner dimensions differ for shapes \(a) and \(b)")
            try require(b.count == 2 || Array(a.dropLast(2)) == Array(b.dropLast(2)),
                        "batch dimensions differ for shapes \(a) and \(b)")
            try expectOutput(Array(a.dropLast()) + [b[b.count - 1]])
        case "relu":
            try expectOutput(try shape("input"))
        case "log_softmax":
            let x = try shape("input")
            _ = try axis(try arguments("dim", count: 1, default: [-1])[0], rank: x.count, "dim")
            try expectOutput(x)
        case "mean", "sum":
            let x = try shape("input")
            for d in try arguments("dim", count: 0) { _ = try axis(d, rank: x.count, "dim") }
        case "concat", "cat":
            let names = ["a", "b", "c", "d"].filter { file.entries[$0] != nil }
            try require(!names.isEmpty, "no inputs a, b, c, d")
            let shapes = try names.map { try shape($0) }
            let first = shapes[0]
            let a = try axis(try arguments("dim", count: 1)[0], rank: first.count, "dim")
            for (name, s) in zip(names, shapes) {
                try require(s.count == first.count && (0..<s.count).allSatisfy { $0 == a || s[$0] == first[$0] },
                            "input \(name) has shape \(s), which does not fit \(first) off axis \(a)")
            }
            var joined = first
            joined[a] = shapes.reduce(0) { $0 + $1[a] }
            try expectOutput(joined)
        default:
            // rearrange and repeat throw on a pattern that does not fit (and refuse sizes beyond the memory);
            // an unknown op is refused when it runs.
            break
        }
    }

    /// The case's `target`: `rows` class indices, each a whole number in 0..<classes.
    private func validateTargets(rows: Int, classes: Int) throws {
        guard let entry = file.entries["target"] else { throw CaseError.missing("target") }
        let values = entry.doubles
        guard values.count == rows else {
            throw InvalidCase(reason: "\(op): \(values.count) targets for \(rows) rows")
        }
        if let bad = values.firstIndex(where: { !($0 >= 0 && $0 < Double(classes) && $0.rounded() == $0) }) {
            throw InvalidCase(reason: "\(op): target \(bad) is \(values[bad]), not a class index in 0..<\(classes)")
        }
    }
}
