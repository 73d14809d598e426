import Autograd
import Foundation

/// One mini-batch: images (B, 1, H, W) and their labels.
public struct Batch {
    public let images: Tensor<Float>
    public let labels: [Int]
}

/// Cuts an `ImageDataset` into batches, in order or in a seeded shuffled order, preparing the next batches on another
/// thread while the model works on the current one.
///
/// The order of epoch `e` depends only on (`seed`, `e`), so a resumed run sees exactly the batches an uninterrupted
/// one would.
public struct DataLoader {
    public let dataset: ImageDataset
    public let batchSize: Int
    public let shuffle: Bool
    public let seed: UInt64
    /// Batches prepared ahead of the consumer.
    public var prefetch = 2

    public init(_ dataset: ImageDataset, batchSize: Int, shuffle: Bool = false, seed: UInt64 = 0) {
        check(batchSize > 0, "DataLoader: batch size must be positive, got \(batchSize)")
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
    }

    /// Number of batches per epoch (the last one may be smaller).
    public var batchCount: Int { (dataset.count + batchSize - 1) / batchSize }

    /// The sample order of `epoch` (0-based).
    public func order(epoch: Int) -> [Int] {
        guard shuffle else { return Array(0..<dataset.count) }
        var generator = SeededRandom(seed: seed &+ 0x5DEE_CE66_D &* UInt64(epoch + 1))
        return generator.permutation(dataset.count)
    }

    /// Builds batch `index` of an order.
    public func batch(_ index: Int, order: [Int]) -> Batch {
        let start = index * batchSize, end = min(start + batchSize, order.count)
        let pixels = dataset.height * dataset.width
        var images = [Float](repeating: 0, count: (end - start) * pixels)
        images.withUnsafeMutableBufferPointer { out in
            dataset.images.withUnsafeBufferPointer { src in
                for (row, sample) in order[start..<end].enumerated() {
                    (out.baseAddress! + row * pixels).update(from: src.baseAddress! + sample * pixels, count: pixels)
                }
            }
        }
        return Batch(images: Tensor(shape: [end - start, 1, dataset.height, dataset.width], scalars: images),
                     labels: order[start..<end].map { dataset.labels[$0] })
    }

    /// The batches of `epoch`, produced ahead on a background thread.
    public func batches(epoch: Int) -> BatchStream {
        BatchStream(loader: self, order: order(epoch: epoch))
    }
}

/// Iterates an epoch's batches; a producer thread keeps up to `prefetch` batches ready.
///
/// The stream may be abandoned before its end (training stopped by an error): releasing it stops the producer
/// after at most the batch it is building, and the producer thread then exits, releasing every prepared batch.
public final class BatchStream: Sequence, IteratorProtocol {
    /// State shared with the producer thread (which must not keep the stream itself alive). Every field is guarded
    /// by `lock`, whose condition is broadcast on every change.
    private final class Queue: @unchecked Sendable {
        let lock = NSCondition()
        var ready: [Int: Batch] = [:]
        /// Batches taken by the consumer so far.
        var consumed = 0
        var cancelled = false
    }

    private let count: Int
    private var position = 0
    private let queue: Queue

    init(loader: DataLoader, order: [Int]) {
        count = loader.batchCount
        let slots = Swift.max(1, loader.prefetch)
        let queue = Queue()
        self.queue = queue
        let count = count
        guard count > 0 else { return }
        Thread.detachNewThread {
            for index in 0..<count {
                queue.lock.lock()
                while !queue.cancelled && index - queue.consumed >= slots { queue.lock.wait() }
                let stop = queue.cancelled
                queue.lock.unlock()
                if stop { return }
                let batch = loader.batch(index, order: order)
                queue.lock.lock()
                if !queue.cancelled { queue.ready[index] = batch }
                queue.lock.broadcast()
                queue.lock.unlock()
            }
        }
    }

    deinit {
        queue.lock.lock()
        queue.cancelled = true
        queue.ready.removeAll()
        queue.lock.broadcast()
        queue.lock.unlock()
    }

    public func next() -> Batch? {
        guard position < count else { return nil }
        queue.lock.lock()
        while queue.ready[position] == nil { queue.lock.wait() }
        let batch = queue.ready.removeValue(forKey: position)!
        position += 1
        queue.consumed = position
        queue.lock.broadcast()
        queue.lock.unlock()
        return batch
    }
}
