import Autograd
import Foundation

/// The MNIST-rot text format (`.amat`): one image per line, `side * side` pixel values then the label,
/// separated by whitespace.
public enum AMAT {
    /// Reads an MNIST-rot .amat file: per non-empty line 784 floats (whitespace separated) then the label
    /// (written as a float like 7.000000e+00). Validates column count, numeric fields, values finite,
    /// label integral 0...9, at least one row.
    public static func read(_ url: URL, side: Int = 28) throws -> ImageDataset {
        check(side > 0, "AMAT.read: side must be positive")
        // One zero byte after the content stops the C number parser at the end of the last line.
        let bytes = try DataFiles.readBytes(url, extra: 1, copies: 3)
        let size = bytes.count - 1
        let pixels = side * side
        // The shortest possible data row: `pixels + 1` one-character fields and the spaces between them.
        let shortestRow = 2 * pixels + 1

        // The non-blank lines, each as (first byte, end of line without its newline, 0-based line number). A
        // non-blank line shorter than `shortestRow` cannot hold a row: lines are taken only up to the first such
        // line, which keeps the image storage within about twice the file size whatever the file holds.
        var rows: [(start: Int, end: Int, line: Int)] = []
        var shortLine: (start: Int, end: Int, line: Int)? = nil
        bytes.withUnsafeBufferPointer { buf in
            let base = buf.baseAddress!
            var p = 0
            var line = 0
            while p < size {
                let end: Int
                if let hit = memchr(base + p, 0x0A, size - p) {
                    end = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                } else {
                    end = size
                }
                var q = p
                while q < end && isSpace(base[q]) { q += 1 }
                if q < end {
                    if end - q < shortestRow {
                        shortLine = (p, end, line)
                        return
                    }
                    rows.append((p, end, line))
                }
                p = end + 1
                line += 1
            }
        }
        if rows.isEmpty && shortLine == nil {
            throw size == 0 ? DataError(url, "byte 0", "empty file (no data rows)")
                : DataError(url, "end of file", "no data rows (only blank lines)")
        }

        let rowCount = rows.count
        var images = [Float](repeating: 0, count: rowCount * pixels)
        var labels = [Int](repeating: 0, count: rowCount)
        let chunkCount = min(rowCount, 64)
        var errors = [DataError?](repeating: nil, count: chunkCount)

        if rowCount > 0 {
            bytes.withUnsafeBufferPointer { src in
                images.withUnsafeMutableBufferPointer { img in
                    labels.withUnsafeMutableBufferPointer { lab in
                        errors.withUnsafeMutableBufferPointer { err in
                            let job = LineParser(text: src.baseAddress!, rows: rows, pixels: pixels,
                                                 images: img.baseAddress!, labels: lab.baseAddress!,
                                                 errors: err.baseAddress!, file: url.path)
                            DispatchQueue.concurrentPerform(iterations: chunkCount) { chunk in
                                let lo = rowCount * chunk / chunkCount
                                let hi = rowCount * (chunk + 1) / chunkCount
                                job.parse(rows: lo..<hi, chunk: chunk)
                            }
                        }
                    }
                }
            }
        }
        // Chunks cover the rows in order and each stops at its first fault: the first fault found is the earliest.
        if let first = errors.lazy.compactMap({ $0 }).first { throw first }

        // A line too short for a row comes after every row read: its own fault is the earliest.
        if let shortLine {
            var row = [Float](repeating: 0, count: pixels)
            var label = 0
            var error: DataError? = nil
            bytes.withUnsafeBufferPointer { src in
                row.withUnsafeMutableBufferPointer { img in
                    withUnsafeMutablePointer(to: &label) { lab in
                        withUnsafeMutablePointer(to: &error) { err in
                            let job = LineParser(text: src.baseAddress!, rows: [shortLine], pixels: pixels,
                                                 images: img.baseAddress!, labels: lab, errors: err, file: url.path)
                            job.parse(rows: 0..<1, chunk: 0)
                        }
                    }
                }
            }
            throw error ?? DataError(url, "line \(shortLine.line + 1)",
                                     "line too short for \(pixels) pixels and a label")
        }
        return ImageDataset(images: images, labels: labels, height: side, width: side)
    }

    @inline(__always) fileprivate static func isSpace(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0B || c == 0x0C
    }

    /// Writes `data` in the .amat format read by `read(_:side:)` (square images only), atomically:
    /// to a temporary file first, renamed into place when complete. Pixel values are written in the
    /// shortest form that reads back to the same Float.
    public static func write(_ data: ImageDataset, to url: URL) throws {
        guard data.height == data.width else {
            throw DataError(url, nil, "cannot write \(data.height)x\(data.width) images: the format needs square images")
        }
        if let bad = data.labels.firstIndex(where: { !(0...9).contains($0) }) {
            throw DataError(url, "row \(bad + 1)", "label \(data.labels[bad]) is not a class 0...9")
        }
        if let bad = data.images.firstIndex(where: { !$0.isFinite }) {
            throw DataError(url, "row \(bad / data.pixelsPerImage + 1)", "pixel value \(data.images[bad]) is not finite")
        }
        let pixels = data.pixelsPerImage
        let rowsPerPiece = 64
        let piecesPerBatch = 32
        try DataFiles.writeAtomically(url) { file in
            var row = 0
            while row < data.count {
                let batchRows = min(rowsPerPiece * piecesPerBatch, data.count - row)
                let pieceCount = (batchRows + rowsPerPiece - 1) / rowsPerPiece
                var pieces = [[UInt8]](repeating: [], count: pieceCount)
                let firstRow = row
                pieces.withUnsafeMutableBufferPointer { out in
                    let target = PieceTarget(base: out.baseAddress!)
                    data.images.withUnsafeBufferPointer { img in
                        let source = PixelSource(base: img.baseAddress!)
                        DispatchQueue.concurrentPerform(iterations: pieceCount) { piece in
                            let lo = firstRow + piece * rowsPerPiece
                            let hi = min(lo + rowsPerPiece, firstRow + batchRows)
                            var text = [UInt8]()
                            text.reserveCapacity((hi - lo) * pixels * 4)
                            for r in lo..<hi {
                                for k in 0..<pixels {
                                    let v = source.base[r * pixels + k]
                                    if v == 0 {
                                        text.append(0x30)
                                    } else {
                                        text.append(contentsOf: v.description.utf8)
                                    }
                                    text.append(0x20)
                                }
                                text.append(contentsOf: String(data.labels[r]).utf8)
                                text.append(0x0A)
                            }
                            target.base[piece] = text
                        }
                    }
                }
                for piece in pieces {
                    let written = piece.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                    if written != piece.count { throw DataError(url, nil, "write failed (\(DataFiles.errnoText()))") }
                }
                row += batchRows
            }
        }
    }
}

/// Raw pointers handed to concurrent workers; each worker touches only its own rows.
private struct PixelSource: @unchecked Sendable { let base: UnsafePointer<Float> }
private struct PieceTarget: @unchecked Sendable { let base: UnsafeMutablePointer<[UInt8]> }

/// Parses .amat rows into preallocated image and label storage.
private struct LineParser: @unchecked Sendable {
    let text: UnsafePointer<UInt8>
    /// The rows: byte range of each non-blank line and its 0-based line number.
    let rows: [(start: Int, end: Int, line: Int)]
    let pixels: Int
    let images: UnsafeMutablePointer<Float>
    let labels: UnsafeMutablePointer<Int>
    let errors: UnsafeMutablePointer<DataError?>
    let file: String

    @inline(__always) private func isSpace(_ c: UInt8) -> Bool { AMAT.isSpace(c) }

    /// The token `start ..< end` for an error message.
    private func token(_ start: Int, _ end: Int) -> String {
        DataFiles.shown(UnsafeBufferPointer(start: text + start, count: end - start))
    }

    /// The number spelled by the token `start ..< end`, parsed by the C library function `parser`
    /// (correctly rounded), or nil unless the whole token is consumed. The byte after a token is always
    /// whitespace or the zero terminator, so the parser stops there at the latest.
    @inline(__always)
    private func number<T>(_ start: Int, _ end: Int,
                           _ parser: (UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T? {
        let first = UnsafeRawPointer(text + start).assumingMemoryBound(to: CChar.self)
        var stop: UnsafeMutablePointer<CChar>? = nil
        let value = parser(first, &stop)
        guard let stop, stop - UnsafeMutablePointer(mutating: first) == end - start else { return nil }
        return value
    }

    func parse(rows range: Range<Int>, chunk: Int) {
        for index in range {
            if let fault = parse(row: index) {
                errors[chunk] = DataError(file: file, place: "line \(rows[index].line + 1)", fault: fault)
                return
            }
        }
    }

    /// Parses one row into slot `index`; returns a fault description or nil.
    private func parse(row index: Int) -> String? {
        let (start, end, _) = rows[index]
        var p = start
        var column = 0
        let row = images + index * pixels
        // A bad label is reported only once the column count is known to be right: with a field too many or too
        // few, the field in the label's place is not the label.
        var labelFault: String? = nil
        while true {
            while p < end && isSpace(text[p]) { p += 1 }
            if p >= end { break }
            let t = p
            while p < end && !isSpace(text[p]) { p += 1 }
            if column < pixels {
                if p - t == 1 && text[t] == 0x30 {
                    row[column] = 0
                } else {
                    guard let value = number(t, p, strtof) else {
                        return "field \(column + 1) is not a number: '\(token(t, p))'"
                    }
                    if !value.isFinite { return "field \(column + 1) is not finite: '\(token(t, p))'" }
                    row[column] = value
                }
            } else if column == pixels {
                if let value = number(t, p, strtod) {
                    if value.isFinite, value == value.rounded(), value >= 0, value <= 9 {
                        labels[index] = Int(value)
                    } else {
                        labelFault = "label \(token(t, p)) (field \(column + 1)) is not a class 0...9"
                    }
                } else {
                    labelFault = "label (field \(column + 1)) is not a number: '\(token(t, p))'"
                }
            }
            column += 1
        }
        if column != pixels + 1 {
            return "expected \(pixels + 1) values (\(pixels) pixels and a label), found \(column)"
        }
        return labelFault
    }
}
