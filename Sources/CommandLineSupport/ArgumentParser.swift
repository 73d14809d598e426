import Autograd
import Foundation

// The one argument parser of the executables in Examples/: typed flags declared once, `--help` generated from the
// declarations, and every fault (an unknown flag, a missing or bad value) a `UsageError` naming the flag, which
// `parseOrExit` prints before exiting with status 2.

// MARK: - Errors

/// A command-line error: printed with a hint to `--help`, exit status 2.
public struct UsageError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A value a converter refuses; the parser puts the flag in front ("--epochs: '0' is not ...").
public struct ValueError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - Declarations

/// A flag without a value (`--shuffle`): true when given.
public struct Flag: Hashable, Sendable {
    public let name: String
}

/// A flag with a value of type `Value` (`--epochs 5`): nil when not given.
public struct Option<Value>: Hashable, Sendable {
    public let name: String
}

/// Declares a command's flags, parses its arguments and generates its help.
///
/// ```swift
/// let parser = ArgumentParser(command: "bench", overview: "Times the pieces of a training step.")
/// let json = parser.flag("--json", help: "print one JSON object")
/// let repeats = parser.option("--repeats", value: "R", help: "runs per timing", Convert.integer(1...1000))
/// let arguments = parser.parseOrExit(Array(CommandLine.arguments.dropFirst()))
/// if arguments[json] { ... }
/// let r = arguments[repeats] ?? 7
/// ```
public final class ArgumentParser {
    struct Entry {
        var names: [String]
        var value: String?
        var help: String
        /// Converts a value; nil for a flag without one.
        var convert: ((String) throws -> Any)?
    }

    public let command: String
    public let overview: String
    private var entries: [Entry] = []
    private var index: [String: Int] = [:]
    /// Extra text after the options (examples, notes).
    public var epilogue: String?

    public init(command: String, overview: String) {
        self.command = command
        self.overview = overview
    }

    private func declare(_ entry: Entry) {
        for name in entry.names {
            precondition(index[name] == nil, "ArgumentParser: \(name) declared twice")
            index[name] = entries.count
        }
        entries.append(entry)
    }

    /// Declares a flag without a value; `short` is another name for it (e.g. "-v").
    public func flag(_ name: String, short: String? = nil, help: String) -> Flag {
        declare(Entry(names: [name] + (short.map { [$0] } ?? []), value: nil, help: help, convert: nil))
        return Flag(name: name)
    }

    /// Declares a flag with a value, shown as `value` in the help and converted by `convert` (which throws a
    /// `ValueError` for a value it refuses).
    public func option<Value>(_ name: String, value: String, help: String,
                              _ convert: @escaping (String) throws -> Value) -> Option<Value> {
        declare(Entry(names: [name], value: value, help: help, convert: { try convert($0) }))
        return Option(name: name)
    }

    /// A flag with a text value.
    public func option(_ name: String, value: String, help: String) -> Option<String> {
        option(name, value: value, help: help) { $0 }
    }

    // MARK: Parsing

    /// The parsed arguments; throws a `UsageError` naming the flag for an unknown flag, a missing value or a value
    /// its converter refuses. `-h` / `--help` sets `helpRequested` (the other arguments are still checked).
    public func parse(_ arguments: [String]) throws -> ParsedArguments {
        var result = ParsedArguments()
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            if argument == "-h" || argument == "--help" {
                result.helpRequested = true
                continue
            }
            guard let position = index[argument] else {
                throw UsageError("unknown option '\(argument)'")
            }
            let entry = entries[position]
            let name = entry.names[0]
            guard let convert = entry.convert else {
                result.values[name] = true
                continue
            }
            // A value may not look like a flag, except a negative number ("--lr -1" is refused by its converter).
            guard let text = rest.popFirst(), !text.hasPrefix("--") || Double(text) != nil else {
                throw UsageError("\(name) needs a value")
            }
            do {
                result.values[name] = try convert(text)
            } catch let error as ValueError {
                throw UsageError("\(name): \(error.description)")
            } catch {
                throw UsageError("\(name): \(error)")
            }
        }
        return result
    }

    /// `parse`, printing the help and exiting with status 0 for `--help`, or printing the error and exiting with
    /// status 2.
    public func parseOrExit(_ arguments: [String]) -> ParsedArguments {
        do {
            let result = try parse(arguments)
            if result.helpRequested {
                print(help)
                exit(0)
            }
            return result
        } catch {
            usageFailure("\(error)")
        }
    }

    /// Prints `error: MESSAGE` and the hint to `--help` on standard error, and exits with status 2.
    public func usageFailure(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\nRun with --help for the options.\n".utf8))
        exit(2)
    }

    // MARK: Help

    /// The help text: usage, overview and one entry per flag (in declaration order).
    public var help: String {
        var lines = ["USAGE: \(command) [options]", "", overview, "", "OPTIONS:"]
        let width = 30
        for entry in entries + [Entry(names: ["-h", "--help"], value: nil, help: "show this help", convert: nil)] {
            let names = entry.names.count > 1 && entry.names[0] == "-h" ? "-h, --help"
                : entry.names.joined(separator: ", ") + (entry.value.map { " \($0)" } ?? "")
            let helpLines = entry.help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let left = "  " + names
            if left.count + 2 > width {
                lines.append(left)
                lines.append(contentsOf: helpLines.map { String(repeating: " ", count: width) + $0 })
            } else {
                lines.append(left.padding(toLength: width, withPad: " ", startingAt: 0) + helpLines[0])
                lines.append(contentsOf: helpLines.dropFirst().map { String(repeating: " ", count: width) + $0 })
            }
        }
        if let epilogue { lines += ["", epilogue] }
        return lines.joined(separator: "\n")
    }
}

// MARK: - Results

/// Parsed arguments, read by the declarations that made them.
public struct ParsedArguments {
    var values: [String: Any] = [:]
    /// `-h` or `--help` was given.
    public var helpRequested = false

    /// Whether the flag was given.
    public subscript(flag: Flag) -> Bool { values[flag.name] != nil }

    /// The option's value, nil when not given.
    public subscript<Value>(option: Option<Value>) -> Value? { values[option.name] as? Value }

    /// Whether the flag or option named `name` was given.
    public func given(_ name: String) -> Bool { values[name] != nil }
}

// MARK: - Converters

/// Value converters for `ArgumentParser.option`.
public enum Convert {
    /// A whole number in `range`.
    public static func integer(_ range: ClosedRange<Int>) -> (String) throws -> Int {
        { text in
            guard let value = Int(text), range.contains(value) else {
                throw ValueError("'\(text)' is not a whole number "
                                 + (range.upperBound == Int.max ? ">= \(range.lowerBound)"
                                    : "from \(range.lowerBound) to \(range.upperBound)"))
            }
            return value
        }
    }

    /// A whole number >= `minimum`.
    public static func integer(atLeast minimum: Int) -> (String) throws -> Int { integer(minimum...Int.max) }

    /// A finite number >= 0.
    public static func nonNegative(_ text: String) throws -> Double {
        guard let value = Double(text), value.isFinite, value >= 0 else {
            throw ValueError("'\(text)' is not a non-negative number")
        }
        return value
    }

    /// One of `T`'s cases by raw value; the error names the unknown value as a `noun` and lists the valid ones.
    public static func choice<T: RawRepresentable & CaseIterable>(_ type: T.Type, noun: String)
        -> (String) throws -> T where T.RawValue == String {
        { text in
            guard let value = T(rawValue: text) else {
                throw ValueError("unknown \(noun) '\(text)' (\(T.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return value
        }
    }

    /// A comma-separated list of names from `valid` (no repeats); the error names the unknown one and lists the
    /// valid ones.
    public static func list(of valid: [String], noun: String) -> (String) throws -> [String] {
        { text in
            let names = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            for name in names where !valid.contains(name) {
                throw ValueError("unknown \(noun) '\(name)' (valid: \(valid.joined(separator: ", ")))")
            }
            guard Set(names).count == names.count else {
                throw ValueError("a \(noun) is listed twice in '\(text)'")
            }
            return names
        }
    }

    /// A thread count: at least 1 and at most `ThreadLimit.maximum`.
    public static func threads(_ text: String) throws -> Int {
        let limit = ThreadLimit.maximum
        guard let value = Int(text), value >= 1 else {
            throw ValueError("'\(text)' is not a whole number from 1 to \(limit)")
        }
        guard value <= limit else {
            throw ValueError("\(value) threads is more than this machine can use: at most \(limit) "
                             + "(\(ThreadLimit.perCore) per core on \(ThreadLimit.cores) cores, never above "
                             + "\(ThreadLimit.ceiling))")
        }
        return value
    }
}

/// The largest thread count the commands accept: the library's own bound, `Parallel.maximumThreads`
/// (`perCore` threads per core, at most `ceiling`).
public enum ThreadLimit {
    public static let perCore = Parallel.threadsPerCore
    public static let ceiling = Parallel.threadCeiling
    public static var cores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
    public static var maximum: Int { Parallel.maximumThreads }
}
