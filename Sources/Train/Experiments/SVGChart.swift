import Autograd
import Foundation

/// Self-contained SVG figures of the experiments: curves of a value against a quantity (accuracy against angle,
/// against training-set size) and strip plots of a value per group (accuracy per model over seeds). Every figure
/// has a title, axes with round tick values and labels naming the unit, and a legend.
public enum SVGChart {
    /// One curve: points (x, y) in order, and optionally a spread (± one standard deviation) per point.
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var spread: [Double]?

        public init(name: String, points: [(x: Double, y: Double)], spread: [Double]? = nil) {
            check(spread == nil || spread!.count == points.count,
                  "SVGChart.Series: \(spread?.count ?? 0) spreads for \(points.count) points")
            self.name = name
            self.points = points
            self.spread = spread
        }
    }

    /// How the x axis maps values: evenly, or by their logarithm (training-set sizes that double).
    public enum Scale { case linear, logarithmic }

    // MARK: Layout

    static let width = 760.0, height = 440.0
    static let left = 80.0, top = 50.0, plotWidth = 470.0, plotHeight = 300.0
    static let colours = CurvePlot.colours

    // MARK: Ticks

    /// Round tick values covering `low...high`: about `count` multiples of 1, 2 or 5 times a power of ten, from the
    /// largest multiple at or below `low` to the smallest at or above `high`.
    public static func ticks(low: Double, high: Double, count: Int = 5) -> [Double] {
        check(low.isFinite && high.isFinite && low <= high, "SVGChart.ticks: bad range \(low)...\(high)")
        var (a, b) = (low, high)
        if b - a < 1e-12 { a -= max(abs(a) * 0.01, 0.5); b += max(abs(b) * 0.01, 0.5) }
        let raw = (b - a) / Double(max(count - 1, 1))
        let power = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * power }.first { $0 >= raw * 0.999 } ?? 10 * power
        let first = (a / step).rounded(.down), last = (b / step).rounded(.up)
        return stride(from: first, through: last, by: 1).map { ($0 * step * 1e9).rounded() / 1e9 }
    }

    /// A tick value as text: no trailing zeros ("80", "82.5", "0.25").
    public static func label(_ value: Double) -> String {
        var text = String(format: "%.6f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }

    // MARK: Curves

    /// Curves of y against x. `xTicks` (default: round values over the data) are the x positions labelled.
    public static func lines(title: String, xLabel: String, yLabel: String, series: [Series],
                             xScale: Scale = .linear, xTicks: [Double]? = nil) -> String {
        let xs = series.flatMap { $0.points.map(\.x) }.filter(\.isFinite)
        let ys = series.flatMap { s in s.points.indices.flatMap { i -> [Double] in
            let y = s.points[i].y, e = s.spread?[i] ?? 0
            return [y - e, y + e]
        } }.filter(\.isFinite)
        let map: (Double) -> Double = xScale == .logarithmic ? { log($0) } : { $0 }
        let xTickValues = xTicks ?? (xScale == .logarithmic
            ? Array(Set(xs)).sorted()
            : ticks(low: xs.min() ?? 0, high: xs.max() ?? 1))
        // The axis spans the ticks and every point.
        let xRange = (map(min(xTickValues.first ?? .infinity, xs.min() ?? 0)),
                      map(max(xTickValues.last ?? -.infinity, xs.max() ?? 1)))
        let yTickValues = ticks(low: ys.min() ?? 0, high: ys.max() ?? 1)
        let yRange = (yTickValues.first!, yTickValues.last!)
        func px(_ x: Double) -> Double {
            let span = xRange.1 - xRange.0
            return left + plotWidth * (span <= 0 ? 0.5 : (map(x) - xRange.0) / span)
        }
        func py(_ y: Double) -> Double { top + plotHeight * (1 - (y - yRange.0) / (yRange.1 - yRange.0)) }

        var parts = frame(title: title, xLabel: xLabel, yLabel: yLabel)
        parts += yAxis(yTickValues, py)
        for x in xTickValues {
            parts.append(format("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>",
                                px(x), px(x), top, top + plotHeight))
            parts.append(format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>",
                                px(x), top + plotHeight + 18, label(x)))
        }
        for (i, s) in series.enumerated() {
            let colour = colours[i % colours.count]
            let finite = s.points.indices.filter { s.points[$0].x.isFinite && s.points[$0].y.isFinite }
            if let spread = s.spread {
                for j in finite where spread[j] > 0 {
                    let (x, y) = s.points[j]
                    parts.append(format("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" "
                                        + "stroke-width=\"1.5\"/>", px(x), px(x), py(y - spread[j]),
                                        py(y + spread[j]), colour))
                }
            }
            let points = finite.map { format("%.1f,%.1f", px(s.points[$0].x), py(s.points[$0].y)) }
            if points.count > 1 {
                parts.append("<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" "
                             + "points=\"\(points.joined(separator: " "))\"/>")
            }
            for j in finite {
                parts.append(format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>",
                                    px(s.points[j].x), py(s.points[j].y), colour))
            }
        }
        parts += legend(series.map(\.name), note: series.contains { $0.spread != nil } ? "bars: ± 1 std" : nil)
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }

    // MARK: Strip plots

    /// One column per group: a dot per value (spread sideways so equal values stay visible), a bar at the mean and
    /// a whisker of ± one sample standard deviation.
    public static func strip(title: String, valueLabel: String, groups: [(name: String, values: [Double])]) -> String {
        // The range covers every value and every whisker (mean ± std).
        let all = groups.flatMap { group -> [Double] in
            let values = group.values.filter(\.isFinite)
            guard values.count > 1 else { return values }
            let s = SampleStatistics(values)
            return values + [s.mean - s.standardDeviation!, s.mean + s.standardDeviation!]
        }
        let yTickValues = ticks(low: all.min() ?? 0, high: all.max() ?? 1)
        let yRange = (yTickValues.first!, yTickValues.last!)
        func py(_ y: Double) -> Double { top + plotHeight * (1 - (y - yRange.0) / (yRange.1 - yRange.0)) }
        var parts = frame(title: title, xLabel: "model", yLabel: valueLabel)
        parts += yAxis(yTickValues, py)
        let columnWidth = plotWidth / Double(max(groups.count, 1))
        for (i, group) in groups.enumerated() {
            let colour = colours[i % colours.count]
            let centre = left + columnWidth * (Double(i) + 0.5)
            parts.append(format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>", centre,
                                top + plotHeight + 18, CurvePlot.escape(group.name)))
            let values = group.values.filter(\.isFinite)
            guard !values.isEmpty else { continue }
            let stats = SampleStatistics(values)
            for (j, v) in values.enumerated() {
                let offset = values.count == 1 ? 0 : (Double(j) / Double(values.count - 1) - 0.5) * columnWidth * 0.3
                parts.append(format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%@\" fill-opacity=\"0.7\"/>",
                                    centre + offset, py(v), colour))
            }
            let half = columnWidth * 0.25
            parts.append(format("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" "
                                + "stroke-width=\"2\"/>", centre - half, centre + half, py(stats.mean), py(stats.mean)))
            if let std = stats.standardDeviation {
                parts.append(format("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>",
                                    centre, centre, py(stats.mean - std), py(stats.mean + std)))
                for y in [stats.mean - std, stats.mean + std] {
                    parts.append(format("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>",
                                        centre - half / 2, centre + half / 2, py(y), py(y)))
                }
            }
        }
        parts += legend(groups.map { "\($0.name) (\($0.values.count) seeds)" },
                        note: "bar: mean, whisker: ± 1 std", dots: true)
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }

    // MARK: Pieces

    static func format(_ pattern: String, _ arguments: CVarArg...) -> String {
        String(format: pattern, arguments: arguments)
    }

    /// The header, the background, the title, the plot's box and the axis labels.
    static func frame(title: String, xLabel: String, yLabel: String) -> [String] {
        [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
                + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            format("<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">%@</text>",
                   width / 2, CurvePlot.escape(title)),
            format("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>",
                   left, top, plotWidth, plotHeight),
            format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>", left + plotWidth / 2,
                   top + plotHeight + 42, CurvePlot.escape(xLabel)),
            format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">%@</text>",
                   left - 52, top + plotHeight / 2, left - 52, top + plotHeight / 2, CurvePlot.escape(yLabel)),
        ]
    }

    /// Grid lines and labels of the y ticks.
    static func yAxis(_ ticks: [Double], _ py: (Double) -> Double) -> [String] {
        ticks.flatMap { v in [
            format("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>",
                   left, left + plotWidth, py(v), py(v)),
            format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>", left - 6, py(v) + 4, label(v)),
        ] }
    }

    /// The legend to the right of the plot: a coloured mark and the name per entry, and an optional note below.
    static func legend(_ names: [String], note: String?, dots: Bool = false) -> [String] {
        let x = left + plotWidth + 20
        var parts = [format("<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">legend</text>", x, top + 12)]
        for (i, name) in names.enumerated() {
            let y = top + 32 + Double(i) * 20
            let colour = colours[i % colours.count]
            parts.append(dots
                ? format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%@\"/>", x + 7, y - 4, colour)
                : format("<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"4\" fill=\"%@\"/>", x, y - 6, colour))
            parts.append(format("<text x=\"%.1f\" y=\"%.1f\">%@</text>", x + 22, y, CurvePlot.escape(name)))
        }
        if let note {
            parts.append(format("<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">%@</text>", x,
                                top + 32 + Double(names.count) * 20 + 6, CurvePlot.escape(note)))
        }
        return parts
    }

    /// Writes an SVG's text atomically; a failure is a `DataError` naming the path.
    public static func write(_ svg: String, to url: URL) throws {
        try JSONText.writeText(svg, to: url)
    }
}
