import CZlib
import Foundation

// MARK: - RGB canvas

/// An 8-bit RGB colour.
struct RGB: Equatable {
    var r: UInt8, g: UInt8, b: UInt8
    static let white = RGB(r: 255, g: 255, b: 255)
    static let black = RGB(r: 0, g: 0, b: 0)
    static let separator = RGB(r: 150, g: 150, b: 150)
    static let text = RGB(r: 30, g: 30, b: 30)
    static let good = RGB(r: 20, g: 120, b: 40)
    static let bad = RGB(r: 190, g: 30, b: 30)
}

/// A picture in memory, row after row, three bytes a pixel.
struct Canvas {
    let width: Int, height: Int
    private(set) var pixels: [UInt8]

    init(width: Int, height: Int, background: RGB = .white) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, width: width, height: height, background)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r
        pixels[i + 1] = c.g
        pixels[i + 2] = c.b
    }

    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ c: RGB) {
        for yy in max(y, 0)..<min(y + h, height) {
            for xx in max(x, 0)..<min(x + w, width) { set(xx, yy, c) }
        }
    }

    /// Writes `text` with the 5x7 font, each font pixel a `scale` x `scale` block; returns the width drawn.
    @discardableResult
    mutating func draw(_ text: String, x: Int, y: Int, scale: Int = 1, colour: RGB = .text) -> Int {
        var cursor = x
        for character in text.uppercased() {
            let rows = BitmapFont.glyph(character)
            for (row, bits) in rows.enumerated() {
                for column in 0..<5 where bits & (1 << (4 - column)) != 0 {
                    fill(x: cursor + column * scale, y: y + row * scale, width: scale, height: scale, colour)
                }
            }
            cursor += BitmapFont.advance * scale
        }
        return cursor - x
    }

    static func textWidth(_ text: String, scale: Int = 1) -> Int { text.count * BitmapFont.advance * scale }
}

// MARK: - PNG encoding

/// Writes 8-bit RGB PNG files: signature, IHDR, one zlib-compressed IDAT (every scanline with filter 0), IEND.
enum PNG {
    struct EncodingError: Error, CustomStringConvertible {
        let code: Int32
        var description: String { "PNG: zlib could not compress the image (code \(code))" }
    }

    static func encode(_ canvas: Canvas) throws -> Data {
        var raw = [UInt8]()
        raw.reserveCapacity((canvas.width * 3 + 1) * canvas.height)
        canvas.pixels.withUnsafeBufferPointer { p in
            for row in 0..<canvas.height {
                raw.append(0)  // filter type None
                raw.append(contentsOf: p[(row * canvas.width * 3)..<((row + 1) * canvas.width * 3)])
            }
        }
        var compressedSize = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
        let status = compress2(&compressed, &compressedSize, raw, uLong(raw.count), Z_BEST_COMPRESSION)
        guard status == Z_OK else { throw EncodingError(code: status) }
        compressed.removeSubrange(Int(compressedSize)...)

        var header = [UInt8]()
        header += bigEndian(UInt32(canvas.width))
        header += bigEndian(UInt32(canvas.height))
        header += [8, 2, 0, 0, 0]  // bit depth 8, colour type RGB, deflate, adaptive filtering, no interlace

        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        file += chunk("IHDR", header)
        file += chunk("IDAT", compressed)
        file += chunk("IEND", [])
        return Data(file)
    }

    static func write(_ canvas: Canvas, to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encode(canvas).write(to: url, options: .atomic)
    }

    /// Length, type, data, and the CRC-32 of type and data.
    private static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        let body = typeBytes + data
        let checksum = body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        return bigEndian(UInt32(data.count)) + body + bigEndian(UInt32(checksum))
    }

    private static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
}

// MARK: - 5x7 font

/// Upper-case letters, digits and a little punctuation, 5 pixels wide and 7 high; each row's low 5 bits, left pixel
/// in bit 4. Unknown characters draw as blanks.
enum BitmapFont {
    static let height = 7
    /// Horizontal distance from one character to the next, in font pixels.
    static let advance = 6

    static func glyph(_ c: Character) -> [UInt8] { glyphs[c] ?? glyphs[" "]! }

    private static let glyphs: [Character: [UInt8]] = {
        // Each glyph as 7 strings of 5 characters, "#" for a set pixel.
        let drawn: [Character: [String]] = [
            " ": [".....", ".....", ".....", ".....", ".....", ".....", "....."],
            "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
            "B": ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."],
            "C": [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
            "D": ["####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."],
            "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
            "F": ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
            "G": [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".###."],
            "H": ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
            "I": [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
            "J": ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
            "K": ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
            "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
            "M": ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
            "N": ["#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"],
            "O": [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
            "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
            "Q": [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"],
            "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
            "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
            "T": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
            "U": ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
            "V": ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
            "W": ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."],
            "X": ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],
            "Y": ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],
            "Z": ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"],
            "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
            "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
            "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
            "3": ["####.", "....#", "....#", ".###.", "....#", "....#", "####."],
            "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
            "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
            "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
            "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
            "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
            "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
            "(": ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],
            ")": [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],
            "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
            "+": [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."],
            "=": [".....", ".....", "#####", ".....", "#####", ".....", "....."],
            ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
            ",": [".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."],
            ":": [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."],
            ";": [".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."],
            "/": ["....#", "....#", "...#.", "..#..", ".#...", "#....", "#...."],
            "|": ["..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
            "'": ["..#..", "..#..", ".#...", ".....", ".....", ".....", "....."],
            ">": [".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."],
            "<": ["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."],
            "%": ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],
            "*": [".....", "#.#.#", ".###.", "#####", ".###.", "#.#.#", "....."],
            "_": [".....", ".....", ".....", ".....", ".....", ".....", "#####"],
        ]
        return drawn.mapValues { rows in
            rows.map { row in row.reduce(UInt8(0)) { ($0 << 1) | ($1 == "#" ? 1 : 0) } }
        }
    }()
}
