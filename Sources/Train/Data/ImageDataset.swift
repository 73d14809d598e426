import Autograd
import Foundation

/// An in-memory labelled image set: images row-major (count, channels, height, width) as Float, one class label
/// each. Batches of it are (B, channels, height, width).
public struct ImageDataset: Dataset, Sendable {
    /// All pixels, image after image, each image channel after channel and each channel row after row
    /// (`count * channels * height * width` values).
    public var images: [Float]
    /// One class index per image.
    public var labels: [Int]
    /// Channels per image (1 for grey images, 3 for RGB).
    public let channels: Int
    /// Rows per image.
    public let height: Int
    /// Columns per image.
    public let width: Int

    /// The number of images.
    public var count: Int { labels.count }

    /// Values per image (`channels * height * width`).
    public var pixelsPerImage: Int { channels * height * width }

    /// Creates a data set; `images` must hold exactly `labels.count * channels * height * width` values.
    public init(images: [Float], labels: [Int], channels: Int = 1, height: Int, width: Int) {
        check(channels > 0 && height > 0 && width > 0,
              "ImageDataset: channels, height and width must be positive, got \(channels)x\(height)x\(width)")
        check(images.count == labels.count * channels * height * width,
              "ImageDataset: \(images.count) values do not make \(labels.count) images of \(channels)x\(height)x\(width)")
        self.images = images
        self.labels = labels
        self.channels = channels
        self.height = height
        self.width = width
    }

    // MARK: Dataset

    /// `[channels, height, width]`.
    public var sampleShape: [Int] { [channels, height, width] }

    public func input(_ index: Int) -> ArraySlice<Float> { image(index) }

    public func target(_ index: Int) -> Target { .label(labels[index]) }

    // MARK: Images

    /// The pixels of image `index`.
    public func image(_ index: Int) -> ArraySlice<Float> {
        let n = pixelsPerImage
        return images[(index * n)..<((index + 1) * n)]
    }

    /// Pads every channel of every image by repeating edge pixels: `before` rows/cols before, `after` after (MNIST-rot: 2, 3 -> 28 to 33).
    public func edgePadded(before: Int, after: Int) -> ImageDataset {
        check(before >= 0 && after >= 0, "edgePadded: padding must not be negative")
        if before == 0 && after == 0 { return self }
        let h = height, w = width
        let outH = h + before + after, outW = w + before + after
        let n = count * channels  // every channel of every image is padded alike
        var out = [Float](repeating: 0, count: n * outH * outW)
        images.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let s = i * h * w, d = i * outH * outW
                    for oy in 0..<outH {
                        let sy = min(max(oy - before, 0), h - 1)
                        let srow = s + sy * w
                        let drow = d + oy * outW
                        let first = src[srow], last = src[srow + w - 1]
                        for ox in 0..<before { dst[drow + ox] = first }
                        for x in 0..<w { dst[drow + before + x] = src[srow + x] }
                        for ox in (before + w)..<outW { dst[drow + ox] = last }
                    }
                }
            }
        }
        return ImageDataset(images: out, labels: labels, channels: channels, height: outH, width: outW)
    }

    /// The images at `indices`, in that order (indices may repeat).
    public func subset(_ indices: [Int]) -> ImageDataset {
        let n = pixelsPerImage
        var out = [Float]()
        out.reserveCapacity(indices.count * n)
        var outLabels = [Int]()
        outLabels.reserveCapacity(indices.count)
        for i in indices {
            check(i >= 0 && i < count, "subset: index \(i) out of range 0..<\(count)")
            out.append(contentsOf: images[(i * n)..<((i + 1) * n)])
            outLabels.append(labels[i])
        }
        return ImageDataset(images: out, labels: outLabels, channels: channels, height: height, width: width)
    }

    /// This set followed by `other` (same channels and image size).
    public func appending(_ other: ImageDataset) -> ImageDataset {
        check(channels == other.channels && height == other.height && width == other.width,
              "appending: images of \(channels)x\(height)x\(width) and \(other.channels)x\(other.height)x\(other.width) differ")
        return ImageDataset(images: images + other.images, labels: labels + other.labels,
                            channels: channels, height: height, width: width)
    }

    /// How many images carry each label `0..<classes` (labels outside are not counted).
    public func labelCounts(classes: Int = 10) -> [Int] {
        var counts = [Int](repeating: 0, count: classes)
        for l in labels where l >= 0 && l < classes { counts[l] += 1 }
        return counts
    }
}
