import Autograd
import Foundation
import Models
import NN
import Train
import XCTest

/// Resident memory stays flat over many training steps of the CNN: no tape entries, batches, threads or cached
/// tensors pile up.
///
/// By default the test measures after a short warm-up and again some steps later (fast enough for a debug build).
/// `TRAIN_SOAK_STEPS=200,2000` (steps at the first and the second measurement) runs the long version, meant for a
/// release build: `swift build -c release --build-tests -Xswiftc -enable-testing` then
/// `TRAIN_SOAK_STEPS=200,2000 swift test -c release --skip-build --filter MemoryTests`.
final class MemoryTests: XCTestCase {
    func testResidentMemoryStaysFlatDuringTraining() throws {
        guard residentBytes() != nil else { throw XCTSkip("no /proc/self/statm: resident memory cannot be measured") }
        let soak = ProcessInfo.processInfo.environment["TRAIN_SOAK_STEPS"]?.split(separator: ",").compactMap { Int($0) }
        let (first, second) = soak.map { ($0.first ?? 200, $0.last ?? 2000) } ?? (30, 100)
        let stepsPerEpoch = 10
        let batch = 8
        let data = randomImages(count: stepsPerEpoch * batch, side: 33, seed: 21)
        var configuration = TrainingConfiguration()
        configuration.batchSize = batch
        configuration.learningRate = 1e-3
        configuration.shuffle = true
        configuration.epochs = (second + stepsPerEpoch - 1) / stepsPerEpoch
        let trainer = Trainer(model: CNN(seed: 1), modelName: "cnn", configuration: configuration, train: data,
                              test: data.subset([0, 1]), progress: .silent)
        var measured: [Int: Int] = [:]
        var threads: [Int: Int] = [:]
        var tapeLeft = 0
        trainer.onEpochEnd = { metrics in
            let steps = metrics.epoch * stepsPerEpoch
            tapeLeft = max(tapeLeft, Tape.current.count)
            if steps == first || steps == second {
                measured[steps] = residentBytes()
                threads[steps] = threadCount()
            }
        }
        let start = Date()
        try trainer.run()
        let mib = { (bytes: Int) in String(format: "%.2f MiB", Double(bytes) / 1_048_576) }
        let growth = measured[second]! - measured[first]!
        print("resident memory after \(first) CNN steps: \(mib(measured[first]!)), after \(second): "
              + "\(mib(measured[second]!)) (growth \(mib(growth)); threads \(threads[first] ?? -1) -> "
              + "\(threads[second] ?? -1); \(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
        XCTAssertEqual(tapeLeft, 0, "ops were left on the tape after a training step")
        if let a = threads[first], let b = threads[second] { XCTAssertLessThanOrEqual(b, a + 1, "threads accumulate") }
        // The long run must stay within 4 MiB; the short one within a proportional share (at least 1 MiB).
        let allowed = max(1 << 20, (4 << 20) * (second - first) / 1800)
        XCTAssertLessThan(growth, allowed, "resident memory grew by \(mib(growth)) in \(second - first) steps")
    }
}
