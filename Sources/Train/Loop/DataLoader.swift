import Autograd
import Foundation

/// Cuts a `Dataset` into batches, in order or in a seeded shuffled order, preparing the next batches on another
/// thread while the model works on the current one.
///
/// The order of epoch `e` depends only on (`seed`, `e`), so a resumed run sees exactly the batches an uninterrupted
/// one would.
public struct DataLoader {
    public let dataset: any Dataset
    public let batchSize: Int
    public let shuffle: Bool
    public let seed: UInt64
    /// Batches prepared ahead of the consumer.
    public var prefetch = 2

    public init(_ dataset: any Dataset, batchSize: Int, shuffle: Bool = false, seed: UInt64 = 0) {
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

    /// Builds batch `index` of an order: inputs `[B] + sampleShape`, and the samples' labels or their regression
    /// targets (B, values).
    public func batch(_ index: Int, order: [Int]) -> Batch {
        let start = index * batchSize, end = min(start + batchSize, order.count)
        let samples = order[start..<end]
        let shape = dataset.sampleShape
        let size = shape.reduce(1, *)
        var inputs = [Float](repeating: 0, count: samples.count * size)
        if let images = dataset as? ImageDataset {
            // Contiguous images: one copy per image straight from the set's storage.
            inputs.withUnsafeMutableBufferPointer { out in
                images.images.withUnsafeBufferPointer { src in
                    for (row, sample) in samples.enumerated() {
                        (out.baseAddress! + row * size).update(from: src.baseAddress! + sample * size, count: size)
                    }
                }
            }
            return Batch(inputs: Tensor(shape: [samples.count] + shape, scalars: inputs),
                         labels: samples.map { images.labels[$0] })
        }
        var labels: [Int] = [], values: [Float] = [], width: Int?
        for (row, sample) in samples.enumerated() {
            let input = dataset.input(sample)
            check(input.count == size, "DataLoader: sample \(sample) has \(input.count) input values, but the data "
                  + "set's sampleShape \(shape) holds \(size)")
            inputs.replaceSubrange((row * size)..<((row + 1) * size), with: input)
            switch dataset.target(sample) {
            case .label(let label):
                check(width == nil, "DataLoader: sample \(sample) has a class label where earlier samples have values")
                labels.append(label)
            case .values(let v):
                check(labels.isEmpty && (width == nil || width == v.count),
                      "DataLoader: sample \(sample) has \(v.count) target values, earlier samples "
                      + (labels.isEmpty ? "\(width ?? 0)" : "class labels"))
                width = v.count
                values.append(contentsOf: v)
            }
        }
        let batchInputs = Tensor(shape: [samples.count] + shape, scalars: inputs)
        if let width {
            return Batch(inputs: batchInputs, targets: Tensor(shape: [samples.count, width], scalars: values))
        }
        return Batch(inputs: batchInputs, labels: labels)
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
