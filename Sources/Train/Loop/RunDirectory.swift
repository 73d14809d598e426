import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Run directories

/// The folder of one training run: its checkpoint, metrics, curves and final weights, and an advisory lock that
/// keeps a second run out while one is at work.
///
/// A run directory holds one run. `prepareNewRun` refuses a folder that already holds a run's files unless told to
/// replace them, and then removes only those files (the names a run writes), never anything else.
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ url: URL) { self.url = url }

    /// "<model>-<dataset>-<preset>", the folder name of a run under the runs folder.
    public static func name(model: String, dataset: String, preset: String) -> String {
        "\(model)-\(dataset)-\(preset)"
    }

    /// Where a run of `model` goes: `base` (default "runs") / `name(model:dataset:preset:)`, or `base` itself when an
    /// explicit `base` is given for a single model (`several` false).
    public static func url(base: String?, model: String, dataset: String, preset: String, several: Bool) -> URL {
        let root = URL(fileURLWithPath: base ?? "runs")
        guard base == nil || several else { return root }
        return root.appendingPathComponent(name(model: model, dataset: dataset, preset: preset))
    }

    /// The checkpoint written after every epoch.
    public var checkpoint: URL { Trainer.checkpointURL(in: url) }
    /// The default metrics file (one JSON object per epoch).
    public var metrics: URL { url.appendingPathComponent("metrics.jsonl") }
    /// The default curves.
    public var curves: URL { url.appendingPathComponent("curves.svg") }
    /// The final weights of `model`.
    public func weights(model: String) -> URL { url.appendingPathComponent("\(model).safetensors") }
    /// The record of a finished run of a repeated-seed sweep (`SeedRun`).
    public var result: URL { url.appendingPathComponent(SeedRun.fileName) }
    /// The lock file.
    public var lockFile: URL { url.appendingPathComponent(".lock") }

    /// The files a run of `model` writes here.
    public func runFiles(model: String) -> [URL] { [checkpoint, metrics, curves, weights(model: model), result] }

    /// The files of an earlier run of `model` present here (the folder may hold other files: they are not a run's).
    public func existingRunFiles(model: String) -> [URL] {
        runFiles(model: model).filter { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// Makes the folder ready for a new run of `model`: when it holds an earlier run's files, throws
    /// `RunDirectoryError.occupied` unless `replacing`, in which case those files (and only those) are removed and
    /// returned.
    @discardableResult
    public func prepareNewRun(model: String, replacing: Bool) throws -> [URL] {
        let existing = existingRunFiles(model: model)
        guard !existing.isEmpty else { return [] }
        guard replacing else { throw RunDirectoryError.occupied(directory: url, files: existing) }
        for file in existing {
            var status = stat()
            guard lstat(file.path, &status) == 0 else { continue }
            guard (status.st_mode & S_IFMT) == S_IFREG else {
                throw RunDirectoryError.notAFile(file)
            }
            if unlink(file.path) != 0 {
                throw DataError(file, nil, "cannot remove (\(DataFiles.errnoText()))")
            }
        }
        return existing
    }

    /// Takes the folder's advisory lock (creating the folder when needed), held until the returned lock is released
    /// or the process ends; throws `RunDirectoryError.busy` with the holder's PID when another process holds it.
    public func lock() throws -> RunLock {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw DataError(url, nil, "cannot create the run directory (\(error.localizedDescription))")
        }
        let fd = open(lockFile.path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw DataError(lockFile, nil, "cannot open the lock file (\(DataFiles.errnoText()))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let reason = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard reason == EWOULDBLOCK else {
                throw DataError(lockFile, nil, "cannot lock (\(String(cString: strerror(reason))))")
            }
            let text = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
            throw RunDirectoryError.busy(directory: url,
                                         pid: Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return RunLock(fd: fd)
    }
}

/// A held run-directory lock; released by `release()`, on deinit or when the process ends.
public final class RunLock {
    private var fd: Int32

    init(fd: Int32) { self.fd = fd }

    public func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}

/// Why a run directory cannot take a run.
public enum RunDirectoryError: Error, CustomStringConvertible, Equatable {
    /// The folder holds the files of an earlier run.
    case occupied(directory: URL, files: [URL])
    /// Another process (PID, when it could be read) holds the folder's lock.
    case busy(directory: URL, pid: Int32?)
    /// A run's file name is taken by something that is not a regular file.
    case notAFile(URL)

    public var description: String {
        switch self {
        case .occupied(let directory, let files):
            return "\(directory.path) already holds a run (\(files.map(\.lastPathComponent).joined(separator: ", ")))"
        case .busy(let directory, let pid):
            return "\(directory.path) is in use by another run" + (pid.map { " (PID \($0))" } ?? "")
        case .notAFile(let url):
            return "\(url.path): not a regular file; a run's file cannot be replaced by it"
        }
    }
}

// MARK: - Output paths

/// Checks of the paths a run writes, made before anything is written.
public enum OutputPaths {
    /// The first output that is the same file as an input or as another output, as "OUTPUT LABEL is INPUT LABEL
    /// (path)", or nil. Paths are compared after resolving symbolic links, and existing files by device and inode.
    public static func conflict(inputs: [(label: String, url: URL)], outputs: [(label: String, url: URL)]) -> String? {
        func key(_ url: URL) -> String { url.standardizedFileURL.resolvingSymlinksInPath().path }
        func same(_ a: URL, _ b: URL) -> Bool {
            if key(a) == key(b) { return true }
            var x = stat(), y = stat()
            return stat(a.path, &x) == 0 && stat(b.path, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino
        }
        for (index, output) in outputs.enumerated() {
            for input in inputs where same(output.url, input.url) {
                return "\(output.label) \(output.url.standardizedFileURL.path) is also \(input.label)"
            }
            for other in outputs[..<index] where same(output.url, other.url) {
                return "\(output.label) \(output.url.standardizedFileURL.path) is also \(other.label)"
            }
        }
        return nil
    }

    /// Throws a `DataError` naming `url` when a file cannot be written there: the path is a directory or another
    /// non-regular file, or its nearest existing folder is not a writable directory.
    public static func checkWritable(_ url: URL) throws {
        var status = stat()
        if stat(url.path, &status) == 0 {
            let kind = status.st_mode & S_IFMT
            if kind == S_IFDIR { throw DataError(url, nil, "is a directory, not a file") }
            if kind != S_IFREG { throw DataError(url, nil, "is not a regular file") }
        }
        var folder = url.deletingLastPathComponent()
        while true {
            if stat(folder.path, &status) == 0 { break }
            let parent = folder.deletingLastPathComponent()
            if parent.path == folder.path { break }
            folder = parent
        }
        guard (status.st_mode & S_IFMT) == S_IFDIR else {
            throw DataError(url, nil, "cannot be written: \(folder.path) is not a directory")
        }
        guard access(folder.path, W_OK) == 0 else {
            throw DataError(url, nil, "cannot be written: \(folder.path) is not writable (\(DataFiles.errnoText()))")
        }
    }

    /// Whether something exists at `url` (a file, a folder, a dangling link).
    public static func exists(_ url: URL) -> Bool {
        var status = stat()
        return lstat(url.path, &status) == 0
    }
}
