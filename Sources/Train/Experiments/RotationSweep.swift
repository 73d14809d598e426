import Autograd
import Foundation

/// Test accuracy against a test-time rotation: every test image turned by 0, step, 2 step, ... degrees (below
/// 360), with the rotation that builds the rotated data sets (`RotatedDigits`: bilinear, zero outside, about the
/// centre) and exact quarter turns (`rot90`) for multiples of 90 degrees; 0 degrees leaves the images untouched, so
/// its accuracy is the plain test accuracy.
///
/// The digits are turned as stored, before the padding (2 pixels before, 3 after): a quarter turn of the padded
/// 33x33 input, the C4CNN's exact symmetry, would also move the digit by a pixel (one axis at 90 and 270 degrees,
/// both at 180), which measures a plain CNN's sensitivity to that shift more than to the rotation. So the C4CNN is
/// 90-degree periodic here up to that one-pixel difference between a turned-then-padded digit and a turned input.
public enum RotationSweep {
    /// 0, step, 2 step, ... below 360 (step in (0, 360]).
    public static func angles(step: Double) -> [Double] {
        check(step.isFinite && step > 0 && step <= 360, "RotationSweep: the step must be in (0, 360] degrees, got \(step)")
        var angles: [Double] = []
        var k = 0.0
        while k * step < 360 - 1e-9 {
            angles.append(k * step)
            k += 1
        }
        return angles
    }

    /// Every image of `data` (square, any channel count) turned counter-clockwise as displayed by `degrees`:
    /// untouched at 0, an exact `rot90` at multiples of 90, else bilinear (`RotatedDigits.rotate`).
    public static func rotated(_ data: ImageDataset, degrees: Double) -> ImageDataset {
        check(data.height == data.width, "RotationSweep: images must be square, got \(data.height)x\(data.width)")
        let turns = degrees / 90
        if turns == turns.rounded() {
            let k = ((Int(turns) % 4) + 4) % 4
            if k == 0 || data.count == 0 { return data }
            let t = Tensor<Float>(shape: [data.count, data.channels, data.height, data.width], scalars: data.images)
            return ImageDataset(images: t.rotated90(k).scalars, labels: data.labels, channels: data.channels,
                                height: data.height, width: data.width)
        }
        // The rotation kernel reads one-channel images: every channel is an image of its own.
        let planes = ImageDataset(images: data.images, labels: [Int](repeating: 0, count: data.count * data.channels),
                                  height: data.height, width: data.width)
        let angle = degrees * Double.pi / 180
        let turned = RotatedDigits.rotate(planes, angles: [Double](repeating: angle, count: planes.count))
        return ImageDataset(images: turned.images, labels: data.labels, channels: data.channels,
                            height: data.height, width: data.width)
    }

    /// The accuracy at every angle of `angles`: `test` (as stored, before any padding) rotated, then made into the
    /// model's input by `prepare` (e.g. the edge padding the training data had), then scored by `accuracy`.
    public static func run(angles: [Double], test: ImageDataset, prepare: (ImageDataset) -> ImageDataset,
                           accuracy: (ImageDataset) throws -> Double) rethrows -> SweepResult {
        var values: [Double] = []
        for angle in angles {
            values.append(try accuracy(prepare(rotated(test, degrees: angle))))
        }
        return SweepResult(angles: angles, accuracy: values)
    }
}

/// One model's accuracy against test-time rotation, written as `sweep.json`:
/// `{"angles": [...], "accuracy": [...]}` (degrees; accuracies as fractions, the unit of `test_accuracy` in
/// metrics.jsonl).
public struct SweepResult: Codable, Equatable, Sendable {
    public var angles: [Double]
    public var accuracy: [Double]

    public init(angles: [Double], accuracy: [Double]) {
        check(angles.count == accuracy.count, "SweepResult: \(angles.count) angles, \(accuracy.count) accuracies")
        self.angles = angles
        self.accuracy = accuracy
    }

    /// The file name in a checkpoint folder.
    public static let fileName = "sweep.json"
    /// The figure's file name beside it.
    public static let plotName = "sweep.svg"

    public func write(to url: URL) throws { try JSONText.write(self, to: url) }

    public static func read(_ url: URL) throws -> SweepResult { try JSONText.read(SweepResult.self, from: url) }

    /// The mean over several runs (seeds) of the same angles.
    public static func mean(_ results: [SweepResult]) -> (mean: SweepResult, std: [Double]) {
        check(!results.isEmpty && results.allSatisfy { $0.angles == results[0].angles },
              "SweepResult.mean: the results must share their angles")
        let stats = results[0].angles.indices.map { i in SampleStatistics(results.map { $0.accuracy[i] }) }
        return (SweepResult(angles: results[0].angles, accuracy: stats.map(\.mean)),
                stats.map { $0.standardDeviation ?? 0 })
    }

    /// The table printed for one or more models: one row per angle, one column per model (accuracy in %).
    public static func table(_ results: [(name: String, result: SweepResult)]) -> String {
        guard let first = results.first else { return "" }
        // (String(format:) ignores the width of %@, so texts are padded here.)
        func right(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        var lines = ["angle (°)" + results.map { " " + right($0.name, 9) }.joined()]
        for (i, angle) in first.result.angles.enumerated() {
            lines.append(right(SVGChart.label(angle), 9)
                         + results.map { String(format: " %8.2f%%", 100 * $0.result.accuracy[i]) }.joined())
        }
        return lines.joined(separator: "\n")
    }

    /// The figure: accuracy (%) against the angle, one curve per model (with ± one std when given).
    public static func svg(_ results: [(name: String, result: SweepResult, std: [Double]?)], title: String) -> String {
        let last = results.flatMap(\.result.angles).max() ?? 0
        let step = last > 180 ? 45.0 : (last > 90 ? 30 : 15)
        return SVGChart.lines(
            title: title, xLabel: "rotation of every test image (degrees)", yLabel: "test accuracy (%)",
            series: results.map { r in
                SVGChart.Series(name: r.name, points: zip(r.result.angles, r.result.accuracy).map { ($0, 100 * $1) },
                                spread: r.std.map { $0.map { 100 * $0 } })
            },
            xTicks: stride(from: 0, through: max((last / step).rounded(.up) * step, step), by: step).map { $0 })
    }
}
