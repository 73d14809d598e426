import CBLAS
import CKernels
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The framework's thread settings: how many threads its kernels and matrix products split work over, and the BLAS
/// in use.
///
/// Work is spread over a persistent pool of `threads - 1` worker threads plus the calling thread. BLAS itself is
/// kept single-threaded: large matrix products are split into blocks that the pool runs side by side, so that only
/// one set of threads ever competes for the cores (a threaded BLAS next to the pool oversubscribes them, and its
/// idle threads spin in `sched_yield`).
public enum Parallel {
    /// Threads used by the framework's kernels and matrix products (the caller counts as one).
    public nonisolated(unsafe) static var threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// The most threads accepted: 4 per core, at most 256. More only adds per-thread buffers (OpenBLAS keeps one per
    /// thread; under an address-space limit 1000 of them livelock it) and contention, never speed.
    public static let maximumThreads = min(threadCeiling, threadsPerCore * max(1, ProcessInfo.processInfo.activeProcessorCount))
    /// Threads accepted per core (`maximumThreads`).
    public static let threadsPerCore = 4
    /// Threads accepted at most, whatever the core count (`maximumThreads`).
    public static let threadCeiling = 256

    /// A thread count outside `1...Parallel.maximumThreads`.
    public struct ThreadCountError: Error, CustomStringConvertible, Sendable {
        public let count: Int
        public var description: String {
            "thread count \(count) is out of range 1...\(Parallel.maximumThreads) (\(Parallel.threadsPerCore) per core "
                + "on the \(ProcessInfo.processInfo.activeProcessorCount) cores here, at most \(Parallel.threadCeiling))"
        }
    }

    /// `count` when it is in `1...maximumThreads`; throws `ThreadCountError` saying the range otherwise. For a
    /// command's `--threads` flag: call it, report the error, then `setThreads`.
    public static func checkedThreadCount(_ count: Int) throws -> Int {
        guard count >= 1 && count <= maximumThreads else { throw ThreadCountError(count: count) }
        return count
    }

    /// Sets the thread count for the framework's kernels and its matrix products, clamped to
    /// `1...maximumThreads` (use `checkedThreadCount` first to refuse a count out of range instead).
    public static func setThreads(_ count: Int) {
        threads = min(max(1, count), maximumThreads)
        BLASLibrary.prepare()
    }

    /// Runs `body(chunk)` for `chunks` chunks of work, spread over up to `threads` threads; runs inline for one
    /// thread, one chunk, or when called from inside another parallel region (or while the pool is busy).
    public static func forEach(_ chunks: Int, _ body: (Int) -> Void) {
        forEachWorker(chunks) { chunk, _ in body(chunk) }
    }

    /// `forEach` that also passes the index of the thread running the chunk, in 0..<threads (the caller is 0). No
    /// two chunks with the same worker index run at the same time, so per-worker scratch needs no lock.
    public static func forEachWorker(_ chunks: Int, _ body: (_ chunk: Int, _ worker: Int) -> Void) {
        if chunks <= 0 { return }
        BLASLibrary.prepare()
        if threads <= 1 || chunks == 1 {
            for i in 0..<chunks { body(i, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            WorkerPool.shared(threads: threads).run(chunks, body)
        }
    }

    /// `forEachWorker` with a fixed schedule, for reductions whose result must not depend on timing: chunk `c` runs
    /// in slot `c % workerSlots`, each slot takes its chunks in increasing order on one thread, and the slots run in
    /// parallel. Partial sums kept per slot are then the same from run to run (for a given thread count).
    public static func forEachInSlots(_ chunks: Int, _ body: (_ chunk: Int, _ slot: Int) -> Void) {
        let slots = Swift.min(workerSlots, chunks)
        forEach(slots) { slot in
            for chunk in stride(from: slot, to: chunks, by: slots) { body(chunk, slot) }
        }
    }

    /// The most ranges `forRanges` makes per thread.
    static let rangesPerThread = 4

    /// The number of worker slots `forEachWorker` may use: size per-worker scratch with it.
    public static var workerSlots: Int { max(1, threads) }

    /// Splits `0..<count` into contiguous ranges of at least `minimumPerThread` (up to `rangesPerThread` per thread)
    /// and runs `body` on each, in parallel; work smaller than `minimumPerThread` runs inline. With more ranges than
    /// threads, a thread that finishes first takes the next range, so one slowed thread (a busy core) holds the
    /// others up by at most one range.
    public static func forRanges(_ count: Int, minimumPerThread: Int = 1 << 14, _ body: (Range<Int>) -> Void) {
        let parts = Swift.min(threads * rangesPerThread, Swift.max(1, count / Swift.max(1, minimumPerThread)))
        if parts <= 1 || threads <= 1 { BLASLibrary.prepare(); body(0..<count); return }
        forEach(parts) { p in
            body((count * p / parts) ..< (count * (p + 1) / parts))
        }
    }

    /// True while the calling code may fan out: more than one thread and the pool idle.
    static var canFanOut: Bool {
        threads > 1 && !WorkerPool.isBusy
    }
}

// MARK: - Worker pool

/// A fixed set of worker threads that run the chunks of one job at a time together with the calling thread.
///
/// Workers spin briefly on the job counter after a job (ops follow each other closely in a training step), then
/// sleep on a condition variable. Only one job runs at a time; a call made while a job runs (a nested region, or
/// another thread's ops) runs inline on its caller.
final class WorkerPool: @unchecked Sendable {
    private nonisolated(unsafe) static var current: WorkerPool?
    private static let creation = Mutex<Void>(())
    private static let busyFlag = Atomic<Bool>(false)

    static var isBusy: Bool { busyFlag.load(ordering: .relaxed) }

    /// The pool for `threads` threads, replacing one of another size (only between jobs).
    static func shared(threads: Int) -> WorkerPool {
        if let pool = current, pool.workerCount == threads - 1 { return pool }
        return creation.withLock { _ in
            if let pool = current, pool.workerCount == threads - 1 { return pool }
            current?.shutDown()
            let pool = WorkerPool(workers: threads - 1)
            current = pool
            MemoryPolicy.apply()
            return pool
        }
    }

    let workerCount: Int
    private let generation = Atomic<Int>(0)
    private let nextChunk = Atomic<Int>(0)
    private let running = Atomic<Int>(0)
    private nonisolated(unsafe) var job: ((Int, Int) -> Void)?
    private nonisolated(unsafe) var chunkCount = 0
    private nonisolated(unsafe) var stopping = false
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let done: UnsafeMutablePointer<pthread_cond_t>

    /// Spin iterations before a worker sleeps, and before the caller sleeps while waiting for the workers.
    private static let spinLimit = 1 << 16

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(wake)
        pthread_cond_destroy(done)
        mutex.deallocate()
        wake.deallocate()
        done.deallocate()
    }

    private init(workers: Int) {
        workerCount = workers
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        done = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
        for index in 0..<workers {
            // Each worker keeps its pool alive until it has seen the shutdown and returned.
            let thread = Thread { self.workerLoop(index: index + 1) }
            thread.stackSize = 8 << 20
            thread.name = "autograd.worker.\(index + 1)"
            thread.start()
        }
    }

    private func shutDown() {
        pthread_mutex_lock(mutex)
        stopping = true
        generation.add(1, ordering: .releasing)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        // The workers exit on their own, releasing the pool (and its synchronisation objects are freed then).
    }

    /// Runs `body(chunk, worker)` for every chunk in 0..<chunks.
    func run(_ chunks: Int, _ body: @escaping (Int, Int) -> Void) {
        guard workerCount > 0, Self.busyFlag.compareExchange(expected: false, desired: true,
                                                             ordering: .acquiring).exchanged else {
            for i in 0..<chunks { body(i, 0) }
            return
        }
        job = body
        chunkCount = chunks
        nextChunk.store(0, ordering: .relaxed)
        running.store(workerCount, ordering: .relaxed)
        pthread_mutex_lock(mutex)
        generation.add(1, ordering: .releasing)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)

        runChunks(worker: 0)

        var spins = 0
        while running.load(ordering: .acquiring) != 0 {
            spins += 1
            if spins > Self.spinLimit {
                pthread_mutex_lock(mutex)
                while running.load(ordering: .acquiring) != 0 { pthread_cond_wait(done, mutex) }
                pthread_mutex_unlock(mutex)
                break
            }
        }
        job = nil
        Self.busyFlag.store(false, ordering: .releasing)
    }

    private func runChunks(worker: Int) {
        guard let job else { return }
        let count = chunkCount
        while true {
            let i = nextChunk.add(1, ordering: .relaxed).oldValue
            if i >= count { break }
            job(i, worker)
        }
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins > Self.spinLimit {
                    pthread_mutex_lock(mutex)
                    while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(wake, mutex) }
                    pthread_mutex_unlock(mutex)
                    break
                }
            }
            seen = generation.load(ordering: .acquiring)
            if stopping { return }
            runChunks(worker: index)
            if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_signal(done)
                pthread_mutex_unlock(mutex)
            }
        }
    }
}

// MARK: - Memory policy

/// Keeps freed tensor memory in the process instead of returning it to the system after every op.
///
/// By default glibc serves blocks above a (dynamic) threshold with fresh `mmap`s and unmaps them on free, so every
/// large tensor of every step is faulted in page by page again, which shows up as system time. Raising the
/// thresholds keeps those blocks in the heap for reuse; the peak footprint is unchanged.
enum MemoryPolicy {
    private static let applied = Atomic<Bool>(false)

    static func apply() {
        guard applied.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        // glibc's mallopt (not in the module map of its headers), found at run time; absent elsewhere.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let trimThreshold: Int32 = -1, topPad: Int32 = -2, mmapThreshold: Int32 = -3, arenaMax: Int32 = -8
        // One arena: blocks freed by one thread are reused by the others (the worker threads allocate little).
        _ = mallopt(arenaMax, 1)
        _ = mallopt(mmapThreshold, 1 << 30)
        _ = mallopt(trimThreshold, Int32.max)
        _ = mallopt(topPad, 64 << 20)
    }
}

// MARK: - Matrix products over the pool

extension TensorScalar {
    /// `gemm` split into blocks of rows or columns of C that the worker pool runs in parallel (BLAS being
    /// single-threaded); inline when the product is small, inside a parallel region, or with one thread.
    static func parallelGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int
    ) {
        let threads = Parallel.threads
        let work = Double(m) * Double(n) * Double(k)
        guard threads > 1, work >= 4e6, Parallel.canFanOut, max(m, n) >= 2 * threads else {
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                 beta: beta, c: c, ldc: ldc)
            return
        }
        // Split the larger side of C into `threads` blocks, aligned to 16 rows or columns.
        let splitRows = m >= n
        let side = splitRows ? m : n
        let parts = min(threads, max(1, side / 16))
        let step = ((side + parts - 1) / parts + 15) / 16 * 16
        let blocks = (side + step - 1) / step
        Parallel.forEach(blocks) { p in
            let start = p * step, size = Swift.min(step, side - start)
            if splitRows {
                // Rows of op(A) and C.
                let aBlock = transA ? a + start : a + start * lda
                gemm(transA: transA, transB: transB, m: size, n: n, k: k, alpha: alpha, a: aBlock, lda: lda,
                     b: b, ldb: ldb, beta: beta, c: c + start * ldc, ldc: ldc)
            } else {
                // Columns of op(B) and C.
                let bBlock = transB ? b + start * ldb : b + start
                gemm(transA: transA, transB: transB, m: m, n: size, k: k, alpha: alpha, a: a, lda: lda,
                     b: bBlock, ldb: ldb, beta: beta, c: c + start, ldc: ldc)
            }
        }
    }
}

// MARK: - BLAS library

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

    /// A one-line description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, single-threaded
    /// calls split over 2 framework threads", with a note when the framework chose OpenBLAS's kernels
    /// (`chooseCore(current:suited:forced:)`).
    public static var description: String {
        prepare()
        if let config = symbol("openblas_get_config", as: GetConfig.self), let text = config() {
            let note = coreChange.map { "; kernels \($0.to) chosen for this CPU (OpenBLAS had taken \($0.from))" }
            return "\(String(cString: text)), \(threads) BLAS thread(s) per call, products split over "
                + "\(Parallel.threads) framework thread(s)" + (note ?? "")
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

    // MARK: Kernel choice

    /// OpenBLAS's x86-64 kernel sets that use neither AVX2 nor AVX-512, lowercased.
    static let coresWithoutAVX2: Set<String> = [
        "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington", "nehalem",
        "athlon", "opteron", "opteron_sse3", "barcelona", "bobcat", "nano", "sandybridge", "bulldozer", "piledriver",
        "steamroller",
    ]

    /// The kernel set to switch OpenBLAS to, or nil to keep `current`. OpenBLAS's CPU detection (0.3.21 in Debian 12,
    /// and releases up to 0.3.28 at least) falls through to its Pentium 4 kernels ("Prescott") for Intel family-6
    /// models whose extended model it has no case for (11 and 12, Emerald Rapids among them): a fifth of the sgemm
    /// speed of the kernels such a CPU's features call for. A choice forced with `OPENBLAS_CORETYPE` is kept.
    ///
    /// - Parameters:
    ///   - current: the kernel set OpenBLAS runs (`openblas_get_corename`).
    ///   - suited: the kernel set the CPU's features call for (`ck_blas_core`), nil when none is better than SSE.
    ///   - forced: the value of `OPENBLAS_CORETYPE`, if set.
    static func chooseCore(current: String, suited: String?, forced: String?) -> String? {
        guard forced == nil, let suited, coresWithoutAVX2.contains(current.lowercased()),
              !coresWithoutAVX2.contains(suited.lowercased()) else { return nil }
        return suited
    }

    /// The kernel change `prepare` made, if any.
    private(set) nonisolated(unsafe) static var coreChange: (from: String, to: String)?

    /// The kernel set OpenBLAS runs, nil for another BLAS.
    public static var coreName: String? {
        typealias GetCore = @convention(c) () -> UnsafeMutablePointer<CChar>?
        guard let get = symbol("openblas_get_corename", as: GetCore.self), let name = get() else { return nil }
        return String(cString: name)
    }

    /// Switches a DYNAMIC_ARCH OpenBLAS to the kernel set `chooseCore` names: OpenBLAS picks its kernels from
    /// `OPENBLAS_CORETYPE` when it initialises them (`gotoblas_dynamic_init`, which a library loaded at start has
    /// already run), so the variable is set for the moment of a re-initialisation and removed again. Runs before the
    /// first product, when no BLAS call is in flight.
    private static func switchCoreIfUnsuited() {
        typealias Hook = @convention(c) () -> Void
        guard let current = coreName,
              let target = chooseCore(current: current, suited: ck_blas_core().map { String(cString: $0) },
                                      forced: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]),
              let quit = symbol("gotoblas_dynamic_quit", as: Hook.self),
              let initialise = symbol("gotoblas_dynamic_init", as: Hook.self) else { return }
        setenv("OPENBLAS_CORETYPE", target, 1)
        quit()
        initialise()
        unsetenv("OPENBLAS_CORETYPE")
        if let now = coreName, now != current { coreChange = (current, now) }
    }

    // MARK: Small products

    /// OpenBLAS's kernel sets whose small-matrix kernels (products of at most 100^3 multiply-adds) write C for
    /// beta = 0 without reading it, lowercased: on the others OpenBLAS clears C in a pass of its own first.
    static let coresWithSmallZeroBetaKernels: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]

    /// True when products of at most `smallProductLimit` multiply-adds with beta = 0 are best handed to OpenBLAS as
    /// they are (its small-matrix kernels write C), rather than cleared first and run with beta = 1. Set once, with
    /// the kernel choice.
    private(set) nonisolated(unsafe) static var writesSmallProductsWithZeroBeta = false

    /// OpenBLAS's bound for its small-matrix kernels: m n k at most 100^3.
    static let smallProductLimit = 1_000_000.0

    // MARK: Set-up

    private static let prepared = Atomic<Bool>(false)

    /// Runs once, on the first thread that gets here; the others wait for it (a static's initialiser).
    private static let setUp: Void = {
        setThreads(1)
        switchCoreIfUnsuited()
        writesSmallProductsWithZeroBeta = coreName.map { coresWithSmallZeroBetaKernels.contains($0.lowercased()) }
            ?? false
        MemoryPolicy.apply()
        prepared.store(true, ordering: .releasing)
    }()

    /// Before the first product, once: makes BLAS single-threaded (the framework splits large products itself),
    /// gives OpenBLAS the kernels the CPU calls for (`chooseCore(current:suited:forced:)`) and applies the memory
    /// policy.
    @inline(__always) static func prepare() {
        if prepared.load(ordering: .acquiring) { return }
        _ = setUp
    }
}
