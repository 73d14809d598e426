import Autograd
import Foundation
import ReferenceCases
import XCTest

/// Malformed reference cases are refused before they run, with the reason, instead of stopping the program; and the
/// `reference-check` command prints every line, always prints its summary, fails on a folder without cases and takes
/// a single case file.
final class MalformedReferenceCaseTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("malformed-cases-\(UUID())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: scratch) }

    /// A copy of the reference case `name` with `change` applied, written to the scratch folder as `saveAs`.
    private func variant(of name: String, _ saveAs: String, _ change: (inout SafetensorsFile) -> Void) throws -> URL {
        var file = try SafetensorsFile(contentsOf: try referenceDirectory().appendingPathComponent(name + ".safetensors"))
        change(&file)
        let url = scratch.appendingPathComponent(saveAs + ".safetensors")
        try file.write(to: url)
        return url
    }

    private func zeros(_ shape: [Int]) -> SafetensorsEntry {
        SafetensorsEntry(shape: shape, values: .f32(Array(repeating: 0, count: shape.reduce(1, *))))
    }

    /// Each malformed case and a fragment of the reason it must be refused with.
    private func malformedCases() throws -> [(URL, String)] {
        [
            (try variant(of: "conv2d_0", "conv2d-stride0") { $0.metadata["stride"] = "0" }, "stride [0, 0]"),
            (try variant(of: "conv2d_0", "conv2d-padding-1") { $0.metadata["padding"] = "-1" }, "padding [-1, -1]"),
            (try variant(of: "conv2d_0", "conv2d-shapes") { $0.entries["weight"] = self.zeros([4, 2, 3, 3]) },
             "does not match weight shape [4, 2, 3, 3]"),
            (try variant(of: "conv2d_0", "conv2d-huge-padding") { $0.metadata["padding"] = "1000000000" },
             "the case's output has shape [2, 4, 9, 9]"),
            (try variant(of: "cross_entropy", "ce-target-range") {
                $0.entries["target"] = SafetensorsEntry(shape: [5], values: .i64([0, 1, 2, 3, 10]))
            }, "target 4 is 10.0, not a class index in 0..<10"),
            (try variant(of: "cross_entropy", "ce-target-nan") {
                $0.entries["target"] = SafetensorsEntry(shape: [5], values: .f64([0, .nan, 2, 3, 4]))
            }, "target 1 is nan, not a class index in 0..<10"),
            (try variant(of: "rot90_k1", "rot90-dims") { $0.metadata["dims"] = "[1, 1]" }, "dims [1, 1]"),
            (try variant(of: "maxpool2d_0", "maxpool-kernel0") { $0.metadata["kernel"] = "0" }, "kernel [0, 0]"),
            (try variant(of: "maxpool2d_0", "grad-output-shape") { $0.entries["grad.output"] = self.zeros([2, 3]) },
             "grad.output has shape [2, 3]"),
            (try variant(of: "repeat_0", "repeat-huge") { $0.metadata["axes"] = "{\"g\": 1000000000000}" },
             "of memory this machine has"),
        ]
    }

    func testMalformedCasesAreRefusedWithTheReason() throws {
        for (url, reason) in try malformedCases() {
            let outcome = try ReferenceCase(url: url).run()
            XCTAssertFalse(outcome.passed, url.lastPathComponent)
            let notes = outcome.notes.joined(separator: "; ")
            XCTAssertTrue(notes.contains(reason), "\(url.lastPathComponent): expected \"\(reason)\" in: \(notes)")
        }
    }

    func testCommandPrintsEveryLineAndTheSummary() throws {
        let executable = try referenceCheckURL()
        let cases = try malformedCases()
        let good = scratch.appendingPathComponent("relu.safetensors")
        try FileManager.default.copyItem(at: try referenceDirectory().appendingPathComponent("relu.safetensors"),
                                         to: good)

        // A folder of one good and ten malformed cases: a line for each, the summary, status 1.
        var result = try run(executable, [scratch.path])
        XCTAssertFalse(result.signalled, result.error)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.output.contains("PASS relu (relu)"), result.output)
        for (url, reason) in cases {
            let name = url.deletingPathExtension().lastPathComponent
            XCTAssertTrue(result.output.contains("FAIL \(name) "), "no line for \(name): \(result.output)")
            XCTAssertTrue(result.output.contains(reason), "no reason for \(name): \(result.output)")
        }
        XCTAssertTrue(result.output.hasSuffix("1 passed, \(cases.count) failed\n"), result.output)

        // A single case file.
        result = try run(executable, [good.path])
        XCTAssertEqual(result.status, 0, result.output + result.error)
        XCTAssertTrue(result.output.hasSuffix("1 passed, 0 failed\n"), result.output)

        // A folder without cases checks nothing: a failure that says so.
        let empty = scratch.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        result = try run(executable, [empty.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.error.contains("\(empty.path): no cases found"), result.error)
    }

    private func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, signalled: Bool,
                                                                           output: String, error: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal,
                String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    }
}

/// The `reference-check` executable in the build products directory beside the test bundle; skips when absent.
private func referenceCheckURL() throws -> URL {
    var candidates: [URL] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        candidates.append(bundle.bundleURL.deletingLastPathComponent())
    }
    for directory in candidates {
        let url = directory.appendingPathComponent("reference-check")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    throw XCTSkip("reference-check is not in the build products directory (looked in "
                  + "\(candidates.map(\.path).joined(separator: ", "))); build it with `swift build --build-tests`")
}
