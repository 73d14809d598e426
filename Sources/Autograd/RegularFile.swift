import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Reading a whole file a user names

/// Reads whole files whose path a user gave: the path is checked to be a regular file before it is opened (a FIFO
/// would block `open` until a writer came; a directory, a device or a socket is no data file), it is opened without
/// blocking, and a file too large for this machine's memory is refused before anything is allocated.
package enum RegularFile {
    /// A file that cannot be read: its path and why, worded to follow the path ("is a directory").
    package struct Fault: Error, CustomStringConvertible {
        package let path: String
        package let reason: String
        package var description: String { "\(path): \(reason)" }
    }

    /// Why the file of `mode` is not a regular file ("is a directory", "is a FIFO, not a regular file"), or nil.
    package static func problem(mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "is a directory, not a file"
        case S_IFIFO: return "is a FIFO, not a regular file"
        case S_IFCHR: return "is a character device, not a regular file"
        case S_IFBLK: return "is a block device, not a regular file"
        case S_IFSOCK: return "is a socket, not a regular file"
        default: return "is not a regular file"
        }
    }

    /// Why `path` cannot be read as a regular file (it is missing, a directory, a FIFO, ...), or nil when it can be
    /// opened as one. Follows symbolic links; never opens the file.
    package static func problem(at path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return "cannot open (\(String(cString: strerror(errno))))" }
        return problem(mode: info.st_mode)
    }

    /// Bytes this process can hold in memory: the physical memory, or less when a control group or a resource limit
    /// (address space, data segment) allows less.
    package static let memoryBudget: Int = {
        var budget = Int.max
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        if pages > 0 && pageSize > 0 { budget = pages.multipliedReportingOverflow(by: pageSize).partialValue }
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
                budget = min(budget, limit)
            }
        }
        for resource in [RLIMIT_AS, RLIMIT_DATA] {
            var limit = rlimit()
            #if canImport(Glibc)
            let got = getrlimit(__rlimit_resource_t(resource.rawValue), &limit)
            #else
            let got = getrlimit(resource, &limit)
            #endif
            if got == 0 && limit.rlim_cur < rlim_t(Int.max) {
                budget = min(budget, Int(limit.rlim_cur))
            }
        }
        return budget
    }()

    /// `bytes` for a message: "8589934592 bytes (8.0 GiB)".
    package static func size(_ bytes: Int) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= 0.1 ? "\(bytes) bytes (\(String(format: "%.1f", gib)) GiB)" : "\(bytes) bytes"
    }

    /// The whole content of the regular file at `path`, followed by `extra` zero bytes (a terminator for C parsers).
    ///
    /// - Parameter copies: how many times its size reading the file takes in memory (the bytes and what is decoded
    ///   from them); a file whose size times `copies` exceeds `memoryBudget` is refused before it is read.
    package static func read(_ path: String, extra: Int = 0, copies: Int = 1) throws -> [UInt8] {
        func fault(_ reason: String) -> Fault { Fault(path: path, reason: reason) }
        // The kind of file first: opening a FIFO would wait for a writer.
        if let problem = problem(at: path) { throw fault(problem) }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 { throw fault("cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw fault("cannot stat (\(String(cString: strerror(errno))))") }
        // The path may have been replaced between the check and the open.
        if let problem = problem(mode: info.st_mode) { throw fault(problem) }
        let budget = memoryBudget
        let fileSize = max(Int(info.st_size), 0)
        let (needed, overflow) = fileSize.multipliedReportingOverflow(by: max(copies, 1))
        guard !overflow && needed <= budget else {
            throw fault("is \(size(fileSize))" + (copies > 1 ? "; reading it takes about \(copies) times that, " : ", ")
                        + "more than the \(size(budget)) of memory this machine has for it")
        }
        // The size from fstat is a hint only: one spare byte reveals whether the file grew.
        let limit = budget / max(copies, 1)
        var bytes = [UInt8](repeating: 0, count: fileSize + 1 + extra)
        var used = 0
        while true {
            if bytes.count - extra - used == 0 {
                guard used < limit else { throw fault("grew past \(size(limit)) while being read") }
                bytes.append(contentsOf: repeatElement(0, count: min(max(bytes.count, 65536), limit - used + 1)))
            }
            let room = bytes.count - extra - used
            let got = bytes.withUnsafeMutableBytes { buf in Foundation.read(fd, buf.baseAddress! + used, room) }
            if got < 0 {
                if errno == EINTR { continue }
                throw fault("read failed (\(String(cString: strerror(errno))))")
            }
            if got == 0 { break }
            used += got
        }
        bytes.removeLast(bytes.count - used - extra)
        for i in used..<(used + extra) { bytes[i] = 0 }
        return bytes
    }
}
