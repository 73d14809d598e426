import Autograd
import Foundation

// MARK: - Smaller training sets

extension ImageDataset {
    /// `count` of the images (at most `self.count`): the first ones in order when `shuffled` is false, else a
    /// random selection drawn from `seed` (kept in the stored order), so that shuffled runs of several seeds train on
    /// different subsets. Throws a `SubsetError` for a count out of range.
    public func trainingSubset(count n: Int, shuffled: Bool, seed: UInt64) throws -> ImageDataset {
        guard n >= 1 && n <= count else { throw SubsetError(requested: n, available: count) }
        if n == count { return self }
        if !shuffled { return subset(Array(0..<n)) }
        // A stream of its own, apart from the loader's shuffling of the same seed.
        var rng = SeededRandom(seed: seed ^ 0x5EED_5B5E_7000_0001)
        return subset(rng.permutation(count)[0..<n].sorted())
    }
}

extension TrainingConfiguration {
    /// The epochs on `subsetCount` training images that make at least as many optimiser steps as `epochs` on
    /// `fullCount` images at this batch size (the last, partial batch counts as a step): a smaller training set is
    /// trained as long, in steps, as the whole one, so a data-efficiency comparison measures the data and not a
    /// shorter optimisation. 15 epochs of 63 steps on 4000 images give 237 epochs of 4 steps on 250.
    public func epochsForEqualSteps(fullCount: Int, subsetCount: Int) -> Int {
        check(fullCount >= 1 && subsetCount >= 1 && subsetCount <= fullCount,
              "epochsForEqualSteps: subset of \(subsetCount) images out of \(fullCount)")
        let stepsPerEpoch = { (n: Int) in (n + batchSize - 1) / batchSize }
        let steps = epochs * stepsPerEpoch(fullCount)
        return (steps + stepsPerEpoch(subsetCount) - 1) / stepsPerEpoch(subsetCount)
    }
}

/// A training-set size that the data set cannot give.
public struct SubsetError: Error, CustomStringConvertible {
    public let requested: Int, available: Int
    public var description: String {
        "--train-size \(requested): the training set has \(available) images (1 to \(available) can be used)"
    }
}

// MARK: - Data efficiency

/// Test accuracy against the number of training images, per model: the table and the figure of `--train-sizes`.
public struct DataEfficiency: Equatable, Sendable {
    /// One measured point: a model at a size, the mean over its seeds (one seed: that run) and the sample std.
    public struct Point: Equatable, Sendable {
        public var model: String
        public var trainSize: Int
        public var accuracies: [Double]
        public init(model: String, trainSize: Int, accuracies: [Double]) {
            check(!accuracies.isEmpty, "DataEfficiency.Point: no accuracies")
            (self.model, self.trainSize, self.accuracies) = (model, trainSize, accuracies)
        }
        public var statistics: SampleStatistics { SampleStatistics(accuracies) }
    }

    public var points: [Point]
    public init(points: [Point]) { self.points = points }

    public var models: [String] { points.reduce(into: []) { if !$0.contains($1.model) { $0.append($1.model) } } }
    public var sizes: [Int] { Array(Set(points.map(\.trainSize))).sorted() }

    /// One row per size, one column per model: mean test accuracy in % (± std over seeds when several).
    public var table: String {
        let models = self.models
        var lines = ["training images" + models.map { " " + $0.padding(toLength: 16, withPad: " ", startingAt: 0) }
            .joined()]
        for size in sizes {
            var line = String(format: "%15d", size)
            for m in models {
                guard let p = points.first(where: { $0.model == m && $0.trainSize == size }) else {
                    line += " " + "-".padding(toLength: 16, withPad: " ", startingAt: 0)
                    continue
                }
                let s = p.statistics
                let cell = String(format: "%.2f%%", 100 * s.mean)
                    + (s.standardDeviation.map { String(format: " ± %.2f", 100 * $0) } ?? "")
                line += " " + cell.padding(toLength: 16, withPad: " ", startingAt: 0)
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The figure: mean test accuracy (%) against the number of training images (logarithmic axis), one curve per
    /// model, ± one std over seeds when several.
    public func svg(title: String) -> String {
        let series = models.map { m -> SVGChart.Series in
            let mine = points.filter { $0.model == m }.sorted { $0.trainSize < $1.trainSize }
            let several = mine.contains { $0.accuracies.count > 1 }
            return SVGChart.Series(name: m, points: mine.map { (Double($0.trainSize), 100 * $0.statistics.mean) },
                                   spread: several ? mine.map { 100 * ($0.statistics.standardDeviation ?? 0) } : nil)
        }
        return SVGChart.lines(title: title, xLabel: "training images (logarithmic scale)", yLabel: "test accuracy (%)",
                              series: series, xScale: .logarithmic)
    }
}
