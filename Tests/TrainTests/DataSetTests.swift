import Autograd
import Foundation
import XCTest
import Train

final class DataSetTests: XCTestCase {
    // MARK: helpers

    /// The package root, two levels above this file's directory.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("datasettests-\(getpid())-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
    }

    private func file(_ name: String, _ text: String) throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    private func file(_ name: String, bytes: [UInt8]) throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Asserts that `body` throws a DataError whose description names `url` and contains every fragment.
    private func assertDataError(_ url: URL, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                                 _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("no error thrown", file: file, line: line)
        } catch let error as DataError {
            let text = error.description
            XCTAssertTrue(text.contains(url.path), "error does not name the file: \(text)", file: file, line: line)
            for f in fragments {
                XCTAssertTrue(text.contains(f), "error lacks '\(f)': \(text)", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    /// An .amat line of `side * side` pixels then the label, each written by `format`.
    private func amatLine(_ pixels: [Float], _ label: String) -> String {
        pixels.map { String(format: "%.18e", Double($0)) }.joined(separator: " ") + " " + label
    }

    private func idxImages(count: Int, rows: Int, cols: Int, pixels: [UInt8]) -> [UInt8] {
        [0, 0, 8, 3] + be32(count) + be32(rows) + be32(cols) + pixels
    }

    private func idxLabels(_ labels: [UInt8]) -> [UInt8] { [0, 0, 8, 1] + be32(labels.count) + labels }

    private func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }

    // MARK: AMAT

    func testAMATRoundTrip() throws {
        var rng = SeededRandom(seed: 7)
        let count = 5, side = 6
        var images = [Float]()
        for _ in 0..<(count * side * side) {
            let r = rng.uniform()
            images.append(r < 0.4 ? 0 : r < 0.5 ? 1 : Float(rng.uniform()) * (r < 0.6 ? 1e-6 : 1))
        }
        let data = ImageDataset(images: images, labels: [3, 0, 9, 7, 1], height: side, width: side)
        let url = scratch.appendingPathComponent("sub/round.amat")
        try AMAT.write(data, to: url)
        let back = try AMAT.read(url, side: side)
        XCTAssertEqual(back.labels, data.labels)
        XCTAssertEqual(back.images, data.images)  // exact: the shortest round-trip form is written
        XCTAssertEqual(back.height, side)
        // Only the final file remains (the temporary one was renamed).
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path),
                       ["round.amat"])
        // Overwriting replaces the file.
        try AMAT.write(data.subset([4, 2]), to: url)
        XCTAssertEqual(try AMAT.read(url, side: side).labels, [1, 9])
    }

    func testAMATOriginalFormat() throws {
        // %e values, a float label, blank lines, CR LF line ends and tabs are all accepted.
        let a: [Float] = [0, 0.25, 1, 0.5]
        let b: [Float] = [1, 0, 0, 0.125]
        let text = "\n" + amatLine(a, "7.000000e+00") + "\r\n\r\n" + amatLine(b, "2").replacingOccurrences(of: " 2", with: "\t2") + "\n\n"
        let url = try file("orig.amat", text)
        let data = try AMAT.read(url, side: 2)
        XCTAssertEqual(data.labels, [7, 2])
        XCTAssertEqual(data.images, a + b)
        // A last line without a newline.
        let url2 = try file("nonl.amat", amatLine(a, "0"))
        XCTAssertEqual(try AMAT.read(url2, side: 2).labels, [0])
    }

    func testAMATRejectsBadFiles() throws {
        let good = amatLine([0, 0.5, 1, 0], "1")
        let short = try file("short.amat", good + "\n" + "0 0.5 1 1\n")
        assertDataError(short, ["line 2", "expected 5 values", "found 4"]) { _ = try AMAT.read(short, side: 2) }

        let long = try file("long.amat", good + "\n\n" + "0 0.5 1 1 3 4\n")
        assertDataError(long, ["line 3", "found 6"]) { _ = try AMAT.read(long, side: 2) }

        let word = try file("word.amat", good + "\n" + "0 0.5 abc 0 1\n")
        assertDataError(word, ["line 2", "field 3", "not a number", "abc"]) { _ = try AMAT.read(word, side: 2) }

        let glued = try file("glued.amat", "0 0.5x 1 0 1\n")
        assertDataError(glued, ["line 1", "field 2", "not a number"]) { _ = try AMAT.read(glued, side: 2) }

        let nan = try file("nan.amat", "0 nan 1 0 1\n")
        assertDataError(nan, ["line 1", "not finite"]) { _ = try AMAT.read(nan, side: 2) }

        let ten = try file("ten.amat", good + "\n" + "0 0 0 0 1.000000e+01\n")
        assertDataError(ten, ["line 2", "label", "not a class 0...9"]) { _ = try AMAT.read(ten, side: 2) }

        let half = try file("half.amat", "0 0 0 0 2.5\n")
        assertDataError(half, ["line 1", "label"]) { _ = try AMAT.read(half, side: 2) }

        let empty = try file("empty.amat", "")
        assertDataError(empty, ["no data rows"]) { _ = try AMAT.read(empty, side: 2) }

        let blank = try file("blank.amat", "\n  \n\n")
        assertDataError(blank, ["no data rows"]) { _ = try AMAT.read(blank, side: 2) }

        let absent = scratch.appendingPathComponent("absent.amat")
        assertDataError(absent, ["cannot open"]) { _ = try AMAT.read(absent, side: 2) }

        // The earliest fault is reported even when the lines are parsed in parallel.
        var lines = (0..<300).map { _ in good }
        lines[250] = "0 0 0 0 11"
        lines[120] = "0 0 0"
        let many = try file("many.amat", lines.joined(separator: "\n"))
        assertDataError(many, ["line 121", "found 3"]) { _ = try AMAT.read(many, side: 2) }
    }

    func testAMATReferenceFile() throws {
        let url = Self.packageRoot.deletingLastPathComponent()
            .appendingPathComponent("shared/reference/training/mnist_all_rotation_normalized_float_test.amat")
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("no reference file at \(url.path)") }
        let data = try AMAT.read(url)
        XCTAssertEqual(data.count, 320)
        XCTAssertEqual(data.height, 28)
        XCTAssertEqual(data.images.count, 320 * 784)
        XCTAssertTrue(data.images.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertEqual(data.labelCounts().reduce(0, +), 320)
        XCTAssertEqual(data.labels.first, 3)
        XCTAssertEqual(data.labelCounts(), [33, 35, 25, 33, 32, 31, 31, 31, 25, 44])
        let padded = data.edgePadded(before: 2, after: 3)
        XCTAssertEqual(padded.height, 33)
        XCTAssertEqual(padded.images.count, 320 * 33 * 33)
    }

    // MARK: IDX and gzip

    func testIDXPlainAndGzip() throws {
        let pixels: [UInt8] = [0, 255, 51, 102, 0, 0, 255, 255, 1, 2, 3, 4]  // 3 images of 2x2
        let images = idxImages(count: 3, rows: 2, cols: 2, pixels: pixels)
        let labels = idxLabels([4, 0, 9])
        for zipped in [false, true] {
            let ext = zipped ? ".gz" : ""
            let iu = try file("img\(ext)", bytes: zipped ? Gzip.deflate(images) : images)
            let lu = try file("lab\(ext)", bytes: zipped ? Gzip.deflate(labels) : labels)
            let data = try IDX.read(images: iu, labels: lu)
            XCTAssertEqual(data.count, 3)
            XCTAssertEqual(data.height, 2)
            XCTAssertEqual(data.width, 2)
            XCTAssertEqual(data.labels, [4, 0, 9])
            XCTAssertEqual(data.images, pixels.map { Float($0) / 255 })
        }
        // Plain images with gzip labels mix freely.
        let mixed = try IDX.read(images: scratch.appendingPathComponent("img"), labels: scratch.appendingPathComponent("lab.gz"))
        XCTAssertEqual(mixed.labels, [4, 0, 9])
    }

    func testIDXRejectsBadFiles() throws {
        let images = idxImages(count: 2, rows: 2, cols: 2, pixels: [UInt8](repeating: 9, count: 8))
        let goodImages = try file("img", bytes: images)
        let goodLabels = try file("lab", bytes: idxLabels([1, 2]))

        let swapped = try file("swapped", bytes: idxLabels([1, 2]))
        assertDataError(swapped, ["byte 0", "bad magic number 0x00000801", "expected 0x00000803"]) {
            _ = try IDX.read(images: swapped, labels: goodLabels)
        }
        let badMagic = try file("badmagic.gz", bytes: Gzip.deflate([1, 2, 8, 1, 0, 0, 0, 0]))
        assertDataError(badMagic, ["uncompressed byte 0", "bad magic"]) {
            _ = try IDX.read(images: goodImages, labels: badMagic)
        }
        let truncated = try file("trunc", bytes: Array(images.dropLast()))
        assertDataError(truncated, ["size mismatch", "needs 24 bytes", "has 23"]) {
            _ = try IDX.read(images: truncated, labels: goodLabels)
        }
        let extra = try file("extra", bytes: images + [0])
        assertDataError(extra, ["size mismatch"]) { _ = try IDX.read(images: extra, labels: goodLabels) }
        let header = try file("header", bytes: [0, 0, 8, 3, 0, 0])
        assertDataError(header, ["ends inside the IDX header"]) { _ = try IDX.read(images: header, labels: goodLabels) }
        let three = try file("three", bytes: idxLabels([1, 2, 3]))
        assertDataError(three, ["3 labels", "2 images"]) { _ = try IDX.read(images: goodImages, labels: three) }
        let big = try file("big", bytes: idxLabels([1, 12]))
        assertDataError(big, ["byte 9", "label 12"]) { _ = try IDX.read(images: goodImages, labels: big) }
    }

    func testGzipErrorsNameTheFile() throws {
        let payload = [UInt8]((0..<5000).map { UInt8($0 % 7) })
        let packed = Gzip.deflate(payload)
        XCTAssertEqual(try Gzip.inflate(packed, file: "x"), payload)
        // Two concatenated members inflate to both payloads.
        XCTAssertEqual(try Gzip.inflate(packed + Gzip.deflate([1, 2, 3]), file: "x"), payload + [1, 2, 3])

        var corrupt = packed
        for i in 12..<min(40, corrupt.count) { corrupt[i] ^= 0x5A }
        let cu = try file("corrupt.gz", bytes: corrupt)
        assertDataError(cu, ["corrupt gzip stream"]) { _ = try Gzip.readFile(cu) }

        let tu = try file("truncated.gz", bytes: Array(packed.prefix(packed.count / 2)))
        assertDataError(tu, ["ends early"]) { _ = try Gzip.readFile(tu) }

        // Non-gzip content is returned as stored.
        let plain = try file("plain", bytes: [7, 8, 9])
        XCTAssertEqual(try Gzip.readFile(plain), [7, 8, 9])
    }

    func testFashionMNISTTrainLabels() throws {
        let dir = DataCatalog.defaultFashionDirectory
        let labels = dir.appendingPathComponent("train-labels-idx1-ubyte.gz")
        guard FileManager.default.fileExists(atPath: labels.path) else { throw XCTSkip("Fashion-MNIST not installed") }
        let train = try IDX.readLabels(labels)
        XCTAssertEqual(train.count, 60000)
        var counts = [Int](repeating: 0, count: 10)
        for l in train { counts[l] += 1 }
        XCTAssertEqual(counts, [Int](repeating: 6000, count: 10))

        let test = try IDX.read(images: dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"),
                                labels: dir.appendingPathComponent("t10k-labels-idx1-ubyte.gz"))
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual(test.height, 28)
        XCTAssertEqual(test.labelCounts(), [Int](repeating: 1000, count: 10))
        XCTAssertEqual(test.images.max(), 1)
        XCTAssertEqual(test.images.min(), 0)
    }

    func testMLXtendDigits() throws {
        let url = Self.packageRoot.appendingPathComponent("data/mnist_5k.csv.gz")
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("no \(url.path); run scripts/setup.sh") }
        let data = try MLXtendDigits.read(url)
        XCTAssertEqual(data.count, 5000)
        XCTAssertEqual(data.height, 28)
        XCTAssertEqual(data.labelCounts().reduce(0, +), 5000)
        XCTAssertTrue(data.labelCounts().allSatisfy { $0 > 350 })
        XCTAssertEqual(data.images.max(), 1)
        XCTAssertEqual(data.images.min(), 0)
    }

    func testMLXtendFormatChecks() throws {
        let row = (0..<784).map { String($0 % 256) }.joined(separator: ",")
        let ok = try file("ok.csv.gz", bytes: Gzip.deflate(Array((row + ",5\n" + row + ",0\n").utf8)))
        let data = try MLXtendDigits.read(ok)
        XCTAssertEqual(data.labels, [5, 0])
        XCTAssertEqual(data.images[255], 1)
        XCTAssertEqual(data.images[256], 0)

        let bad = try file("bad.csv", row + ",5\n" + row + ",12\n")
        assertDataError(bad, ["line 2", "label 12"]) { _ = try MLXtendDigits.read(bad) }
        let short = try file("short.csv", "1,2,3\n")
        assertDataError(short, ["line 1", "found 3"]) { _ = try MLXtendDigits.read(short) }
        let junk = try file("junk.csv", row.replacingOccurrences(of: "17,", with: "1x,") + ",1\n")
        assertDataError(junk, ["line 1", "field 18"]) { _ = try MLXtendDigits.read(junk) }
    }

    // MARK: images

    func testEdgePadding() throws {
        // Two 2x3 images.
        let a: [Float] = [1, 2, 3,
                          4, 5, 6]
        let data = ImageDataset(images: a + a.map { $0 + 10 }, labels: [0, 1], height: 2, width: 3)
        let p = data.edgePadded(before: 2, after: 3)
        XCTAssertEqual(p.height, 7)
        XCTAssertEqual(p.width, 8)
        XCTAssertEqual(p.labels, [0, 1])
        let expectedRow0: [Float] = [1, 1, 1, 2, 3, 3, 3, 3]
        let expectedRow1: [Float] = [4, 4, 4, 5, 6, 6, 6, 6]
        let expected = [expectedRow0, expectedRow0, expectedRow0, expectedRow1, expectedRow1, expectedRow1, expectedRow1]
            .flatMap { $0 }
        XCTAssertEqual(Array(p.image(0)), expected)
        XCTAssertEqual(Array(p.image(1)), expected.map { $0 + 10 })
        // Corners repeat the corner pixels.
        let img = Array(p.image(0))
        XCTAssertEqual(img[0], 1)
        XCTAssertEqual(img[7], 3)
        XCTAssertEqual(img[6 * 8], 4)
        XCTAssertEqual(img[6 * 8 + 7], 6)
        // 28 -> 33 for MNIST-rot sizes.
        let m = ImageDataset(images: [Float](repeating: 0.5, count: 784), labels: [1], height: 28, width: 28)
        XCTAssertEqual(m.edgePadded(before: 2, after: 3).images.count, 33 * 33)
    }

    func testSubset() {
        let data = ImageDataset(images: [1, 2, 3, 4, 5, 6], labels: [7, 8, 9], height: 1, width: 2)
        let s = data.subset([2, 0, 2])
        XCTAssertEqual(s.images, [5, 6, 1, 2, 5, 6])
        XCTAssertEqual(s.labels, [9, 7, 9])
    }

    /// numpy-style rot90 (k = 1): counter-clockwise as displayed, out[i][j] = in[j][n-1-i].
    private func rot90(_ img: [Float], _ n: Int) -> [Float] {
        var out = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { out[i * n + j] = img[j * n + (n - 1 - i)] } }
        return out
    }

    private func assertClose(_ a: [Float], _ b: [Float], _ tol: Float, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tol, file: file, line: line)
    }

    func testRotationQuarterTurnsAndIdentity() {
        var rng = SeededRandom(seed: 3)
        for side in [5, 9, 28] {
            let img = (0..<(side * side)).map { _ in Float(rng.uniform()) }
            assertClose(RotatedDigits.rotateImage(img, side: side, angle: 0), img, 0)
            let quarter = RotatedDigits.rotateImage(img, side: side, angle: Double.pi / 2)
            assertClose(quarter, rot90(img, side), 1e-6)
            let half = RotatedDigits.rotateImage(img, side: side, angle: Double.pi)
            assertClose(half, rot90(rot90(img, side), side), 1e-6)
            let full = RotatedDigits.rotateImage(img, side: side, angle: 2 * Double.pi)
            assertClose(full, img, 1e-6)
        }
        // Orientation check on a single pixel: the top-right corner moves to the top-left under a quarter turn.
        var one = [Float](repeating: 0, count: 9)
        one[2] = 1
        assertClose(RotatedDigits.rotateImage(one, side: 3, angle: Double.pi / 2), [1, 0, 0, 0, 0, 0, 0, 0, 0], 1e-6)
        // Off the grid, bilinear: a 45 degree turn of a uniform image keeps the centre and clears far corners.
        let flat = [Float](repeating: 1, count: 49)
        let turned = RotatedDigits.rotateImage(flat, side: 7, angle: Double.pi / 4)
        XCTAssertEqual(turned[24], 1, accuracy: 1e-6)
        XCTAssertEqual(turned[0], 0)
        XCTAssertTrue(turned.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    func testSeededRotation() {
        var rng = SeededRandom(seed: 11)
        let n = 40, side = 10
        let data = ImageDataset(images: (0..<(n * side * side)).map { _ in Float(rng.uniform()) },
                                labels: (0..<n).map { $0 % 10 }, height: side, width: side)
        let a = RotatedDigits.rotate(data, seed: 5)
        let b = RotatedDigits.rotate(data, seed: 5)
        let c = RotatedDigits.rotate(data, seed: 6)
        XCTAssertEqual(a.images, b.images)
        XCTAssertNotEqual(a.images, c.images)
        XCTAssertEqual(a.labels, data.labels)
        XCTAssertTrue(a.images.allSatisfy { $0 >= 0 && $0 <= 1 })
        // Image i is turned by the i-th angle drawn from the seed.
        var angles = SeededRandom(seed: 5)
        for i in 0..<n {
            let angle = angles.uniform(0, 2 * Double.pi)
            XCTAssertEqual(Array(a.image(i)), RotatedDigits.rotateImage(data.image(i), side: side, angle: angle))
        }
    }

    // MARK: catalog

    func testCatalogMNISTRotMissingSaysWhere() throws {
        let catalog = DataCatalog(directory: scratch)
        do {
            _ = try catalog.load(.mnistRot)
            XCTFail("no error")
        } catch let error as DataError {
            let text = error.description
            XCTAssertTrue(text.contains(scratch.appendingPathComponent("mnist-rot").path), text)
            XCTAssertTrue(text.contains("scripts/setup.sh"), text)
            XCTAssertTrue(text.contains("mnist_rotation_new.zip"), text)
        }
        let digits = DataCatalog(directory: scratch.appendingPathComponent("nothing"))
        XCTAssertThrowsError(try digits.load(.rotDigits)) { error in
            XCTAssertTrue("\(error)".contains("mnist_5k.csv.gz"), "\(error)")
            XCTAssertTrue("\(error)".contains("scripts/setup.sh"), "\(error)")
        }
        var fashion = DataCatalog(directory: scratch)
        fashion.fashionDirectory = scratch.appendingPathComponent("no-fashion")
        XCTAssertThrowsError(try fashion.load(.rotFashion)) { error in
            XCTAssertTrue("\(error)".contains("train-images-idx3-ubyte"), "\(error)")
        }
    }

    func testCatalogReadsMNISTRotFromGivenDirectory() throws {
        let reference = Self.packageRoot.deletingLastPathComponent().appendingPathComponent("shared/reference/training")
        guard FileManager.default.fileExists(atPath: reference.appendingPathComponent(DataCatalog.testFileName).path) else {
            throw XCTSkip("no reference files")
        }
        var catalog = DataCatalog(directory: scratch)
        catalog.mnistRotDirectory = reference
        var lines = [String]()
        let (train, test) = try catalog.load(.mnistRot) { lines.append($0) }
        XCTAssertEqual(train.count, 640)
        XCTAssertEqual(test.count, 320)
        XCTAssertEqual(train.height, 33)
        XCTAssertEqual(test.width, 33)
        XCTAssertFalse(lines.isEmpty)

        // Files placed in <directory>/mnist-rot/ are found without being named.
        let own = scratch.appendingPathComponent("mnist-rot")
        try FileManager.default.createDirectory(at: own, withIntermediateDirectories: true)
        for name in [DataCatalog.trainFileName, DataCatalog.testFileName] {
            try FileManager.default.copyItem(at: reference.appendingPathComponent(name), to: own.appendingPathComponent(name))
        }
        let again = try DataCatalog(directory: scratch).load(.mnistRot)
        XCTAssertEqual(again.test.images, test.images)
    }

    func testCatalogBuildsAndCachesRotDigits() throws {
        let source = Self.packageRoot.appendingPathComponent("data/mnist_5k.csv.gz")
        guard FileManager.default.fileExists(atPath: source.path) else { throw XCTSkip("no \(source.path)") }
        try FileManager.default.copyItem(at: source, to: scratch.appendingPathComponent("mnist_5k.csv.gz"))
        let catalog = DataCatalog(directory: scratch)
        var lines = [String]()
        let built = try catalog.load(.rotDigits) { lines.append($0) }
        XCTAssertTrue(lines.contains { $0.contains("rotating 5000 images") }, "\(lines)")
        XCTAssertEqual(built.train.count, 4000)
        XCTAssertEqual(built.test.count, 1000)
        XCTAssertEqual(built.train.height, 33)
        let cache = scratch.appendingPathComponent("rot-digits")
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: cache.path)),
                       [DataCatalog.trainFileName, DataCatalog.testFileName])
        lines.removeAll()
        let cached = try catalog.load(.rotDigits) { lines.append($0) }
        XCTAssertFalse(lines.contains { $0.contains("rotating") })
        XCTAssertEqual(cached.train.images, built.train.images)
        XCTAssertEqual(cached.test.labels, built.test.labels)
    }
}
