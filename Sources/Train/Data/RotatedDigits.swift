import Autograd
import Foundation

/// Builds rotated data sets: every image turned about its centre by its own random angle.
public enum RotatedDigits {
    /// Rotates each image about its centre ((side-1)/2) by an angle from U[0, 2pi) drawn from SeededRandom(seed),
    /// bilinear interpolation, zero outside, same canvas, clipped to [0,1].
    ///
    /// The angles are drawn in image order, one `uniform(0, 2pi)` each, before any image is processed, so the
    /// result depends only on the data and the seed (not on how the work is spread over threads).
    public static func rotate(_ data: ImageDataset, seed: UInt64) -> ImageDataset {
        check(data.height == data.width, "RotatedDigits.rotate: images must be square")
        var rng = SeededRandom(seed: seed)
        let angles = (0..<data.count).map { _ in rng.uniform(0, 2 * Double.pi) }
        return rotate(data, angles: angles)
    }

    /// Rotates image `i` of `data` by `angles[i]` (radians, counter-clockwise as displayed with row 0 on top).
    public static func rotate(_ data: ImageDataset, angles: [Double]) -> ImageDataset {
        check(data.height == data.width, "RotatedDigits.rotate: images must be square")
        check(angles.count == data.count, "RotatedDigits.rotate: one angle per image needed")
        let side = data.height
        let pixels = side * side
        let n = data.count
        var out = [Float](repeating: 0, count: n * pixels)
        if n == 0 { return data }
        let chunks = min(n, 256)
        data.images.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let job = RotationJob(source: src.baseAddress!, target: dst.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                    let lo = n * chunk / chunks, hi = n * (chunk + 1) / chunks
                    for i in lo..<hi {
                        rotate(job.source + i * pixels, into: job.target + i * pixels, side: side, angle: angles[i])
                    }
                }
            }
        }
        return ImageDataset(images: out, labels: data.labels, height: side, width: side)
    }

    /// One `side` x `side` image rotated by `angle` radians about its centre ((side-1)/2, (side-1)/2):
    /// counter-clockwise as displayed with row 0 on top, so `pi/2` gives the same result as a quarter turn
    /// `rot90` (k = 1). Each output pixel samples the source bilinearly at its exact inverse-rotated position,
    /// with zero outside the image; results are clipped to [0,1].
    public static func rotateImage(_ pixels: ArraySlice<Float>, side: Int, angle: Double) -> [Float] {
        check(pixels.count == side * side, "rotateImage: \(pixels.count) pixels do not make a \(side)x\(side) image")
        var out = [Float](repeating: 0, count: side * side)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                rotate(src.baseAddress!, into: dst.baseAddress!, side: side, angle: angle)
            }
        }
        return out
    }

    /// See `rotateImage(_:side:angle:)`.
    public static func rotateImage(_ pixels: [Float], side: Int, angle: Double) -> [Float] {
        rotateImage(pixels[...], side: side, angle: angle)
    }

    /// The rotation kernel. The output pixel at offset (dx, dy) from the centre reads the source at offset
    /// (cos(a) dx - sin(a) dy, sin(a) dx + cos(a) dy): the output position turned back by the angle
    /// (x grows to the right, y downwards).
    static func rotate(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, side: Int, angle: Double) {
        let c = Double(side - 1) / 2
        let cosA = cos(angle), sinA = sin(angle)
        let limit = side - 1
        for y in 0..<side {
            let dy = Double(y) - c
            let xBase = c - dy * sinA, yBase = c + dy * cosA
            let row = dst + y * side
            for x in 0..<side {
                let dx = Double(x) - c
                let xs = xBase + dx * cosA, ys = yBase + dx * sinA
                let fx = xs.rounded(.down), fy = ys.rounded(.down)
                // Entirely outside (no neighbour inside): zero.
                if fx < -1 || fy < -1 || fx > Double(limit) || fy > Double(limit) { row[x] = 0; continue }
                let x0 = Int(fx), y0 = Int(fy)
                let wx = Float(xs - fx), wy = Float(ys - fy)
                let x0in = x0 >= 0, x1in = x0 + 1 <= limit
                let y0in = y0 >= 0, y1in = y0 + 1 <= limit
                var v: Float = 0
                if y0in {
                    let r = src + y0 * side
                    if x0in { v += (1 - wx) * (1 - wy) * r[x0] }
                    if x1in { v += wx * (1 - wy) * r[x0 + 1] }
                }
                if y1in {
                    let r = src + (y0 + 1) * side
                    if x0in { v += (1 - wx) * wy * r[x0] }
                    if x1in { v += wx * wy * r[x0 + 1] }
                }
                row[x] = min(max(v, 0), 1)
            }
        }
    }
}

/// Source and target storage for concurrent rotation; every worker writes only its own images.
private struct RotationJob: @unchecked Sendable {
    let source: UnsafePointer<Float>
    let target: UnsafeMutablePointer<Float>
}
