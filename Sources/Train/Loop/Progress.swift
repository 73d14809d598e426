import Foundation

/// Shows training progress: a live bar on a terminal (batches, loss, samples/s, ETA), plain lines otherwise.
public struct ProgressReporter {
    /// Where lines go (standard output by default).
    public var write: (String) -> Void
    /// True when the output is a terminal, so the bar can redraw in place.
    public var isTerminal: Bool
    /// Without a terminal, a line every this many batches.
    public var plainEvery = 20
    private var batches = 0
    private var epoch = 0, epochs = 0

    /// A progress display writing through `write` (standard output by default).
    public init(write: @escaping (String) -> Void = { print($0, terminator: ""); fflush(stdout) },
                isTerminal: Bool = isatty(STDOUT_FILENO) == 1) {
        self.write = write
        self.isTerminal = isTerminal
    }

    /// A reporter that shows nothing.
    public static var silent: ProgressReporter { ProgressReporter(write: { _ in }, isTerminal: false) }

    mutating func beginEpoch(_ epoch: Int, of epochs: Int, batches: Int) {
        self.epoch = epoch
        self.epochs = epochs
        self.batches = batches
    }

    func batch(_ index: Int, loss: Double, samples: Int, elapsed: Double) {
        let rate = Double(samples) / max(elapsed, 1e-9)
        let eta = elapsed / Double(index) * Double(batches - index)
        let text = String(format: "epoch %d/%d %@ %d/%d loss %.4f %.0f samples/s ETA %@",
                          epoch, epochs, bar(index), index, batches, loss, rate, Self.duration(eta))
        if isTerminal {
            write("\r\u{1B}[2K" + text)
        } else if index % plainEvery == 0 || index == batches {
            write(text + "\n")
        }
    }

    func endEpoch(_ m: EpochMetrics) {
        if isTerminal { write("\r\u{1B}[2K") }
        write(String(format: "epoch %d/%d: train loss %.4f, train acc %.2f%%, test acc %.2f%%, %.1f s, %.0f samples/s\n",
                     m.epoch, epochs, m.trainLoss, 100 * m.trainAccuracy, 100 * m.testAccuracy, m.seconds,
                     m.samplesPerSecond))
    }

    private func bar(_ index: Int) -> String {
        let width = 24
        let filled = batches == 0 ? 0 : width * index / batches
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
    }

    /// "1h02m", "3m05s", "12s".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }
}
