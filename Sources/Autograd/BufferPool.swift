import Synchronization

/// Scratch memory for kernels, kept between calls so that the steady state of a training step allocates (and
/// faults in) nothing new.
///
/// `take` hands out the smallest free block that is large enough (or a new one), 64-byte aligned; `give` returns
/// it. Safe to use from any thread; blocks are never shared while taken.
enum BufferPool {
    /// One block of raw memory.
    struct Block: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        let bytes: Int

        func typed<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
            pointer.assumingMemoryBound(to: T.self)
        }
    }

    private static let free = Mutex<[Block]>([])
    /// Free blocks beyond this many are released (the smallest first).
    private static let keep = 24

    static func take(bytes: Int) -> Block {
        let wanted = Swift.max(64, (bytes + 4095) & ~4095)
        let reused: Block? = free.withLock { blocks in
            var best = -1
            for (i, b) in blocks.enumerated() where b.bytes >= wanted && (best < 0 || b.bytes < blocks[best].bytes) {
                best = i
            }
            return best >= 0 ? blocks.remove(at: best) : nil
        }
        if let reused { return reused }
        return Block(pointer: UnsafeMutableRawPointer.allocate(byteCount: wanted, alignment: 64), bytes: wanted)
    }

    static func give(_ block: Block) {
        let released: Block? = free.withLock { blocks in
            blocks.append(block)
            guard blocks.count > keep else { return nil }
            let smallest = blocks.indices.min { blocks[$0].bytes < blocks[$1].bytes }!
            return blocks.remove(at: smallest)
        }
        released?.pointer.deallocate()
    }

    /// Runs `body` with `count` elements of scratch (uninitialised), returned to the pool afterwards.
    static func withScratch<T, R>(_ type: T.Type, count: Int, _ body: (UnsafeMutablePointer<T>) throws -> R)
        rethrows -> R {
        let block = take(bytes: Swift.max(1, count) * MemoryLayout<T>.stride)
        defer { give(block) }
        return try body(block.typed(T.self))
    }

    /// Bytes held in free blocks.
    static var cachedBytes: Int { free.withLock { $0.reduce(0) { $0 + $1.bytes } } }

    /// Releases every free block (for tests and memory measurements).
    static func drain() {
        let blocks = free.withLock { blocks in
            let all = blocks
            blocks.removeAll()
            return all
        }
        for b in blocks { b.pointer.deallocate() }
    }
}
