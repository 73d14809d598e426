import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Reading and writing of the safetensors format:
//
//   [8 bytes]  header length N, unsigned little-endian
//   [N bytes]  UTF-8 JSON object: name -> {"dtype", "shape", "data_offsets": [begin, end]},
//              plus an optional "__metadata__" map of strings
//   [rest]     data buffer; offsets are relative to its start, values little-endian, row-major
//
// The reader treats its input as untrusted: every malformed file is reported as a `SafetensorsError`
// naming the origin and the fault, never as a crash. It accepts what other writers legitimately produce:
// unpadded headers, unaligned offsets, gaps between tensors, trailing bytes after the last tensor, unknown
// extra fields in an entry, and integral numbers written with a fraction or exponent (`2.0`). Empty tensors
// (zero bytes) never count as overlapping another tensor.

// MARK: - Public types

/// Element types supported by the reader and writer.
public enum SafetensorsDType: String, Sendable {
    /// 32-bit floats, "F32".
    case f32 = "F32"
    /// 64-bit floats, "F64".
    case f64 = "F64"
    /// 64-bit signed integers, "I64" (PyTorch's `num_batches_tracked`).
    case i64 = "I64"

    /// Size of one element in bytes.
    var itemSize: Int {
        switch self {
        case .f32: return 4
        case .f64, .i64: return 8
        }
    }
}

/// The flat, row-major values of one tensor, in their stored element type.
public enum SafetensorsValues: Sendable, Equatable {
    /// F32 values.
    case f32([Float])
    /// F64 values.
    case f64([Double])
    /// I64 values.
    case i64([Int64])

    /// Number of elements.
    var count: Int {
        switch self {
        case .f32(let a): return a.count
        case .f64(let a): return a.count
        case .i64(let a): return a.count
        }
    }

    var dtype: SafetensorsDType {
        switch self {
        case .f32: return .f32
        case .f64: return .f64
        case .i64: return .i64
        }
    }
}

/// One named tensor of a safetensors file: its shape and its values.
public struct SafetensorsEntry: Sendable, Equatable {
    /// Dimensions, outermost first; `[]` is a scalar (one element).
    public var shape: [Int]
    /// Row-major values; their count must equal the product of `shape`.
    public var values: SafetensorsValues

    /// The stored element type, as implied by `values`.
    public var dtype: SafetensorsDType { values.dtype }

    /// Creates an entry. The number of values must equal the product of `shape`, and no dimension may be negative.
    public init(shape: [Int], values: SafetensorsValues) {
        let expected = safetensorsElementCount(shape)
        check(expected != nil, "SafetensorsEntry: invalid shape \(shape) (negative dimension or overflow)")
        check(expected == values.count,
              "SafetensorsEntry: shape \(shape) needs \(expected ?? -1) values, got \(values.count)")
        self.shape = shape
        self.values = values
    }

    /// The values converted to `Float` (exact for F32; rounded for F64 and I64).
    public var floats: [Float] {
        switch values {
        case .f32(let a): return a
        case .f64(let a): return a.map { Float($0) }
        case .i64(let a): return a.map { Float($0) }
        }
    }

    /// The values converted to `Double` (exact for F32 and F64; rounded for I64 beyond 2^53).
    public var doubles: [Double] {
        switch values {
        case .f32(let a): return a.map { Double($0) }
        case .f64(let a): return a
        case .i64(let a): return a.map { Double($0) }
        }
    }
}

/// A malformed or unreadable safetensors file, or a failed write.
public struct SafetensorsError: Error, CustomStringConvertible, Sendable {
    /// The file (or other origin) concerned.
    public let file: String
    /// What is wrong.
    public let message: String

    /// An error about `file` (a path or name), described by `message`.
    public init(file: String, message: String) {
        self.file = file
        self.message = message
    }

    /// `"<file>: <fault>"`.
    public var description: String { "\(file): \(message)" }
}

extension SafetensorsError: LocalizedError {
    /// The same text as `description`, for `localizedDescription`.
    public var errorDescription: String? { description }
}

/// The contents of a safetensors file: named tensors plus string metadata.
public struct SafetensorsFile: Sendable {
    /// Tensors by name. The name `__metadata__` is reserved and may not be used.
    public var entries: [String: SafetensorsEntry]
    /// The `__metadata__` map (empty when the file has none).
    public var metadata: [String: String]

    /// A file of named tensors and string metadata (the `__metadata__` entry), for writing.
    public init(entries: [String: SafetensorsEntry] = [:], metadata: [String: String] = [:]) {
        self.entries = entries
        self.metadata = metadata
    }

    /// Reads and validates a file; throws `SafetensorsError` naming the file and the fault.
    ///
    /// The path must be a regular file (a directory, a FIFO or a device is refused by name, before it is opened) and
    /// small enough that its bytes and its decoded values fit in this machine's memory.
    public init(contentsOf url: URL) throws {
        guard url.isFileURL else {
            throw SafetensorsError(file: url.absoluteString, message: "cannot read: not a file URL")
        }
        let bytes: [UInt8]
        do {
            bytes = try RegularFile.read(url.path, copies: 2)
        } catch let fault as RegularFile.Fault {
            throw SafetensorsError(file: fault.path, message: fault.reason)
        }
        try self.init(bytes: bytes, source: url.path)
    }

    /// Parses bytes; `source` names the origin in error messages.
    public init(bytes: [UInt8], source: String) throws {
        let parsed = try bytes.withUnsafeBytes { try SafetensorsParser.parse($0, source: source) }
        self.init(entries: parsed.entries, metadata: parsed.metadata)
    }

    /// The file's bytes. Deterministic: tensors are stored in name order, metadata keys are sorted, and the header
    /// is padded with spaces so that the data buffer starts at a multiple of 8 bytes.
    ///
    /// Every entry must be consistent (value count equal to the product of its shape) and no entry may be named
    /// `__metadata__`; `write(to:)` reports these as errors, here they are programming errors.
    public func serialized() -> [UInt8] {
        if let fault = consistencyFault() {
            fatalError("SafetensorsFile.serialized(): \(fault)")
        }
        let names = entries.keys.sorted()

        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            var firstKey = true
            for key in metadata.keys.sorted() {
                if !firstKey { header += "," }
                firstKey = false
                header += safetensorsJSONString(key) + ":" + safetensorsJSONString(metadata[key]!)
            }
            header += "}"
            first = false
        }
        var offset = 0
        for name in names {
            let entry = entries[name]!
            let length = entry.values.count * entry.dtype.itemSize
            if !first { header += "," }
            first = false
            header += safetensorsJSONString(name)
            header += ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":["
            header += entry.shape.map(String.init).joined(separator: ",")
            header += "],\"data_offsets\":[\(offset),\(offset + length)]}"
            offset += length
        }
        header += "}"

        var headerBytes = Array(header.utf8)
        let padding = (8 - headerBytes.count % 8) % 8
        headerBytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))

        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        var length = UInt64(headerBytes.count)
        for _ in 0..<8 {
            out.append(UInt8(truncatingIfNeeded: length))
            length >>= 8
        }
        out.append(contentsOf: headerBytes)
        for name in names {
            switch entries[name]!.values {
            case .f32(let a): safetensorsAppendLittleEndian(a.map { $0.bitPattern }, to: &out)
            case .f64(let a): safetensorsAppendLittleEndian(a.map { $0.bitPattern }, to: &out)
            case .i64(let a): safetensorsAppendLittleEndian(a, to: &out)
            }
        }
        return out
    }

    /// Writes atomically: to a temporary file in the same directory, fsync, then rename over `url`.
    ///
    /// On failure the destination is left untouched and the temporary file is removed.
    public func write(to url: URL) throws {
        guard url.isFileURL else {
            throw SafetensorsError(file: url.absoluteString, message: "can only write to a file URL")
        }
        let path = url.path
        if let fault = consistencyFault() {
            throw SafetensorsError(file: path, message: fault)
        }
        let bytes = serialized()
        try SafetensorsAtomicWriter.write(bytes, to: url)
    }

    /// A description of the first inconsistency that prevents serialization, or nil.
    private func consistencyFault() -> String? {
        for name in entries.keys.sorted() {
            if name == SafetensorsParser.metadataKey {
                return "the name \"__metadata__\" is reserved and cannot name a tensor"
            }
            let entry = entries[name]!
            guard let count = safetensorsElementCount(entry.shape) else {
                return "tensor \(safetensorsQuote(name)): invalid shape \(entry.shape)"
                    + " (negative dimension or element count overflow)"
            }
            if count != entry.values.count {
                return "tensor \(safetensorsQuote(name)): shape \(entry.shape) needs \(count) values"
                    + " but has \(entry.values.count)"
            }
            if count.multipliedReportingOverflow(by: entry.dtype.itemSize).overflow {
                return "tensor \(safetensorsQuote(name)): byte size overflows"
            }
        }
        return nil
    }
}

// MARK: - Parsing

enum SafetensorsParser {
    static let metadataKey = "__metadata__"
    /// Largest header accepted; real headers are a few kilobytes, so anything beyond this is a corrupt length.
    static let maxHeaderLength: UInt64 = 100_000_000

    /// A validated tensor description, before its values are decoded.
    private struct Layout {
        var name: String
        var dtype: SafetensorsDType
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    static func parse(_ buffer: UnsafeRawBufferPointer, source: String) throws
        -> (entries: [String: SafetensorsEntry], metadata: [String: String])
    {
        func fail(_ message: String) -> SafetensorsError { SafetensorsError(file: source, message: message) }

        // Length prefix.
        guard buffer.count >= 8 else {
            throw fail("file is \(buffer.count) bytes, shorter than the 8-byte header length prefix")
        }
        var headerLength: UInt64 = 0
        for i in (0..<8).reversed() {
            headerLength = (headerLength << 8) | UInt64(buffer[i])
        }
        let available = UInt64(buffer.count - 8)
        guard headerLength <= available else {
            throw fail("header length \(headerLength) runs past the end of the file"
                + " (\(available) bytes follow the length prefix)")
        }
        guard headerLength <= maxHeaderLength else {
            throw fail("header length \(headerLength) exceeds the limit of \(maxHeaderLength) bytes")
        }
        let headerEnd = 8 + Int(headerLength)
        let header = UnsafeRawBufferPointer(rebasing: buffer[8..<headerEnd])
        let data = UnsafeRawBufferPointer(rebasing: buffer[headerEnd...])
        guard !header.isEmpty else { throw fail("header is empty (length 0)") }

        // Header JSON.
        guard String(validating: header, as: UTF8.self) != nil else {
            throw fail("header is not valid UTF-8")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(header), options: [.fragmentsAllowed])
        } catch {
            throw fail("header is not valid JSON (\(safetensorsReason(error)))")
        }
        guard let object = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }

        // Metadata.
        var metadata: [String: String] = [:]
        if let raw = object[metadataKey] {
            guard let map = raw as? [String: Any] else {
                throw fail("\"__metadata__\" is not a JSON object of strings")
            }
            for key in map.keys.sorted() {
                guard let value = map[key] as? String else {
                    throw fail("\"__metadata__\" value for key \(safetensorsQuote(key)) is not a string"
                        + " (\(describe(map[key]!)))")
                }
                metadata[key] = value
            }
        }

        // Tensor descriptions: validated completely before any value is decoded.
        var layouts: [Layout] = []
        layouts.reserveCapacity(object.count)
        for name in object.keys.sorted() where name != metadataKey {
            func bad(_ message: String) -> SafetensorsError { fail("tensor \(safetensorsQuote(name)): \(message)") }
            guard let info = object[name] as? [String: Any] else {
                throw bad("entry is not a JSON object (\(describe(object[name]!)))")
            }

            guard let rawDType = info["dtype"] else { throw bad("missing \"dtype\"") }
            guard let dtypeName = rawDType as? String else {
                throw bad("\"dtype\" is not a string (\(describe(rawDType)))")
            }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw bad("unsupported dtype \(safetensorsQuote(dtypeName)) (supported: F32, F64, I64)")
            }

            guard let rawShape = info["shape"] else { throw bad("missing \"shape\"") }
            guard let shapeArray = rawShape as? [Any] else {
                throw bad("\"shape\" is not an array (\(describe(rawShape)))")
            }
            var shape: [Int] = []
            shape.reserveCapacity(shapeArray.count)
            for (axis, rawDim) in shapeArray.enumerated() {
                guard let dim = nonNegativeInteger(rawDim) else {
                    throw bad("shape dimension \(axis) (\(describe(rawDim))) is not a non-negative integer")
                }
                shape.append(dim)
            }
            guard let count = safetensorsElementCount(shape) else {
                throw bad("shape \(shape) has too many elements (element count overflows)")
            }
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
            guard !overflow else {
                throw bad("shape \(shape) of \(dtype.rawValue) is too large (byte size overflows)")
            }

            guard let rawOffsets = info["data_offsets"] else { throw bad("missing \"data_offsets\"") }
            guard let offsetArray = rawOffsets as? [Any], offsetArray.count == 2 else {
                throw bad("\"data_offsets\" is not an array of two integers (\(describe(rawOffsets)))")
            }
            guard let begin = nonNegativeInteger(offsetArray[0]), let end = nonNegativeInteger(offsetArray[1]) else {
                throw bad("\"data_offsets\" \(describe(rawOffsets)) are not two non-negative integers")
            }
            guard begin <= end else {
                throw bad("data_offsets [\(begin), \(end)] begin after end")
            }
            guard end <= data.count else {
                throw bad("data_offsets [\(begin), \(end)] end past the data buffer (\(data.count) bytes)")
            }
            guard end - begin == byteCount else {
                throw bad("data_offsets [\(begin), \(end)] span \(end - begin) bytes, but shape \(shape)"
                    + " of \(dtype.rawValue) needs \(byteCount) bytes")
            }
            layouts.append(Layout(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }

        // Overlaps: in order of position, each non-empty range must start at or after the previous one's end.
        let ordered = layouts.filter { $0.begin < $0.end }.sorted {
            ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name)
        }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.begin < previous.end {
            throw fail("tensors \(safetensorsQuote(previous.name)) data_offsets [\(previous.begin), \(previous.end)]"
                + " and \(safetensorsQuote(next.name)) data_offsets [\(next.begin), \(next.end)] overlap")
        }

        // Values.
        var entries: [String: SafetensorsEntry] = [:]
        entries.reserveCapacity(layouts.count)
        for layout in layouts {
            let raw = UnsafeRawBufferPointer(rebasing: data[layout.begin..<layout.end])
            let values: SafetensorsValues
            switch layout.dtype {
            case .f32: values = .f32(safetensorsDecode(raw, as: UInt32.self).map { Float(bitPattern: $0) })
            case .f64: values = .f64(safetensorsDecode(raw, as: UInt64.self).map { Double(bitPattern: $0) })
            case .i64: values = .i64(safetensorsDecode(raw, as: Int64.self))
            }
            entries[layout.name] = SafetensorsEntry(shape: layout.shape, values: values)
        }
        return (entries, metadata)
    }

    /// The value as an `Int` if it is a JSON number with an integral value in `0...Int.max`; nil otherwise
    /// (booleans, strings, fractions, negatives, and numbers too large for `Int` included). Never traps.
    private static func nonNegativeInteger(_ value: Any) -> Int? {
        guard let number = value as? NSNumber, !isBoolean(number) else { return nil }
        let kind = String(cString: number.objCType)
        switch kind {
        case "f", "d":
            let d = number.doubleValue
            // 2^63 is exactly representable; every finite double below it converts to Int without trapping.
            guard d.isFinite, d >= 0, d < 9_223_372_036_854_775_808.0, d.rounded(.towardZero) == d else {
                return nil
            }
            return Int(d)
        case "Q", "L", "I", "S", "C":
            let u = number.uint64Value
            return u <= UInt64(Int.max) ? Int(u) : nil
        case "q", "l", "i", "s", "c":
            let i = number.int64Value
            return i >= 0 ? Int(exactly: i) : nil
        default:
            return nil
        }
    }

    private static func isBoolean(_ number: NSNumber) -> Bool {
        type(of: number) == type(of: NSNumber(value: true))
    }

    /// A short rendering of a JSON value for error messages.
    private static func describe(_ value: Any) -> String {
        let text: String
        if let number = value as? NSNumber {
            text = isBoolean(number) ? (number.boolValue ? "true" : "false") : number.description
        } else if let string = value as? String {
            text = safetensorsQuote(string)
        } else if value is NSNull {
            text = "null"
        } else if let array = value as? [Any] {
            text = "[" + array.prefix(8).map(describe).joined(separator: ", ") + (array.count > 8 ? ", ..." : "") + "]"
        } else if value is [String: Any] {
            text = "an object"
        } else {
            text = String(describing: value)
        }
        return text.count > 80 ? String(text.prefix(77)) + "..." : text
    }
}

// MARK: - Atomic writing

enum SafetensorsAtomicWriter {
    static func write(_ bytes: [UInt8], to url: URL) throws {
        let path = url.path
        func fail(_ what: String, _ code: Int32) -> SafetensorsError {
            SafetensorsError(file: path, message: "\(what) (\(String(cString: strerror(code))))")
        }

        let directory = url.deletingLastPathComponent().path
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(token)").path

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create temporary file \(temporary)", errno) }
        var closed = false
        var renamed = false
        defer {
            if !closed { _ = close(fd) }
            if !renamed { _ = unlink(temporary) }
        }

        try bytes.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let n = safetensorsPOSIXWrite(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail("cannot write temporary file \(temporary)", errno)
                }
                written += n
            }
        }
        guard fsync(fd) == 0 else { throw fail("cannot fsync temporary file \(temporary)", errno) }
        closed = true
        guard close(fd) == 0 else { throw fail("cannot close temporary file \(temporary)", errno) }
        guard rename(temporary, path) == 0 else {
            throw fail("cannot rename temporary file \(temporary) over the destination", errno)
        }
        renamed = true

        // Make the rename itself durable; failure here does not undo the (already visible) write.
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            _ = close(directoryFD)
        }
    }
}

/// The C `write`, named apart from the Swift methods called `write` in this file.
@inline(__always)
private func safetensorsPOSIXWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buffer, count)
    #elseif canImport(Musl)
    return Musl.write(fd, buffer, count)
    #else
    return Darwin.write(fd, buffer, count)
    #endif
}

// MARK: - Helpers

/// Product of `shape`, or nil if a dimension is negative or the product overflows `Int`.
func safetensorsElementCount(_ shape: [Int]) -> Int? {
    var count = 1
    for dim in shape {
        guard dim >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: dim)
        guard !overflow else { return nil }
        count = product
    }
    return count
}

/// Decodes little-endian fixed-width integers from raw bytes (count must be a multiple of the size).
private func safetensorsDecode<T: FixedWidthInteger>(_ raw: UnsafeRawBufferPointer, as type: T.Type) -> [T] {
    let count = raw.count / MemoryLayout<T>.size
    let values = [T](unsafeUninitializedCapacity: count) { destination, initialized in
        if count > 0 {
            UnsafeMutableRawBufferPointer(destination).copyMemory(
                from: UnsafeRawBufferPointer(rebasing: raw[0..<(count * MemoryLayout<T>.size)]))
        }
        initialized = count
    }
    #if _endian(big)
    return values.map { T(littleEndian: $0) }
    #else
    return values
    #endif
}

/// Appends fixed-width integers as little-endian bytes.
private func safetensorsAppendLittleEndian<T: FixedWidthInteger>(_ values: [T], to out: inout [UInt8]) {
    #if _endian(big)
    let stored = values.map { $0.littleEndian }
    #else
    let stored = values
    #endif
    stored.withUnsafeBytes { out.append(contentsOf: $0) }
}

/// A JSON string literal for `text`.
private func safetensorsJSONString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// A name quoted for error messages (shortened if very long).
private func safetensorsQuote(_ text: String) -> String {
    let shown = text.count > 60 ? String(text.prefix(57)) + "..." : text
    return safetensorsJSONString(shown)
}

/// The most specific human-readable reason carried by an error.
private func safetensorsReason(_ error: Error) -> String {
    let nsError = error as NSError
    if let detail = nsError.userInfo[NSDebugDescriptionErrorKey] as? String, !detail.isEmpty {
        return detail.count > 200 ? String(detail.prefix(197)) + "..." : detail
    }
    return nsError.localizedDescription
}
