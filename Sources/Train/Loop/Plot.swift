import Foundation

/// Draws training curves as a self-contained SVG: training loss (left panel) and test accuracy (right panel)
/// per epoch, one line per run.
public enum CurvePlot {
    /// One curve of a plot: a name and the metrics of each epoch.
    public struct Series {
        /// The legend entry.
        public var name: String
        /// The metrics, one per epoch.
        public var history: [EpochMetrics]
        /// A curve named `name` over `history`.
        public init(name: String, history: [EpochMetrics]) {
            self.name = name
            self.history = history
        }
    }

    static let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    /// The SVG text for one or more runs.
    public static func svg(_ series: [Series], title: String) -> String {
        let width = 900.0, height = 380.0
        var parts = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
                + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"\(width / 2)\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>",
        ]
        let panels: [(String, (EpochMetrics) -> Double, Double)] = [
            ("training loss", { $0.trainLoss }, 60),
            ("test accuracy (%)", { 100 * $0.testAccuracy }, 500),
        ]
        let maxEpoch = Double(series.map { $0.history.last?.epoch ?? 1 }.max() ?? 1)
        for (label, value, left) in panels {
            let plotWidth = 360.0, top = 45.0, plotHeight = 260.0
            let values = series.flatMap { $0.history.map(value) }.filter(\.isFinite)
            var low = values.min() ?? 0, high = values.max() ?? 1
            if high - low < 1e-9 { low -= 0.5; high += 0.5 }
            let pad = (high - low) * 0.05
            low -= pad; high += pad
            func x(_ epoch: Double) -> Double { left + plotWidth * (maxEpoch <= 1 ? 0.5 : (epoch - 1) / (maxEpoch - 1)) }
            func y(_ v: Double) -> Double { top + plotHeight * (1 - (v - low) / (high - low)) }
            parts.append("<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotWidth)\" height=\"\(plotHeight)\" "
                         + "fill=\"none\" stroke=\"#444\"/>")
            for i in 0...4 {
                let v = low + (high - low) * Double(i) / 4
                parts.append(String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>",
                                    left - 4, y(v) + 4, v))
                parts.append(String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>",
                                    left, left + plotWidth, y(v), y(v)))
            }
            parts.append("<text x=\"\(left + plotWidth / 2)\" y=\"\(top + plotHeight + 32)\" "
                         + "text-anchor=\"middle\">epoch (1 to \(Int(maxEpoch))) — \(escape(label))</text>")
            for (i, s) in series.enumerated() {
                let points = s.history.filter { value($0).isFinite }
                    .map { String(format: "%.1f,%.1f", x(Double($0.epoch)), y(value($0))) }
                guard !points.isEmpty else { continue }
                let colour = colours[i % colours.count]
                parts.append("<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" "
                             + "points=\"\(points.joined(separator: " "))\"/>")
            }
        }
        for (i, s) in series.enumerated() {
            let colour = colours[i % colours.count]
            let yPos = height - 18
            let xPos = 60.0 + Double(i) * 180
            parts.append("<rect x=\"\(xPos)\" y=\"\(yPos - 10)\" width=\"14\" height=\"4\" fill=\"\(colour)\"/>")
            parts.append("<text x=\"\(xPos + 20)\" y=\"\(yPos - 4)\">\(escape(s.name))</text>")
        }
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }

    /// Writes the SVG atomically; a failure is a `DataError` naming the path.
    public static func write(_ series: [Series], title: String, to url: URL) throws {
        let text = Array(svg(series, title: title).utf8)
        try DataFiles.writeAtomically(url) { file in
            if fwrite(text, 1, text.count, file) != text.count {
                throw DataError(url, nil, "write failed (\(DataFiles.errnoText()))")
            }
        }
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
