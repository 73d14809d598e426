import Foundation
import XCTest
@testable import Autograd

// Access to the PyTorch reference cases (safetensors files with F32 / I64 tensors) for the op tests, read with the
// framework's `SafetensorsFile`.

/// One tensor of a reference case (`shape`, and `floats` with I64 entries converted).
typealias ReferenceTensor = SafetensorsEntry

/// One reference case: its tensors by name and the `__metadata__` strings (`op` and JSON-encoded arguments).
struct ReferenceCase {
    let name: String
    let entries: [String: ReferenceTensor]
    let metadata: [String: String]

    /// The tensor called `name`; fails the test when missing.
    func tensor(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> ReferenceTensor {
        guard let entry = entries[name] else {
            XCTFail("reference case \(self.name) has no tensor \(name)", file: file, line: line)
            throw CocoaError(.fileReadCorruptFile)
        }
        return entry
    }

    /// An integer argument given as "2" or as a list "[1, 2, 2]"; a single value is repeated `count` times.
    func intArgument(_ key: String, count: Int) throws -> [Int] {
        guard let text = metadata[key], let data = text.data(using: .utf8),
              let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            throw CocoaError(.fileReadCorruptFile)
        }
        if let list = value as? [Int] { return list }
        if let single = value as? Int { return [Int](repeating: single, count: count) }
        throw CocoaError(.fileReadCorruptFile)
    }
}

/// The directory of the reference cases: `<package root>/../shared/reference`.
private func referenceDirectory(file: String = #filePath) -> URL {
    URL(fileURLWithPath: file)
        .deletingLastPathComponent()  // AutogradTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .deletingLastPathComponent()
        .appendingPathComponent("shared/reference")
}

/// Loads `<reference dir>/<name>.safetensors`; throws `XCTSkip` when the reference directory is absent.
func loadReferenceCase(_ name: String) throws -> ReferenceCase {
    let directory = referenceDirectory()
    guard FileManager.default.fileExists(atPath: directory.path) else {
        throw XCTSkip("reference cases not found at \(directory.path)")
    }
    let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent("\(name).safetensors"))
    return ReferenceCase(name: name, entries: file.entries, metadata: file.metadata)
}
