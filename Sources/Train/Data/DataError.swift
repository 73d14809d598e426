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
        } else if message.hasPrefix("cannot ") || message.hasPrefix("is ") || message.hasPrefix("grew ")
                    || message.hasPrefix("read failed") {
            // A fault of the file as a whole (RegularFile's reasons): missing, a directory, a FIFO, too large.
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
    /// The whole content of `url`, with `extra` zero bytes appended (a terminator for C parsers). The path must be a
    /// regular file, checked before it is opened (a FIFO is refused, not waited on), whose size times `copies` (what
    /// reading it takes in memory) fits in this machine's memory.
    static func readBytes(_ url: URL, extra: Int = 0, copies: Int = 1) throws -> [UInt8] {
        do {
            return try RegularFile.read(url.path, extra: extra, copies: copies)
        } catch let fault as RegularFile.Fault {
            throw DataError(file: fault.path, place: nil, fault: fault.reason)
        }
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

    /// Whether anything is at `url` (following symbolic links): a file, but also a directory, a FIFO or a device,
    /// which the readers then refuse by name ("is a directory") rather than as a file not found.
    static func exists(_ url: URL) -> Bool {
        var info = stat()
        return stat(url.path, &info) == 0
    }
}
