import Autograd
import Foundation
import NN
import Train
import XCTest

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct ScratchDirectory {
    let url: URL

    init(_ label: String) throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(label)-\(getpid())-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let target = file(name)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: target)
        return target
    }

    @discardableResult
    func write(_ name: String, text: String) throws -> URL { try write(name, Array(text.utf8)) }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Runs malformed inputs through a reader and checks that each is refused with a `DataError` that names the file,
/// a place in it and the fault; counts the inputs tried.
final class RejectionCounter {
    private(set) var tried = 0
    private(set) var byClass: [String: Int] = [:]
    /// One example message per class, for the log.
    private(set) var examples: [String: String] = [:]

    /// Expects `body` to throw a `DataError` about `url` whose place is set (unless `placeRequired` is false) and whose
    /// description contains one of `anyOf` (every fragment when `allOf`).
    func expect(_ kind: String, _ url: URL, anyOf fragments: [String], placeRequired: Bool = true,
                file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        tried += 1
        byClass[kind, default: 0] += 1
        do {
            try body()
            XCTFail("[\(kind)] \(url.lastPathComponent): accepted, expected a refusal", file: file, line: line)
        } catch let error as DataError {
            let text = error.description
            if examples[kind] == nil { examples[kind] = text }
            XCTAssertEqual(error.file, url.path, "[\(kind)] error names another file: \(text)", file: file, line: line)
            if placeRequired {
                XCTAssertNotNil(error.place, "[\(kind)] error names no place: \(text)", file: file, line: line)
            }
            XCTAssertFalse(error.fault.isEmpty, "[\(kind)] empty fault", file: file, line: line)
            XCTAssertTrue(fragments.isEmpty || fragments.contains { text.contains($0) },
                          "[\(kind)] error lacks any of \(fragments): \(text)", file: file, line: line)
        } catch {
            XCTFail("[\(kind)] \(url.lastPathComponent): not a DataError: \(error)", file: file, line: line)
        }
    }

    func report(_ title: String) {
        print("\(title): \(tried) malformed inputs refused")
        for kind in byClass.keys.sorted() {
            print("  \(kind): \(byClass[kind]!)  e.g. \(examples[kind] ?? "-")")
        }
    }
}

/// A labelled set of random square images (pixels in [0, 1], zero for about a third of them).
func randomImages(count: Int, side: Int, seed: UInt64) -> ImageDataset {
    var rng = SeededRandom(seed: seed)
    var pixels = [Float]()
    pixels.reserveCapacity(count * side * side)
    for _ in 0..<(count * side * side) {
        let r = rng.uniform()
        pixels.append(r < 0.35 ? 0 : Float(rng.uniform()))
    }
    return ImageDataset(images: pixels, labels: (0..<count).map { ($0 * 7 + 3) % 10 }, height: side, width: side)
}

/// Resident memory of this process in bytes (from /proc/self/statm), or nil where unavailable.
func residentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Number of threads of this process (from /proc/self/task), or nil where unavailable.
func threadCount() -> Int? {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task"))?.count
}

// MARK: - The command

/// The built `train-c4cnn` executable: in the build products directory that holds the test bundle.
func trainCommandURL() throws -> URL { try commandURL("train-c4cnn") }

/// The built executable `name` (train-c4cnn, bench, ...): in the build products directory that holds the test bundle.
func commandURL(_ name: String) throws -> URL {
    var candidates: [URL] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    candidates.append(Bundle.main.bundleURL)
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        candidates.append(bundle.bundleURL.deletingLastPathComponent())
    }
    for directory in candidates {
        let url = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    throw XCTSkip("the \(name) executable is not in the build products directory (looked in "
                  + "\(candidates.map(\.path).joined(separator: ", "))); build it with `swift build --build-tests`")
}

/// A finished run of the command.
struct CommandResult {
    var status: Int32
    var killedBySignal: Bool
    var output: String
    var errorOutput: String
}

/// A running child process whose standard output and error go to files.
final class CommandRun {
    let process = Process()
    let outputURL: URL
    let errorURL: URL

    init(_ executable: URL, _ arguments: [String], directory: URL, logName: String) throws {
        outputURL = directory.appendingPathComponent("\(logName).out")
        errorURL = directory.appendingPathComponent("\(logName).err")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = try FileHandle(forWritingTo: errorURL)
        try process.run()
    }

    var output: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }

    func kill() { _ = Foundation.kill(process.processIdentifier, SIGKILL) }

    /// Waits for the end (killing the process after `timeout` seconds).
    func finish(timeout: TimeInterval = 300) -> CommandResult {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill() }
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus,
                             killedBySignal: process.terminationReason == .uncaughtSignal,
                             output: output,
                             errorOutput: (try? String(contentsOf: errorURL, encoding: .utf8)) ?? "")
    }
}

/// Runs the command to its end.
func runCommand(_ arguments: [String], in directory: URL, logName: String = "run") throws -> CommandResult {
    try CommandRun(trainCommandURL(), arguments, directory: directory, logName: logName).finish()
}

/// Writes an MNIST-rot style pair of .amat files (28x28 random images) into `directory/mnist-rot/`.
func writeMNISTRot(in directory: URL, train: Int, test: Int, seed: UInt64) throws {
    let folder = directory.appendingPathComponent("mnist-rot", isDirectory: true)
    try AMAT.write(randomImages(count: train, side: 28, seed: seed),
                   to: folder.appendingPathComponent(DataCatalog.trainFileName))
    try AMAT.write(randomImages(count: test, side: 28, seed: seed + 1),
                   to: folder.appendingPathComponent(DataCatalog.testFileName))
}
