import Foundation
import XCTest

/// Wrong shapes and arguments handed to the libraries stop the program with a message naming the op and the shapes,
/// in the build the tests run in (release, as `scripts/test.sh` builds): the `check-messages` helper makes one bad
/// call per run, and its standard error must hold the message. `precondition` would leave only "precondition
/// failure" there under `-O`.
final class ReleaseMessageTests: XCTestCase {
    /// Call name (see Tests/CheckMessages/main.swift) and the fragments its message must contain.
    private let expectations: [(call: String, fragments: [String])] = [
        ("conv2d-channels", ["conv2d", "[2, 3, 8, 8]", "[4, 1, 3, 3]"]),
        ("conv2d-stride", ["conv2d", "stride (0, 1)", "[1, 1, 5, 5]", "[2, 1, 3, 3]"]),
        ("matmul", ["matmul", "[2, 3]", "[4, 5]"]),
        ("linear", ["linear", "[2, 3]", "[4, 5]"]),
        ("broadcast", ["[2, 3]", "[4]", "do not broadcast"]),
        ("cross-entropy-target", ["crossEntropy", "target 5", "[2, 3]"]),
        ("item", ["item", "[2, 2]"]),
        ("backward-twice", ["backward", "already consumed"]),
        ("reshape", ["reshape", "[2, 3]", "[4]"]),
        ("permute", ["permute", "[0, 0]", "[2, 3]"]),
        ("slice", ["slice", "[0, 0]..<[2, 4]", "[2, 3]"]),
        ("maxpool-kernel", ["maxPool2d", "kernel [1, 0, 2]", "[1, 1, 4, 4]"]),
        ("rot90-axes", ["rot90", "(1, 1)"]),
        ("gathered-index", ["gathered", "outside 0..<4"]),
        ("gathered-negative-index", ["gathered", "outside 0..<4"]),
        ("concat", ["concat", "[2, 3]", "[2, 4]"]),
        ("dropout", ["Dropout", "1.5"]),
        ("data-loader", ["DataLoader", "batch size", "0"]),
    ]

    func testBadCallsStopWithTheirMessageInThisBuild() throws {
        let executable = try productURL("check-messages")
        let scratch = try ScratchDirectory("check-messages")
        defer { scratch.remove() }
        for (call, fragments) in expectations {
            let result = try CommandRun(executable, [call], directory: scratch.url, logName: call).finish()
            XCTAssertTrue(result.killedBySignal, "\(call): the call did not stop the program: \(result.errorOutput)")
            for fragment in fragments {
                XCTAssertTrue(result.errorOutput.contains(fragment),
                              "\(call): the message lacks \"\(fragment)\": \(result.errorOutput)")
            }
            XCTAssertFalse(result.errorOutput.contains("precondition failure"), "\(call): \(result.errorOutput)")
        }
    }
}

/// An executable of this package in the build products directory beside the test bundle; skips when absent.
func productURL(_ name: String) throws -> URL {
    var candidates: [URL] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        candidates.append(bundle.bundleURL.deletingLastPathComponent())
    }
    candidates.append(Bundle.main.bundleURL)
    for directory in candidates {
        let url = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    throw XCTSkip("the \(name) executable is not in the build products directory (looked in "
                  + "\(candidates.map(\.path).joined(separator: ", "))); build it with `swift build --build-tests`")
}
