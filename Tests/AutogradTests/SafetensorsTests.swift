import Foundation
import XCTest
import Autograd

final class SafetensorsTests: XCTestCase {

    // MARK: - Fixtures

    /// `<package root>/../shared/reference`, found from this file's location (Tests/<target>/<file>).
    private static var referenceDirectory: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Tests/<target>
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
            .appendingPathComponent("../shared/reference")
            .standardizedFileURL
    }

    /// A small file with every dtype, a scalar, an empty tensor and metadata. Tensors in name order
    /// a [0,24], b [24,48], c [48,64], d [64,80], e [80,80] (empty), s [80,84].
    private static func sampleFile() -> SafetensorsFile {
        SafetensorsFile(
            entries: [
                "a": SafetensorsEntry(shape: [2, 3], values: .f32([1, -2, 3.5, 0, -0.0, .infinity])),
                "b": SafetensorsEntry(shape: [3], values: .f64([1e-300, -.pi, 4])),
                "c": SafetensorsEntry(shape: [2], values: .i64([Int64.min, Int64.max])),
                "d": SafetensorsEntry(shape: [2, 2], values: .f32([0.25, 0.5, 0.75, 1])),
                "e": SafetensorsEntry(shape: [0, 3], values: .f32([])),
                "s": SafetensorsEntry(shape: [], values: .f32([42])),
            ],
            metadata: ["op": "sample", "args": "{\"k\": [1, 2]}"])
    }

    /// Header text and data buffer of serialized bytes (the header without its space padding).
    private static func split(_ bytes: [UInt8]) -> (header: String, data: [UInt8]) {
        var n = 0
        for i in (0..<8).reversed() { n = n << 8 | Int(bytes[i]) }
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        return (header.trimmingCharacters(in: .whitespaces), Array(bytes[(8 + n)...]))
    }

    /// A file made of a raw header (not padded) and data buffer.
    private static func assemble(header: [UInt8], data: [UInt8], declaredLength: UInt64? = nil) -> [UInt8] {
        var out = [UInt8]()
        var n = declaredLength ?? UInt64(header.count)
        for _ in 0..<8 {
            out.append(UInt8(truncatingIfNeeded: n))
            n >>= 8
        }
        return out + header + data
    }

    private static func assemble(header: String, data: [UInt8]) -> [UInt8] {
        assemble(header: Array(header.utf8), data: data)
    }

    /// Parses `bytes`, expecting a SafetensorsError; returns its message (nil, after a failure, otherwise).
    private func expectRejection(_ bytes: [UInt8], _ label: String,
                                 file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            _ = try SafetensorsFile(bytes: bytes, source: "case.safetensors")
            XCTFail("\(label): accepted", file: file, line: line)
        } catch let error as SafetensorsError {
            XCTAssertEqual(error.file, "case.safetensors", file: file, line: line)
            XCTAssertEqual(error.description, "case.safetensors: \(error.message)", file: file, line: line)
            return error.message
        } catch {
            XCTFail("\(label): unexpected error type \(error)", file: file, line: line)
        }
        return nil
    }

    // MARK: - Reference files

    func testReadsReferenceFiles() throws {
        let directory = Self.referenceDirectory
        guard FileManager.default.fileExists(atPath: directory.path) else {
            throw XCTSkip("reference cases not found at \(directory.path)")
        }
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "safetensors" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        XCTAssertFalse(files.isEmpty, "no .safetensors files in \(directory.path)")

        for url in files {
            let name = url.lastPathComponent
            let file = try SafetensorsFile(contentsOf: url)
            XCTAssertNotNil(file.metadata["op"], "\(name): no \"op\" metadata")
            XCTAssertFalse(file.entries.isEmpty, "\(name): no tensors")
            for (tensor, entry) in file.entries {
                XCTAssertEqual(entry.shape.reduce(1, *), entry.floats.count, "\(name): \(tensor)")
            }

            let bytes = file.serialized()
            XCTAssertEqual(bytes, file.serialized(), "\(name): serialization is not deterministic")
            let again = try SafetensorsFile(bytes: bytes, source: "reserialized \(name)")
            XCTAssertEqual(again.entries, file.entries, "\(name): entries changed in a round trip")
            XCTAssertEqual(again.metadata, file.metadata, "\(name): metadata changed in a round trip")
            XCTAssertEqual(again.serialized(), bytes, "\(name): second serialization differs")
        }

        // Spot checks of known content.
        let crossEntropy = directory.appendingPathComponent("cross_entropy.safetensors")
        if FileManager.default.fileExists(atPath: crossEntropy.path) {
            let file = try SafetensorsFile(contentsOf: crossEntropy)
            XCTAssertEqual(file.metadata["op"], "cross_entropy")
            let target = try XCTUnwrap(file.entries["target"])
            XCTAssertEqual(target.dtype, .i64)
            guard case .i64(let classes) = target.values else { return XCTFail("target is not I64") }
            let input = try XCTUnwrap(file.entries["input"])
            XCTAssertEqual(input.dtype, .f32)
            XCTAssertEqual(input.shape.count, 2)
            XCTAssertEqual(target.shape, [input.shape[0]])
            XCTAssertTrue(classes.allSatisfy { $0 >= 0 && $0 < Int64(input.shape[1]) })
            XCTAssertEqual(target.doubles, classes.map { Double($0) })
        }
        let model = directory.appendingPathComponent("model_cnn.safetensors")
        if FileManager.default.fileExists(atPath: model.path) {
            let file = try SafetensorsFile(contentsOf: model)
            XCTAssertEqual(file.metadata["model"], "cnn")
            XCTAssertGreaterThan(file.entries.count, 20)
        }
    }

    func testMissingFileIsAnError() {
        let url = URL(fileURLWithPath: "/nonexistent-directory/missing.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(contentsOf: url)) { error in
            let error = error as? SafetensorsError
            XCTAssertEqual(error?.file, url.path)
            XCTAssertEqual(error?.message, "cannot open (No such file or directory)", "\(String(describing: error))")
        }
    }

    // MARK: - Round trips

    func testRoundTripAllDTypesWithMetadata() throws {
        let file = Self.sampleFile()
        let bytes = file.serialized()

        // Layout: 8-byte length, header padded so the data starts 8-aligned, data packed in name order.
        let (header, data) = Self.split(bytes)
        XCTAssertEqual((bytes.count - data.count) % 8, 0)
        XCTAssertEqual(data.count, 84)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{\"args\":\"{\\\"k\\\": [1, 2]}\",\"op\":\"sample\"},"))
        XCTAssertTrue(header.contains("\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"))
        XCTAssertTrue(header.contains("\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[80,84]}"))
        XCTAssertEqual(Array(data[0..<4]), [0, 0, 0x80, 0x3F])  // 1.0f, little-endian

        let parsed = try SafetensorsFile(bytes: bytes, source: "sample")
        XCTAssertEqual(parsed.entries, file.entries)
        XCTAssertEqual(parsed.metadata, file.metadata)
        XCTAssertEqual(parsed.entries["c"]?.dtype, .i64)
        XCTAssertEqual(parsed.entries["b"]?.dtype, .f64)
        XCTAssertEqual(parsed.entries["s"]?.floats, [42])
        XCTAssertEqual(parsed.entries["e"]?.floats, [])
        XCTAssertEqual(parsed.entries["b"]?.doubles, [1e-300, -.pi, 4])
        XCTAssertEqual(parsed.entries["c"]?.floats, [Float(Int64.min), Float(Int64.max)])
        XCTAssertEqual(parsed.entries["a"]?.doubles, [1, -2, 3.5, 0, 0, .infinity])

        // Insertion order does not matter.
        var reordered = SafetensorsFile()
        for name in file.entries.keys.sorted().reversed() { reordered.entries[name] = file.entries[name] }
        for key in file.metadata.keys.sorted().reversed() { reordered.metadata[key] = file.metadata[key] }
        XCTAssertEqual(reordered.serialized(), bytes)
    }

    func testRoundTripSpecialValuesAndNames() throws {
        let nan = Float(bitPattern: 0x7FC0_1234)
        let names = ["quote\"back\\slash", "new\nline\u{1}", "ünïcödé ✓", "", "with space", "dots.and/slashes"]
        var file = SafetensorsFile(metadata: ["": "", "ключ": "значение", "ctl": "\u{0}\t\u{1F}"])
        for (i, name) in names.enumerated() {
            file.entries[name] = SafetensorsEntry(shape: [1, i + 1], values: .f64((0...i).map { Double($0) / 3 }))
        }
        file.entries["nan"] = SafetensorsEntry(shape: [3], values: .f32([nan, -.nan, .leastNonzeroMagnitude]))
        let parsed = try SafetensorsFile(bytes: file.serialized(), source: "special")
        XCTAssertEqual(Set(parsed.entries.keys), Set(file.entries.keys))
        XCTAssertEqual(parsed.metadata, file.metadata)
        for name in names { XCTAssertEqual(parsed.entries[name], file.entries[name], name) }
        guard case .f32(let values)? = parsed.entries["nan"]?.values else { return XCTFail("nan entry") }
        XCTAssertEqual(values.map { $0.bitPattern }, [nan.bitPattern, (-Float.nan).bitPattern, 1])
        XCTAssertEqual(parsed.serialized(), file.serialized())
    }

    func testEmptyFileRoundTrip() throws {
        let bytes = SafetensorsFile().serialized()
        XCTAssertEqual(bytes.count % 8, 0)
        let parsed = try SafetensorsFile(bytes: bytes, source: "empty")
        XCTAssertTrue(parsed.entries.isEmpty)
        XCTAssertTrue(parsed.metadata.isEmpty)
    }

    func testAcceptsUnpaddedUnalignedAndGappedLayouts() throws {
        // Other writers may leave gaps, skip padding and place tensors at unaligned offsets.
        let header = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},"#
            + #""y":{"shape":[1],"data_offsets":[11,19],"dtype":"I64"},"z":{"dtype":"F64","shape":[1.0],"data_offsets":[24,32]}}"#
        var data = [UInt8](repeating: 0xEE, count: 32)
        data.replaceSubrange(3..<11, with: [0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0])  // 1.0f, -2.0f
        data.replaceSubrange(11..<19, with: [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])  // -2
        data.replaceSubrange(24..<32, with: [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])  // 1.0
        let parsed = try SafetensorsFile(bytes: Self.assemble(header: header, data: data), source: "loose")
        XCTAssertEqual(parsed.entries["x"], SafetensorsEntry(shape: [2], values: .f32([1, -2])))
        XCTAssertEqual(parsed.entries["y"], SafetensorsEntry(shape: [1], values: .i64([-2])))
        XCTAssertEqual(parsed.entries["z"], SafetensorsEntry(shape: [1], values: .f64([1])))
        XCTAssertTrue(parsed.metadata.isEmpty)
    }

    // MARK: - Writing

    func testAtomicWrite() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("safetensors-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("weights.safetensors")

        let first = Self.sampleFile()
        try first.write(to: url)
        XCTAssertEqual(try Array(Data(contentsOf: url)), first.serialized())
        let read = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(read.entries, first.entries)
        XCTAssertEqual(read.metadata, first.metadata)

        // Overwriting replaces the file; no temporary files are left behind.
        let second = SafetensorsFile(entries: ["w": SafetensorsEntry(shape: [2], values: .i64([7, 8]))],
                                     metadata: ["op": "second"])
        try second.write(to: url)
        XCTAssertEqual(try SafetensorsFile(contentsOf: url).entries, second.entries)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["weights.safetensors"])

        // A file that cannot be serialized is reported, and the existing file is untouched.
        var inconsistent = second
        inconsistent.entries["w"]?.values = .i64([1, 2, 3])
        XCTAssertThrowsError(try inconsistent.write(to: url)) { error in
            let message = (error as? SafetensorsError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("\"w\"") && message.contains("needs 2 values"), message)
        }
        var reserved = second
        reserved.entries["__metadata__"] = SafetensorsEntry(shape: [], values: .f32([0]))
        XCTAssertThrowsError(try reserved.write(to: url)) { error in
            XCTAssertTrue((error as? SafetensorsError)?.message.contains("reserved") ?? false, "\(error)")
        }
        XCTAssertEqual(try SafetensorsFile(contentsOf: url).entries, second.entries)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["weights.safetensors"])

        // A missing directory is an error naming the destination.
        let unreachable = directory.appendingPathComponent("no-such-dir/out.safetensors")
        XCTAssertThrowsError(try first.write(to: unreachable)) { error in
            XCTAssertEqual((error as? SafetensorsError)?.file, unreachable.path)
        }
    }

    // MARK: - Error messages

    func testErrorMessagesNameTensorAndFault() throws {
        let sample = Self.sampleFile().serialized()
        let (header, data) = Self.split(sample)
        func edited(_ from: String, _ to: String) -> [UInt8] {
            XCTAssertNotNil(header.range(of: from), from)
            return Self.assemble(header: header.replacingOccurrences(of: from, with: to), data: data)
        }
        let cases: [([UInt8], String)] = [
            (edited(#""a":{"dtype":"F32""#, #""a":{"dtype":"BF16""#),
             #"tensor "a": unsupported dtype "BF16" (supported: F32, F64, I64)"#),
            (edited("[64,80]", "[64,4096]"),
             #"tensor "d": data_offsets [64, 4096] end past the data buffer (84 bytes)"#),
            (edited("[2,3]", "[2,4]"),
             #"tensor "a": data_offsets [0, 24] span 24 bytes, but shape [2, 4] of F32 needs 32 bytes"#),
            (edited("[24,48]", "[12,36]"),
             #"tensors "a" data_offsets [0, 24] and "b" data_offsets [12, 36] overlap"#),
            (edited("[2,3]", "[2,-3]"), #"tensor "a": shape dimension 1 (-3) is not a non-negative integer"#),
            (edited(#""op":"sample""#, #""op":7"#), #""__metadata__" value for key "op" is not a string (7)"#),
            ([1, 2, 3], "file is 3 bytes, shorter than the 8-byte header length prefix"),
            (Array(sample.prefix(20)), "header length \(sample.count - data.count - 8) runs past the end of the file (12 bytes follow the length prefix)"),
        ]
        for (bytes, expected) in cases {
            XCTAssertEqual(expectRejection(bytes, expected), expected)
        }
    }

    // MARK: - Malformed input

    func testMalformedInputsAreRejected() throws {
        var rejected = 0
        var acceptedConsistently = 0

        /// Must throw a SafetensorsError (optionally with `fragment` in its message).
        func reject(_ bytes: [UInt8], _ label: String, _ fragment: String? = nil, line: UInt = #line) {
            if let message = expectRejection(bytes, label, line: line) {
                rejected += 1
                if let fragment {
                    XCTAssertTrue(message.contains(fragment), "\(label): \"\(message)\" lacks \"\(fragment)\"",
                                  line: line)
                }
            }
        }

        /// Either throws a SafetensorsError, or parses into a self-consistent file that round-trips.
        func rejectOrConsistent(_ bytes: [UInt8], _ label: String) {
            do {
                let file = try SafetensorsFile(bytes: bytes, source: "case.safetensors")
                for (name, entry) in file.entries {
                    XCTAssertEqual(entry.shape.reduce(1, *), entry.doubles.count, "\(label): \(name)")
                }
                let again = try SafetensorsFile(bytes: file.serialized(), source: "again")
                XCTAssertEqual(again.serialized(), file.serialized(), label)
                acceptedConsistently += 1
            } catch is SafetensorsError {
                rejected += 1
            } catch {
                XCTFail("\(label): unexpected error type \(error)")
            }
        }

        let sample = Self.sampleFile().serialized()
        let (header, data) = Self.split(sample)
        let headerLength = sample.count - data.count - 8

        // Truncation at every byte: inside the length prefix, the header, and the data buffer.
        for cut in 0..<sample.count {
            let region = cut < 8 ? "length prefix" : cut < 8 + headerLength ? "header" : "data"
            reject(Array(sample.prefix(cut)), "truncated to \(cut) bytes (\(region))")
        }

        // Declared header lengths that are impossible, from just past the end to overflowing sizes.
        let available = UInt64(sample.count - 8)
        for length in [available + 1, available + 8, 1 << 32, 1 << 40, UInt64(Int.max), 1 << 63, UInt64.max] {
            var bytes = sample
            var n = length
            for i in 0..<8 {
                bytes[i] = UInt8(truncatingIfNeeded: n)
                n >>= 8
            }
            reject(bytes, "header length \(length)", "header length")
        }
        let oversized = Self.assemble(header: Array(header.utf8), data: [],
                                      declaredLength: 200_000_000)
        reject(oversized + [UInt8](repeating: 0x20, count: 16), "header length past the limit")
        reject([], "empty file", "shorter than the 8-byte")
        reject([0, 0, 0, 0, 0, 0, 0, 0], "zero header length", "empty")

        // Flipped bits in the length prefix and in every header byte.
        for position in 0..<(8 + headerLength) {
            for mask: UInt8 in [0x01, 0x02, 0x20, 0x80] {
                var bytes = sample
                bytes[position] ^= mask
                rejectOrConsistent(bytes, "byte \(position) ^ \(mask)")
            }
        }

        // Edited headers.
        func edit(_ from: String, _ to: String, _ fragment: String? = nil, line: UInt = #line) {
            guard header.range(of: from) != nil else {
                return XCTFail("fixture header lacks \(from)", line: line)
            }
            let text = header.replacingOccurrences(of: from, with: to)
            reject(Self.assemble(header: text, data: data), "edit \(from) -> \(to)", fragment, line: line)
        }
        let tensors: [(name: String, dtype: String, shape: String, offsets: String)] = [
            ("a", "F32", "[2,3]", "[0,24]"), ("b", "F64", "[3]", "[24,48]"), ("c", "I64", "[2]", "[48,64]"),
            ("d", "F32", "[2,2]", "[64,80]"), ("s", "F32", "[]", "[80,84]"),
        ]
        for t in tensors {
            let entry = #""\#(t.name)":{"dtype":"\#(t.dtype)","shape":\#(t.shape),"data_offsets":\#(t.offsets)}"#
            func replaced(dtype: String? = nil, shape: String? = nil, offsets: String? = nil) -> String {
                #""\#(t.name)":{"dtype":\#(dtype ?? "\"\(t.dtype)\""),"shape":\#(shape ?? t.shape),"#
                    + #""data_offsets":\#(offsets ?? t.offsets)}"#
            }
            // The entry itself.
            edit(entry, #""\#(t.name)":5"#, "not a JSON object")
            edit(entry, #""\#(t.name)":[1,2]"#, "not a JSON object")
            edit(entry, #""\#(t.name)":null"#, "not a JSON object")
            edit(entry, #""\#(t.name)":"F32""#, "not a JSON object")
            edit(entry, #""\#(t.name)":{"shape":\#(t.shape),"data_offsets":\#(t.offsets)}"#, "missing \"dtype\"")
            edit(entry, #""\#(t.name)":{"dtype":"\#(t.dtype)","data_offsets":\#(t.offsets)}"#, "missing \"shape\"")
            edit(entry, #""\#(t.name)":{"dtype":"\#(t.dtype)","shape":\#(t.shape)}"#, "missing \"data_offsets\"")
            // dtype.
            for bad in ["\"BF16\"", "\"F16\"", "\"U8\"", "\"f32\"", "\"\"", "\"F32 \""] {
                edit(entry, replaced(dtype: bad), "unsupported dtype")
            }
            for bad in ["5", "null", "true", "[\"F32\"]", "{}"] {
                edit(entry, replaced(dtype: bad), "\"dtype\" is not a string")
            }
            // shape.
            for bad in ["[1e30]", "[9223372036854775807]", "[9223372036854775808]", "[18446744073709551616]",
                        "[-1]", "[-0.5]", "[2.5]", "[\"2\"]", "[true]", "[null]", "[[2]]", "[1e400]",
                        "[-9223372036854775808]", "[100000000000000000000000000000000000000000]"] {
                edit(entry, replaced(shape: bad))
            }
            for bad in ["[9223372036854775807,2]", "[3037000500,3037000500]", "[4611686018427387904,4]",
                        "[2305843009213693952]", "[1152921504606846976,0,8]"] {
                edit(entry, replaced(shape: bad))
            }
            for bad in ["null", "\"[2]\"", "2", "{}"] {
                edit(entry, replaced(shape: bad), "\"shape\" is not an array")
            }
            let mismatch = t.shape == "[]" ? "[2]" : "[5,7]"
            edit(entry, replaced(shape: mismatch), "needs")
            edit(entry, replaced(shape: "[0]"), "needs 0 bytes")
            // data_offsets.
            for bad in ["[0]", "[]", "[0,24,48]", "null", "\"0,24\"", "24", "{}"] {
                edit(entry, replaced(offsets: bad), "\"data_offsets\" is not an array of two integers")
            }
            for bad in ["[-8,16]", "[0,-1]", "[0,1e30]", "[0,9223372036854775808]", "[0,18446744073709551616]",
                        "[0.5,24.5]", "[\"0\",\"24\"]", "[null,24]", "[true,24]", "[0,1e400]"] {
                edit(entry, replaced(offsets: bad))
            }
            edit(entry, replaced(offsets: "[24,0]"), "begin after end")
            edit(entry, replaced(offsets: "[84,108]"), "end past the data buffer")
            edit(entry, replaced(offsets: "[0,9223372036854775807]"), "end past the data buffer")
            edit(entry, replaced(offsets: "[9223372036854775807,9223372036854775807]"), "end past the data buffer")
        }
        // Overlapping ranges (each leaves a gap elsewhere, which alone is acceptable).
        edit(#""data_offsets":[24,48]"#, #""data_offsets":[0,24]"#, "overlap")
        edit(#""data_offsets":[24,48]"#, #""data_offsets":[12,36]"#, "overlap")
        edit(#""data_offsets":[48,64]"#, #""data_offsets":[40,56]"#, "overlap")
        edit(#""data_offsets":[64,80]"#, #""data_offsets":[48,64]"#, "overlap")
        edit(#""data_offsets":[80,84]"#, #""data_offsets":[76,80]"#, "overlap")
        edit(#""data_offsets":[0,24]"#, #""data_offsets":[4,28]"#, "overlap")
        // Metadata.
        let metadata = #""__metadata__":{"args":"{\"k\": [1, 2]}","op":"sample"}"#
        for bad in [#"{"op":5}"#, #"{"op":null}"#, #"{"op":["x"]}"#, #"{"op":{"a":"b"}}"#, #"{"op":true}"#] {
            edit(metadata, #""__metadata__":\#(bad)"#, "__metadata__")
        }
        for bad in [#""x""#, "5", "[]", "null"] {
            edit(metadata, #""__metadata__":\#(bad)"#, "__metadata__")
        }

        // Headers that are not a JSON object, not JSON, or not UTF-8.
        for bad in ["[]", "\"text\"", "123", "null", "true"] {
            reject(Self.assemble(header: bad, data: data), "header \(bad)", "not a JSON object")
        }
        for bad in ["{", "}", "{\"a\":}", "{\"a\" 1}", "{'a':1}", header + "x", header + "}", "{\"a\":{}",
                    String(header.dropLast()), "not json at all", "{\"a\":\"\\ud800\"}",
                    String(repeating: "[", count: 5000)] {
            reject(Self.assemble(header: bad, data: data), "header \(bad.prefix(30))", "not valid JSON")
        }
        for bad: [UInt8] in [[0x7B, 0xFF, 0x7D], [0x7B, 0x22, 0xC3, 0x22, 0x3A, 0x31, 0x7D], [0xC0, 0x80],
                             [0x7B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x3A, 0x31, 0x7D]] {
            reject(Self.assemble(header: bad, data: data), "non-UTF-8 header \(bad)", "not valid UTF-8")
        }

        print("malformed variants: \(rejected) rejected, \(acceptedConsistently) accepted consistently")
        XCTAssertGreaterThanOrEqual(rejected, 200, "only \(rejected) malformed variants were rejected")
        XCTAssertGreaterThan(acceptedConsistently, 0, "expected some harmless header bit flips")
    }

    func testTruncatedReferenceFileIsRejected() throws {
        let url = Self.referenceDirectory.appendingPathComponent("relu.safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("reference cases not found at \(Self.referenceDirectory.path)")
        }
        let bytes = try Array(Data(contentsOf: url))
        _ = try SafetensorsFile(bytes: bytes, source: "relu.safetensors")
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            _ = expectRejection(Array(bytes.prefix(cut)), "relu truncated to \(cut)")
        }
    }
}
