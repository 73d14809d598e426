import Foundation

/// A seeded, reproducible random number generator (xoshiro256**), seeded through SplitMix64.
///
/// Its whole state is four words (`state`), so it can be saved in a checkpoint and restored exactly.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    /// The generator's full state; assign it to restore a saved generator.
    public var state: [UInt64]

    /// Creates a generator whose stream is fixed by `seed`.
    public init(seed: UInt64) {
        var s = seed
        var words = [UInt64]()
        for _ in 0..<4 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            words.append(z ^ (z >> 31))
        }
        state = words
    }

    /// Restores a generator from a saved `state` (four words, not all zero).
    public init?(state: [UInt64]) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
        self.state = state
    }

    /// The next 64 random bits of the stream (xoshiro256**).
    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    /// A Double uniform in [0, 1), with 53 random bits.
    public mutating func uniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A Double uniform in [low, high).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * uniform()
    }

    /// A standard normal sample (Box-Muller).
    public mutating func normal() -> Double {
        var u1 = uniform()
        while u1 <= .leastNormalMagnitude { u1 = uniform() }
        let u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// A random permutation of `0..<n` (Fisher-Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            p.swapAt(i, j)
        }
        return p
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

// MARK: - The global generator

/// The process-wide generator that layers draw their initial parameters from when no generator is passed
/// (`Linear(4, 8)`), as PyTorch's default generator.
///
/// It starts from ``SeededRandom/defaultGlobalSeed`` in every process, so a program that builds the same layers in
/// the same order gets the same parameters on every run; ``manualSeed(_:)`` restarts it (`torch.manual_seed`).
/// Access is serialised by a lock, but layers built on several threads at once draw in an unspecified order: pass an
/// explicit generator (`generator: &g`) where that matters.
package final class GlobalGenerator: @unchecked Sendable {
    package static let shared = GlobalGenerator()
    private let lock = NSLock()
    private var state = SeededRandom(seed: SeededRandom.defaultGlobalSeed)

    /// The generator, under the lock for as long as one access lasts: passed as `&shared.generator` to a layer's
    /// init, the lock is held through the whole init.
    package var generator: SeededRandom {
        get {
            lock.lock()
            defer { lock.unlock() }
            return state
        }
        _modify {
            lock.lock()
            defer { lock.unlock() }
            yield &state
        }
    }
}

extension SeededRandom {
    /// The seed the global generator starts from in every process: 0.
    public static let defaultGlobalSeed: UInt64 = 0

    /// Restarts the global generator (the one layers use when no generator is passed) from `seed`.
    public static func manualSeed(_ seed: UInt64) {
        GlobalGenerator.shared.generator = SeededRandom(seed: seed)
    }

    /// Runs `body` with the global generator, holding its lock; `body` must not build layers that draw from the
    /// global generator themselves (that would wait for the lock forever).
    public static func withGlobal<R>(_ body: (inout SeededRandom) throws -> R) rethrows -> R {
        try body(&GlobalGenerator.shared.generator)
    }
}

/// Restarts the global generator from `seed`, as `torch.manual_seed`: layers built afterwards without a generator
/// get the same parameters on every run.
public func manualSeed(_ seed: UInt64) { SeededRandom.manualSeed(seed) }
