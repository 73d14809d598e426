import Foundation

// MARK: - Einops patterns: parsing, planning and the plan cache
//
// A pattern such as "b (h p1) (w p2) c -> b h w (p1 p2 c)" names the axes of the input (left of "->") and of the
// result (right of "->"). Each side is a list of dimensions; a dimension is an axis name, a parenthesised group of
// names whose sizes multiply to the dimension's size, `1` or `()` for a unit dimension, or `...` for any number of
// axes. `EinopsPlan` turns a pattern, for one input rank and one set of given axis names, into the short sequence of
// movement and reduction ops that carries it out; plans are cached, so a pattern is parsed once.

/// The error thrown for a pattern that cannot be applied: bad syntax, axes that do not match between the sides, sizes
/// that are missing or do not fit the input's shape. Its description quotes the pattern and says what is wrong.
public struct EinopsError: Error, CustomStringConvertible, Sendable {
    /// "rearrange", "repeat" or "reduce".
    public let operation: String
    /// The pattern as given.
    public let pattern: String
    /// What is wrong, in words.
    public let reason: String

    /// An error for `operation` ("rearrange", "repeat", "reduce") on `pattern`, with the reason.
    public init(operation: String, pattern: String, reason: String) {
        self.operation = operation
        self.pattern = pattern
        self.reason = reason
    }

    /// `einops <operation> "<pattern>": <reason>`.
    public var description: String { "einops \(operation) \"\(pattern)\": \(reason)" }
}

/// The operation a pattern drives; it decides which axes may appear on one side only.
enum EinopsOperation: String, Hashable, Sendable {
    /// Every axis on both sides.
    case rearrange
    /// Axes may be added on the right (their sizes given by name or as numbers), none dropped.
    case `repeat`
    /// Axes may be dropped on the right (reduced over), none added.
    case reduce
}

// MARK: - One side of a pattern

/// One side of a pattern as written.
struct EinopsSide: Sendable {
    enum Atom: Hashable, Sendable {
        /// A named axis.
        case named(String)
        /// An axis of a fixed size written as a number greater than 1 (a number 1 is a unit dimension instead).
        case anonymous(Int)
        /// `...`: the axes not named elsewhere on the side.
        case ellipsis
    }

    /// One dimension: a single atom, or a parenthesised group of them (possibly empty, a unit dimension).
    struct Dimension: Sendable {
        var atoms: [Atom]
        var isGroup: Bool

        /// True for a bare `...`, which stands for any number of dimensions.
        var isBareEllipsis: Bool { !isGroup && atoms == [.ellipsis] }

        var text: String {
            let inner = atoms.map(\.text).joined(separator: " ")
            return isGroup ? "(\(inner))" : inner
        }
    }

    var dimensions: [Dimension]

    var atoms: [Atom] { dimensions.flatMap(\.atoms) }
    var names: [String] { atoms.compactMap { if case .named(let n) = $0 { return n } else { return nil } } }
    var anonymousSizes: [Int] { atoms.compactMap { if case .anonymous(let v) = $0 { return v } else { return nil } } }
    var hasEllipsis: Bool { atoms.contains(.ellipsis) }
    var hasGroupedEllipsis: Bool { dimensions.contains { $0.isGroup && $0.atoms.contains(.ellipsis) } }

    /// Parses one side; `fail` makes the error to throw from a reason.
    static func parse(_ text: Substring, side: String, fail: (String) -> EinopsError) throws -> EinopsSide {
        var dimensions: [Dimension] = []
        var group: [Atom]? = nil
        var token = ""
        var seenNames = Set<String>()
        var seenEllipsis = false

        func flush() throws {
            guard !token.isEmpty else { return }
            let atom = try atom(for: token, side: side, fail: fail)
            token = ""
            switch atom {
            case .anonymous(1):
                // A unit dimension on its own; inside a group it contributes nothing.
                if group == nil { dimensions.append(Dimension(atoms: [], isGroup: true)) }
                return
            case .named(let name):
                guard seenNames.insert(name).inserted else {
                    throw fail("axis '\(name)' appears twice on the \(side) side")
                }
            case .ellipsis:
                guard !seenEllipsis else { throw fail("'...' appears more than once on the \(side) side") }
                seenEllipsis = true
            case .anonymous:
                break
            }
            if group != nil { group!.append(atom) } else { dimensions.append(Dimension(atoms: [atom], isGroup: false)) }
        }

        for character in text {
            if character == " " {
                try flush()
            } else if character == "(" {
                try flush()
                guard group == nil else {
                    throw fail("nested parentheses on the \(side) side: a group holds axis names only, one level deep")
                }
                group = []
            } else if character == ")" {
                try flush()
                guard let closed = group else {
                    throw fail("unbalanced parentheses on the \(side) side: ')' without a matching '('")
                }
                dimensions.append(Dimension(atoms: closed, isGroup: true))
                group = nil
            } else if character.isLetter || character.isNumber || character == "_" || character == "." {
                token.append(character)
            } else {
                let shown = character.unicodeScalars.map { $0.escaped(asASCII: true) }.joined()
                throw fail("unexpected character '\(shown)' on the \(side) side (axes are separated by spaces)")
            }
        }
        try flush()
        guard group == nil else { throw fail("unbalanced parentheses on the \(side) side: '(' is never closed") }
        return EinopsSide(dimensions: dimensions)
    }

    /// The atom a space- or parenthesis-delimited token stands for.
    private static func atom(for token: String, side: String, fail: (String) -> EinopsError) throws -> Atom {
        if token == "..." { return .ellipsis }
        if token.contains(".") {
            throw fail("invalid axis name '\(token)' on the \(side) side: dots may only appear as the ellipsis '...'")
        }
        if token.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let value = Int(token) else { throw fail("axis size \(token) on the \(side) side is too large") }
            guard value > 0 else { throw fail("axis size \(token) on the \(side) side must be positive") }
            return .anonymous(value)
        }
        if let problem = EinopsSide.nameProblem(token) {
            throw fail("invalid axis name '\(token)' on the \(side) side: \(problem)")
        }
        return .named(token)
    }

    /// Why `name` is not a valid axis name, or nil when it is: a letter, then letters, digits or underscores, not
    /// starting or ending with an underscore.
    static func nameProblem(_ name: String) -> String? {
        guard let first = name.first else { return "the name is empty" }
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            return "only letters, digits and underscores are allowed"
        }
        if first == "_" || name.last == "_" { return "a name may not start or end with an underscore" }
        guard first.isLetter else { return "a name must start with a letter" }
        return nil
    }
}

extension EinopsSide.Atom {
    var text: String {
        switch self {
        case .named(let name): return name
        case .anonymous(let value): return String(value)
        case .ellipsis: return "..."
        }
    }
}

// MARK: - Plans

/// A pattern lowered, for one input rank and one set of given axis names, to ops on "elementary" axes: the single
/// axes named (or numbered, or covered by `...`) on either side.
///
/// Applying it: infer each elementary axis's size from the input's shape; reshape the input to its elementary axes
/// (splitting groups, dropping unit dimensions); reduce over the axes absent from the right side; permute to the
/// right side's order; insert each new axis as size 1 and expand it; reshape to the right side's dimensions (merging
/// groups). Gradients come from those ops.
final class EinopsPlan: Sendable {
    /// Where an elementary axis's size comes from.
    enum SizeSource: Sendable, Equatable {
        /// From the input dimension that holds it.
        case inferred
        /// From the sizes given by name.
        case given(String)
        /// Written in the pattern as a number.
        case fixed(Int)
    }

    let operation: EinopsOperation
    let pattern: String
    /// Names of the elementary axes, for messages (an axis covered by `...` is "...k").
    let labels: [String]
    let sources: [SizeSource]
    /// The elementary axes of each input dimension, and the dimension as written.
    let inputGroups: [[Int]]
    let inputGroupTexts: [String]
    /// The input's elementary axes are 0..<inputAxisCount, in order; axes past it are new (repeat only).
    let inputAxisCount: Int
    /// Input elementary axes (positions in the elementary reshape) that the right side drops.
    let reducedAxes: [Int]
    /// After reducing: result axis i is remaining axis permutation[i].
    let permutation: [Int]
    /// The right side's elementary axes, in order.
    let outputAxes: [Int]
    /// The elementary axes of each output dimension.
    let outputGroups: [[Int]]

    private init(operation: EinopsOperation, pattern: String, labels: [String], sources: [SizeSource],
                 inputGroups: [[Int]], inputGroupTexts: [String], inputAxisCount: Int, reducedAxes: [Int],
                 permutation: [Int], outputAxes: [Int], outputGroups: [[Int]]) {
        self.operation = operation
        self.pattern = pattern
        self.labels = labels
        self.sources = sources
        self.inputGroups = inputGroups
        self.inputGroupTexts = inputGroupTexts
        self.inputAxisCount = inputAxisCount
        self.reducedAxes = reducedAxes
        self.permutation = permutation
        self.outputAxes = outputAxes
        self.outputGroups = outputGroups
    }

    var hasNewAxes: Bool { outputAxes.contains { $0 >= inputAxisCount } }

    func error(_ reason: String) -> EinopsError {
        EinopsError(operation: operation.rawValue, pattern: pattern, reason: reason)
    }

    // MARK: Building

    /// Parses and checks `pattern` for an input of `shape` (only its rank shapes the plan; the whole shape is quoted
    /// in messages) when the sizes of `givenNames` will be given.
    static func build(pattern: String, operation: EinopsOperation, givenNames: Set<String>,
                      shape: [Int]) throws -> EinopsPlan {
        let fail = { (reason: String) in EinopsError(operation: operation.rawValue, pattern: pattern, reason: reason) }
        func list(_ items: [String]) -> String { items.map { "'\($0)'" }.joined(separator: ", ") }

        // Split at the arrow and parse both sides.
        let parts = pattern.components(separatedBy: "->")
        guard parts.count == 2 else {
            throw fail(parts.count < 2 ? "missing '->' between the input and output sides"
                                       : "'->' appears more than once")
        }
        let left = try EinopsSide.parse(Substring(parts[0]), side: "left", fail: fail)
        let right = try EinopsSide.parse(Substring(parts[1]), side: "right", fail: fail)

        // Ellipsis rules.
        if right.hasEllipsis && !left.hasEllipsis { throw fail("'...' appears on the right side but not on the left") }
        if left.hasGroupedEllipsis { throw fail("'...' may not be inside parentheses on the left side") }

        // Which axes may appear on one side only.
        let leftNames = left.names + (left.hasEllipsis ? ["..."] : [])
        let rightNames = right.names + (right.hasEllipsis ? ["..."] : [])
        let leftSet = Set(leftNames), rightSet = Set(rightNames)
        switch operation {
        case .rearrange:
            if let size = (left.anonymousSizes + right.anonymousSizes).first {
                throw fail("anonymous axis of size \(size) is not allowed in rearrange (only 1 or () for a unit "
                           + "dimension): name the axis and give its size")
            }
            let leftOnly = leftNames.filter { !rightSet.contains($0) }
            let rightOnly = rightNames.filter { !leftSet.contains($0) }
            if !leftOnly.isEmpty || !rightOnly.isEmpty {
                var pieces: [String] = []
                if !leftOnly.isEmpty { pieces.append("\(list(leftOnly)) only on the left side") }
                if !rightOnly.isEmpty { pieces.append("\(list(rightOnly)) only on the right side") }
                throw fail("every axis must appear on both sides, but \(pieces.joined(separator: " and ")) "
                           + "(use reduce to drop axes, repeat to add them)")
            }
        case .repeat:
            if let size = left.anonymousSizes.first {
                throw fail("anonymous axis of size \(size) on the left side is not allowed in repeat: name the axis")
            }
            let leftOnly = leftNames.filter { !rightSet.contains($0) }
            if !leftOnly.isEmpty {
                throw fail("\(list(leftOnly)) only on the left side: repeat cannot drop axes (use reduce)")
            }
            let unsized = right.names.filter { !leftSet.contains($0) && !givenNames.contains($0) }
            if !unsized.isEmpty {
                throw fail("unknown size for new axis \(list(unsized)): give it, as in [\"\(unsized[0])\": n]")
            }
        case .reduce:
            if let size = right.anonymousSizes.first {
                throw fail("anonymous axis of size \(size) on the right side is not allowed in reduce: reduce cannot "
                           + "create axes (use repeat)")
            }
            let rightOnly = rightNames.filter { !leftSet.contains($0) }
            if !rightOnly.isEmpty {
                throw fail("\(list(rightOnly)) only on the right side: reduce cannot create axes (use repeat)")
            }
        }

        // The given sizes must name axes of the pattern.
        for name in givenNames.sorted() {
            if let problem = EinopsSide.nameProblem(name) {
                throw fail("invalid axis name '\(name)' among the given sizes: \(problem)")
            }
            if !leftSet.contains(name) && !rightSet.contains(name) {
                throw fail("a size is given for axis '\(name)', which the pattern does not use")
            }
        }

        // Match the left side to the input's rank.
        let rank = shape.count
        let fixedDimensions = left.dimensions.count - (left.hasEllipsis ? 1 : 0)
        if left.hasEllipsis {
            guard rank >= fixedDimensions else {
                throw fail("wrong number of dimensions: the left side needs at least \(fixedDimensions), but the "
                           + "input has \(rank) (shape \(shape))")
            }
        } else {
            guard rank == fixedDimensions else {
                throw fail("wrong number of dimensions: the left side has \(fixedDimensions), but the input has "
                           + "\(rank) (shape \(shape))")
            }
        }
        let ellipsisCount = rank - fixedDimensions

        // Elementary axes of the input, in order.
        var labels: [String] = [], sources: [SizeSource] = []
        var indexOfName: [String: Int] = [:]
        var ellipsisAxes: [Int] = []
        func addAxis(_ label: String, _ source: SizeSource) -> Int {
            labels.append(label)
            sources.append(source)
            return labels.count - 1
        }
        var inputGroups: [[Int]] = [], inputGroupTexts: [String] = []
        for dimension in left.dimensions {
            if dimension.isBareEllipsis {
                for k in 0..<ellipsisCount {
                    let axis = addAxis("...\(k)", .inferred)
                    ellipsisAxes.append(axis)
                    inputGroups.append([axis])
                    inputGroupTexts.append("...")
                }
                continue
            }
            var group: [Int] = []
            for atom in dimension.atoms {
                switch atom {
                case .named(let name):
                    let axis = addAxis(name, givenNames.contains(name) ? .given(name) : .inferred)
                    indexOfName[name] = axis
                    group.append(axis)
                case .anonymous(let size):
                    group.append(addAxis(String(size), .fixed(size)))
                case .ellipsis:
                    fatalError("einops: a grouped ellipsis on the left side passed the checks")
                }
            }
            let unknown = group.filter { sources[$0] == .inferred }
            if unknown.count > 1 {
                throw fail("cannot infer the sizes of \(list(unknown.map { labels[$0] })) in \(dimension.text): give "
                           + "the sizes of all but one of them")
            }
            inputGroups.append(group)
            inputGroupTexts.append(dimension.text)
        }
        let inputAxisCount = labels.count

        // Elementary axes of the output: those of the input, and new ones for repeat.
        var outputAxes: [Int] = [], outputGroups: [[Int]] = []
        for dimension in right.dimensions {
            if dimension.isBareEllipsis {
                for axis in ellipsisAxes { outputGroups.append([axis]) }
                outputAxes += ellipsisAxes
                continue
            }
            var group: [Int] = []
            for atom in dimension.atoms {
                switch atom {
                case .named(let name):
                    group.append(indexOfName[name] ?? addAxis(name, .given(name)))
                case .anonymous(let size):
                    group.append(addAxis(String(size), .fixed(size)))
                case .ellipsis:
                    group += ellipsisAxes
                }
            }
            outputGroups.append(group)
            outputAxes += group
        }

        // Reduce over the input axes the output drops, then permute the rest into the output's order.
        let kept = Set(outputAxes)
        let reducedAxes = (0..<inputAxisCount).filter { !kept.contains($0) }
        let remaining = (0..<inputAxisCount).filter { kept.contains($0) }
        var positionAfterReduce = [Int](repeating: -1, count: inputAxisCount)
        for (position, axis) in remaining.enumerated() { positionAfterReduce[axis] = position }
        let permutation = outputAxes.filter { $0 < inputAxisCount }.map { positionAfterReduce[$0] }

        return EinopsPlan(operation: operation, pattern: pattern, labels: labels, sources: sources,
                          inputGroups: inputGroups, inputGroupTexts: inputGroupTexts, inputAxisCount: inputAxisCount,
                          reducedAxes: reducedAxes, permutation: permutation, outputAxes: outputAxes,
                          outputGroups: outputGroups)
    }

    // MARK: Sizes

    /// The size of every elementary axis for an input of `shape` (whose rank the plan was built for) and the given
    /// sizes (whose names the plan was built for).
    func axisSizes(shape: [Int], given: [String: Int]) throws -> [Int] {
        var sizes = [Int](repeating: -1, count: sources.count)
        for (axis, source) in sources.enumerated() {
            switch source {
            case .inferred: break
            case .fixed(let size): sizes[axis] = size
            case .given(let name):
                let size = given[name]!
                guard size >= 0 else { throw error("the size given for axis '\(name)' is negative (\(size))") }
                sizes[axis] = size
            }
        }
        for (dimension, group) in inputGroups.enumerated() {
            let size = shape[dimension]
            let text = inputGroupTexts[dimension]
            let known = group.filter { sizes[$0] >= 0 }
            let knownProduct = known.reduce(1) { $0 * sizes[$1] }
            let knownText = known.map { "\(labels[$0]) = \(sizes[$0])" }.joined(separator: ", ")
            if let unknown = group.first(where: { sizes[$0] < 0 }) {
                guard knownProduct > 0, size % knownProduct == 0 else {
                    throw error("dimension \(dimension) of the input (shape \(shape)) has size \(size), which "
                                + "\(text) cannot split: it is not divisible by \(knownProduct) (\(knownText))")
                }
                sizes[unknown] = size / knownProduct
            } else if knownProduct != size {
                let what: String
                if group.isEmpty {
                    what = "a unit dimension (1 or ()) must have size 1"
                } else if group.count == 1, case .fixed = sources[group[0]] {
                    what = "the pattern fixes it at \(knownProduct)"
                } else if group.count == 1 {
                    what = "axis '\(labels[group[0]])' is given size \(knownProduct)"
                } else {
                    what = "the sizes of \(text) multiply to \(knownProduct) (\(knownText))"
                }
                throw error("dimension \(dimension) of the input (shape \(shape)) has size \(size), but \(what)")
            }
        }
        return sizes
    }
}

// MARK: - The plan cache

/// Plans by pattern, operation, names of the given sizes and input rank, shared by all threads.
final class EinopsPlanCache: @unchecked Sendable {
    struct Key: Hashable {
        let pattern: String
        let operation: EinopsOperation
        let givenNames: [String]
        let rank: Int
    }

    static let shared = EinopsPlanCache()

    /// Past this many plans the cache starts afresh (patterns are few in practice; this bounds misuse).
    let capacity: Int
    private var plans: [Key: EinopsPlan] = [:]
    private var hitCount = 0, missCount = 0
    private let lock = NSLock()

    init(capacity: Int = 1024) { self.capacity = capacity }

    /// The cached plan for a pattern applied to an input of `shape`, building it on a miss. Failed builds throw and
    /// are not cached.
    func plan(_ pattern: String, _ operation: EinopsOperation, givenNames: [String], shape: [Int]) throws -> EinopsPlan {
        let key = Key(pattern: pattern, operation: operation, givenNames: givenNames.sorted(), rank: shape.count)
        lock.lock()
        if let plan = plans[key] {
            hitCount += 1
            lock.unlock()
            return plan
        }
        missCount += 1
        lock.unlock()

        let built = try EinopsPlan.build(pattern: pattern, operation: operation, givenNames: Set(givenNames),
                                         shape: shape)
        lock.lock()
        defer { lock.unlock() }
        if let raced = plans[key] { return raced }  // another thread built it meanwhile: keep one plan per key
        if plans.count >= capacity { plans.removeAll(keepingCapacity: true) }
        plans[key] = built
        return built
    }

    /// Whether a plan for `key` is cached.
    func contains(_ key: Key) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return plans[key] != nil
    }

    /// Lookups answered from the cache and lookups that had to build, so far.
    var statistics: (hits: Int, misses: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (hitCount, missCount)
    }
}
