import CBLAS
import Dispatch
import Foundation

/// The framework's thread settings: how many threads its own kernels split work over, and the BLAS in use.
public enum Parallel {
    /// Threads used by the framework's kernels (im2col, pooling, elementwise loops over large tensors).
    public nonisolated(unsafe) static var threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Sets the framework's thread count and the BLAS library's, when it exposes one (OpenBLAS does).
    public static func setThreads(_ count: Int) {
        threads = max(1, count)
        BLASLibrary.setThreads(threads)
    }

    /// Runs `body(chunk)` for `chunks` chunks of work, spread over up to `threads` threads; runs inline for one.
    public static func forEach(_ chunks: Int, _ body: (Int) -> Void) {
        if chunks <= 0 { return }
        if threads <= 1 || chunks == 1 {
            for i in 0..<chunks { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
        }
    }

    /// Splits `0..<count` into about `threads` contiguous ranges and runs `body` on each, in parallel.
    /// Work smaller than `minimumPerThread` runs inline.
    public static func forRanges(_ count: Int, minimumPerThread: Int = 1 << 14, _ body: (Range<Int>) -> Void) {
        let parts = Swift.min(threads, Swift.max(1, count / Swift.max(1, minimumPerThread)))
        if parts <= 1 { body(0..<count); return }
        forEach(parts) { p in
            body((count * p / parts) ..< (count * (p + 1) / parts))
        }
    }
}

/// The BLAS library the process runs with, found at run time (Debian picks it through `libblas.so.3`).
public enum BLASLibrary {
    private typealias SetThreads = @convention(c) (Int32) -> Void
    private typealias GetThreads = @convention(c) () -> Int32
    private typealias GetConfig = @convention(c) () -> UnsafeMutablePointer<CChar>?

    private static let handle = dlopen(nil, RTLD_NOW)

    private static func symbol<T>(_ name: String, as: T.Type) -> T? {
        guard let handle, let pointer = dlsym(handle, name) else { return nil }
        return unsafeBitCast(pointer, to: T.self)
    }

    /// A one-line description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, 2 threads".
    public static var description: String {
        if let config = symbol("openblas_get_config", as: GetConfig.self), let text = config() {
            return "\(String(cString: text)), \(threads) BLAS threads"
        }
        return "reference or unknown BLAS (not OpenBLAS: expect it to be much slower; install libopenblas0-pthread)"
    }

    /// True when the running BLAS is OpenBLAS.
    public static var isOpenBLAS: Bool { symbol("openblas_get_config", as: GetConfig.self) != nil }

    /// The BLAS library's own thread count (1 when it has no such setting).
    public static var threads: Int {
        guard let get = symbol("openblas_get_num_threads", as: GetThreads.self) else { return 1 }
        return Int(get())
    }

    static func setThreads(_ count: Int) {
        symbol("openblas_set_num_threads", as: SetThreads.self)?(Int32(count))
    }
}
