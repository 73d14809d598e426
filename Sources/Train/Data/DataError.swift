import Autograd
import Foundation

/// A fault in a data file: names the file, the place in it (line, row or byte offset) and what is wrong.
public struct DataError: Error, CustomStringConvertible, Sendable {
    /// The file concerned (its path).
    public let file: String
    /// Where in the file, e.g. "line 12", "byte 8"; nil when the fault concerns the file as a whole.
    public let place: String?
    /// What is wrong.
    public let fault: String

    public init(file: String, place: String? = nil, fault: String) {
        self.file = file
        self.place = place
        self.fault = fault
    }

    init(_ url: URL, _ place: String? = nil, _ fault: String) {
        self.init(file: url.path, place: place, fault: fault)
    }

    /// `"<file>: <place>: <fault>"`, or `"<file>: <fault>"` without a place.
    public var description: String {
        if let place { return "\(file): \(place): \(fault)" }
        return "\(file): \(fault)"
    }
}

extension DataError: LocalizedError {
    public var errorDescription: String? { description }
}

extension DataError {
    /// The same fault of a safetensors file, with the place (length prefix, header, metadata, a tensor, the data
    /// offsets) split from the description of the fault.
    public init(_ error: SafetensorsError) {
        let message = error.message
        func after(_ prefix: String) -> String { String(message.dropFirst(prefix.count)) }
        if message.hasPrefix("tensor \""), let (name, rest) = Self.splitQuotedName(message) {
            self.init(file: error.file, place: "tensor \(name)", fault: rest)
        } else if message.hasPrefix("tensors ") {
            self.init(file: error.file, place: "data offsets", fault: after("tensors "))
        } else if message.hasPrefix("header length") || message.hasPrefix("file is ") {
            self.init(file: error.file, place: "header length (bytes 0-7)", fault: message)
        } else if message.hasPrefix("header is ") {
            self.init(file: error.file, place: "header", fault: after("header is "))
        } else if message.hasPrefix("\"__metadata__\"") {
            self.init(file: error.file, place: "header \"__metadata__\"", fault: after("\"__metadata__\" "))
        } else if message.hasPrefix("cannot read") {
            self.init(file: error.file, place: nil, fault: message)
        } else {
            self.init(file: error.file, place: "file", fault: message)
        }
    }

    /// Splits `tensor "<name>": <rest>` (the name JSON-quoted) into the quoted name and the rest.
    private static func splitQuotedName(_ message: String) -> (String, String)? {
        let characters = Array(message)
        var i = 8  // just after `tensor "`
        var escaped = false
        while i < characters.count {
            let c = characters[i]
            if escaped {
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "\"" {
                break
            }
            i += 1
        }
        guard i + 2 < characters.count, characters[i + 1] == ":", characters[i + 2] == " " else { return nil }
        return (String(characters[7...i]), String(characters[(i + 3)...]))
    }

    /// `error` as a `DataError` about `file` when it is a known file fault (a `DataError` or a `SafetensorsError`);
    /// otherwise a `DataError` about `file` whose fault is the error's description.
    public static func about(_ file: String, _ error: Error) -> DataError {
        switch error {
        case let error as DataError: return error
        case let error as SafetensorsError: return DataError(error)
        default: return DataError(file: file, place: nil, fault: "\(error)")
        }
    }
}

/// File access shared by the data-set readers and writers.
enum DataFiles {
    /// Largest file the readers accept (a guard against reading a device or a runaway file into memory).
    static let maximumFileSize = 1 << 36

    /// The whole content of `url`, with `extra` zero bytes appended (a terminator for C parsers).
    static func readBytes(_ url: URL, extra: Int = 0) throws -> [UInt8] {
        let path = url.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw DataError(url, nil, "cannot open (\(errnoText()))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw DataError(url, nil, "cannot stat (\(errnoText()))") }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw DataError(url, nil, "is a directory, not a file") }
        if (info.st_mode & S_IFMT) != S_IFREG {
            throw DataError(url, nil, "is not a regular file (a device, pipe or socket)")
        }
        guard Int(info.st_size) <= maximumFileSize else {
            throw DataError(url, nil, "is \(info.st_size) bytes, more than the \(maximumFileSize) bytes a data file may have")
        }
        // The size from fstat is a hint only: one spare byte reveals whether the file grew.
        var bytes = [UInt8](repeating: 0, count: max(Int(info.st_size), 0) + 1 + extra)
        var used = 0
        while true {
            if bytes.count - extra - used == 0 {
                guard used < maximumFileSize else {
                    throw DataError(url, nil, "grew past \(maximumFileSize) bytes while being read")
                }
                bytes.append(contentsOf: repeatElement(0, count: max(bytes.count, 65536)))
            }
            let room = bytes.count - extra - used
            let got = bytes.withUnsafeMutableBytes { buf in read(fd, buf.baseAddress! + used, room) }
            if got < 0 {
                if errno == EINTR { continue }
                throw DataError(url, nil, "read failed (\(errnoText()))")
            }
            if got == 0 { break }
            used += got
        }
        bytes.removeLast(bytes.count - used - extra)
        for i in used..<(used + extra) { bytes[i] = 0 }
        return bytes
    }

    /// Writes to a temporary file beside `url` through `body`, flushes it to disk, then renames it over `url`,
    /// so `url` is either absent, the old file or the complete new one.
    static func writeAtomically(_ url: URL, _ body: (UnsafeMutablePointer<FILE>) throws -> Void) throws {
        let dir = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw DataError(dir, nil, "cannot create directory (\(error.localizedDescription))")
        }
        let temp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard let file = fopen(temp.path, "wbe") else {
            throw DataError(temp, nil, "cannot create (\(errnoText()))")
        }
        var closed = false
        do {
            try body(file)
            if ferror(file) != 0 || fflush(file) != 0 { throw DataError(temp, nil, "write failed (\(errnoText()))") }
            if fsync(fileno(file)) != 0 { throw DataError(temp, nil, "cannot flush to disk (\(errnoText()))") }
            closed = true
            if fclose(file) != 0 { throw DataError(temp, nil, "write failed on close (\(errnoText()))") }
            if rename(temp.path, url.path) != 0 {
                throw DataError(url, nil, "cannot rename \(temp.lastPathComponent) into place (\(errnoText()))")
            }
        } catch {
            if !closed { fclose(file) }
            unlink(temp.path)
            throw error
        }
    }

    /// Bytes of a file quoted in an error message: at most `limit` of them, control and non-ASCII bytes written as
    /// `\xNN`, "..." when cut.
    static func shown<C: Collection>(_ bytes: C, limit: Int = 40) -> String where C.Element == UInt8 {
        var out = ""
        for c in bytes.prefix(limit) {
            if c < 0x20 || c >= 0x7F {
                let hex = String(c, radix: 16, uppercase: true)
                out += "\\x" + (hex.count == 1 ? "0" : "") + hex
            } else {
                out.unicodeScalars.append(Unicode.Scalar(c))
            }
        }
        return bytes.count > limit ? out + "..." : out
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    static func exists(_ url: URL) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && !isDir.boolValue
    }
}
