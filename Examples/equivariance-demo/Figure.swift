import Foundation

/// How values become colours.
enum ColourMap {
    /// Black at `low`, white at `high` (for images).
    case gray(low: Float, high: Float)
    /// Blue for negative, white for zero, red for positive, saturating at +-`scale` (for filter responses).
    case diverging(scale: Float)

    func colour(_ v: Float) -> RGB {
        switch self {
        case .gray(let low, let high):
            let t = high > low ? min(max((v - low) / (high - low), 0), 1) : 0
            let level = UInt8((t * 255).rounded())
            return RGB(r: level, g: level, b: level)
        case .diverging(let scale):
            let t = scale > 0 ? min(max(v / scale, -1), 1) : 0
            let end = t < 0 ? (r: 40.0, g: 80.0, b: 200.0) : (r: 190.0, g: 20.0, b: 30.0)
            let a = Double(abs(t))
            func mix(_ e: Double) -> UInt8 { UInt8((255 * (1 - a) + e * a).rounded()) }
            return RGB(r: mix(end.r), g: mix(end.g), b: mix(end.b))
        }
    }
}

/// One cell of a figure: a caption over an image, a bar chart, or nothing.
struct Panel {
    enum Content {
        /// Row-major values of an image of `height` x `width`.
        case image([Float], height: Int, width: Int, ColourMap)
        /// Probabilities of the ten classes; the largest bar is drawn darker and its class named.
        case bars([Float])
        case empty
    }

    var caption: String
    var content: Content

    static let empty = Panel(caption: "", content: .empty)

    static func image(_ caption: String, _ values: [Float], side: Int, _ map: ColourMap) -> Panel {
        Panel(caption: caption, content: .image(values, height: side, width: side, map))
    }
}

/// Panels in a grid with 1-pixel separators, a title above and notes below (each note may be coloured).
struct Figure {
    var title: String
    var rows: [[Panel]]
    var notes: [(text: String, colour: RGB)] = []
    /// Side of the square area each panel's picture is scaled to fit, in pixels.
    var pictureSide = 99

    private let margin = 8, captionHeight = 12, padding = 4

    func render() -> Canvas {
        let columns = rows.map(\.count).max() ?? 0
        let longestCaption = rows.flatMap { $0.map { Canvas.textWidth($0.caption) } }.max() ?? 0
        let cellWidth = max(pictureSide, longestCaption) + 2 * padding
        let cellHeight = captionHeight + pictureSide + 2 * padding
        let gridWidth = columns * cellWidth + columns + 1
        let gridHeight = rows.count * cellHeight + rows.count + 1
        let titleHeight = 2 * BitmapFont.height + 2 * margin
        let notesHeight = notes.isEmpty ? 0 : notes.count * (2 * BitmapFont.height + 6) + margin
        let width = max(gridWidth, Canvas.textWidth(title, scale: 2),
                        notes.map { Canvas.textWidth($0.text, scale: 2) }.max() ?? 0) + 2 * margin
        let height = titleHeight + gridHeight + notesHeight + margin
        var canvas = Canvas(width: width, height: height)
        canvas.draw(title, x: margin, y: margin, scale: 2)

        let left = margin, top = titleHeight
        // Separators: the grid lines around and between the cells.
        for c in 0...columns {
            canvas.fill(x: left + c * (cellWidth + 1), y: top, width: 1, height: gridHeight, .separator)
        }
        for r in 0...rows.count {
            canvas.fill(x: left, y: top + r * (cellHeight + 1), width: gridWidth, height: 1, .separator)
        }

        for (r, row) in rows.enumerated() {
            for (c, panel) in row.enumerated() {
                let x0 = left + 1 + c * (cellWidth + 1), y0 = top + 1 + r * (cellHeight + 1)
                let captionX = x0 + (cellWidth - Canvas.textWidth(panel.caption)) / 2
                canvas.draw(panel.caption, x: captionX, y: y0 + padding)
                let pictureX = x0 + (cellWidth - pictureSide) / 2, pictureY = y0 + padding + captionHeight
                draw(panel.content, into: &canvas, x: pictureX, y: pictureY)
            }
        }
        var y = top + gridHeight + margin
        for note in notes {
            canvas.draw(note.text, x: margin, y: y, scale: 2, colour: note.colour)
            y += 2 * BitmapFont.height + 6
        }
        return canvas
    }

    private func draw(_ content: Panel.Content, into canvas: inout Canvas, x: Int, y: Int) {
        switch content {
        case .empty:
            break
        case .image(let values, let h, let w, let map):
            // Whole-pixel upscaling, centred in the picture area.
            let scale = max(1, pictureSide / max(h, w))
            let ox = x + (pictureSide - w * scale) / 2, oy = y + (pictureSide - h * scale) / 2
            for row in 0..<h {
                for column in 0..<w {
                    canvas.fill(x: ox + column * scale, y: oy + row * scale, width: scale, height: scale,
                                map.colour(values[row * w + column]))
                }
            }
        case .bars(let probabilities):
            let count = probabilities.count
            let barWidth = (pictureSide - 4) / count
            let base = y + pictureSide - BitmapFont.height - 3
            let best = probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
            canvas.fill(x: x, y: base, width: pictureSide, height: 1, .separator)
            for (i, p) in probabilities.enumerated() {
                let barHeight = Int((Float(base - y - 2) * min(max(p, 0), 1)).rounded())
                let colour = i == best ? RGB(r: 30, g: 70, b: 160) : RGB(r: 150, g: 175, b: 220)
                let bx = x + 2 + i * barWidth
                canvas.fill(x: bx + 1, y: base - barHeight, width: barWidth - 2, height: barHeight, colour)
                canvas.draw("\(i % 10)", x: bx + (barWidth - 5) / 2, y: base + 3,
                            colour: i == best ? .black : .separator)
            }
        }
    }

    func write(to url: URL) throws { try PNG.write(render(), to: url) }
}
