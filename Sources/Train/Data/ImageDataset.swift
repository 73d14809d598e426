import Foundation

/// An in-memory labelled image set: images row-major (count, 1, height, width) as Float in [0,1], labels 0...9.
public struct ImageDataset: Sendable {
    /// All pixels, image after image, each image row after row (`count * height * width` values).
    public var images: [Float]
    /// One class index per image.
    public var labels: [Int]
    /// Rows per image.
    public let height: Int
    /// Columns per image.
    public let width: Int

    /// The number of images.
    public var count: Int { labels.count }

    /// Pixels per image (`height * width`).
    public var pixelsPerImage: Int { height * width }

    /// Creates a data set; `images` must hold exactly `labels.count * height * width` values.
    public init(images: [Float], labels: [Int], height: Int, width: Int) {
        precondition(height > 0 && width > 0, "ImageDataset: height and width must be positive")
        precondition(images.count == labels.count * height * width,
                     "ImageDataset: \(images.count) pixels do not make \(labels.count) images of \(height)x\(width)")
        self.images = images
        self.labels = labels
        self.height = height
        self.width = width
    }

    /// The pixels of image `index`.
    public func image(_ index: Int) -> ArraySlice<Float> {
        let n = pixelsPerImage
        return images[(index * n)..<((index + 1) * n)]
    }

    /// Pads every image by repeating edge pixels: `before` rows/cols before, `after` after (MNIST-rot: 2, 3 -> 28 to 33).
    public func edgePadded(before: Int, after: Int) -> ImageDataset {
        precondition(before >= 0 && after >= 0, "edgePadded: padding must not be negative")
        if before == 0 && after == 0 { return self }
        let h = height, w = width
        let outH = h + before + after, outW = w + before + after
        let n = count
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
        return ImageDataset(images: out, labels: labels, height: outH, width: outW)
    }

    /// The images at `indices`, in that order (indices may repeat).
    public func subset(_ indices: [Int]) -> ImageDataset {
        let n = pixelsPerImage
        var out = [Float]()
        out.reserveCapacity(indices.count * n)
        var outLabels = [Int]()
        outLabels.reserveCapacity(indices.count)
        for i in indices {
            precondition(i >= 0 && i < count, "subset: index \(i) out of range 0..<\(count)")
            out.append(contentsOf: images[(i * n)..<((i + 1) * n)])
            outLabels.append(labels[i])
        }
        return ImageDataset(images: out, labels: outLabels, height: height, width: width)
    }

    /// This set followed by `other` (same image size).
    public func appending(_ other: ImageDataset) -> ImageDataset {
        precondition(height == other.height && width == other.width, "appending: image sizes differ")
        return ImageDataset(images: images + other.images, labels: labels + other.labels,
                            height: height, width: width)
    }

    /// How many images carry each label `0..<classes` (labels outside are not counted).
    public func labelCounts(classes: Int = 10) -> [Int] {
        var counts = [Int](repeating: 0, count: classes)
        for l in labels where l >= 0 && l < classes { counts[l] += 1 }
        return counts
    }
}

/// A fault in a data file: names the file, the place in it (line, row or byte offset) and what is wrong.
public struct DataError: Error, CustomStringConvertible, Sendable {
    /// The file concerned (its path).
    public let file: String
    /// Where in the file, e.g. "line 12", "byte 8"; nil when the fault concerns the file as a whole.
    public let place: String?
    /// What is wrong.
    public let fault: String

    public init(file: String, place: String? = nil, fault: String) {
        self.file = file
        self.place = place
        self.fault = fault
    }

    init(_ url: URL, _ place: String? = nil, _ fault: String) {
        self.init(file: url.path, place: place, fault: fault)
    }

    public var description: String {
        if let place { return "\(file): \(place): \(fault)" }
        return "\(file): \(fault)"
    }
}

/// File access shared by the data-set readers and writers.
enum DataFiles {
    /// The whole content of `url`, with `extra` zero bytes appended (a terminator for C parsers).
    static func readBytes(_ url: URL, extra: Int = 0) throws -> [UInt8] {
        let path = url.path
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw DataError(url, nil, "cannot open (\(errnoText()))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw DataError(url, nil, "cannot stat (\(errnoText()))") }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw DataError(url, nil, "is a directory, not a file") }
        // The size from fstat is a hint only: one spare byte reveals whether the file grew.
        var bytes = [UInt8](repeating: 0, count: max(Int(info.st_size), 0) + 1 + extra)
        var used = 0
        while true {
            if bytes.count - extra - used == 0 {
                bytes.append(contentsOf: repeatElement(0, count: max(bytes.count, 65536)))
            }
            let room = bytes.count - extra - used
            let got = bytes.withUnsafeMutableBytes { buf in read(fd, buf.baseAddress! + used, room) }
            if got < 0 {
                if errno == EINTR { continue }
                throw DataError(url, nil, "read failed (\(errnoText()))")
            }
            if got == 0 { break }
            used += got
        }
        bytes.removeLast(bytes.count - used - extra)
        for i in used..<(used + extra) { bytes[i] = 0 }
        return bytes
    }

    /// Writes to a temporary file beside `url` through `body`, then renames it over `url`,
    /// so `url` is either absent, the old file or the complete new one.
    static func writeAtomically(_ url: URL, _ body: (UnsafeMutablePointer<FILE>) throws -> Void) throws {
        let dir = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw DataError(dir, nil, "cannot create directory (\(error.localizedDescription))")
        }
        let temp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard let file = fopen(temp.path, "wb") else {
            throw DataError(temp, nil, "cannot create (\(errnoText()))")
        }
        var closed = false
        do {
            try body(file)
            if ferror(file) != 0 { throw DataError(temp, nil, "write failed (\(errnoText()))") }
            closed = true
            if fclose(file) != 0 { throw DataError(temp, nil, "write failed on close (\(errnoText()))") }
            if rename(temp.path, url.path) != 0 {
                throw DataError(url, nil, "cannot rename \(temp.lastPathComponent) into place (\(errnoText()))")
            }
        } catch {
            if !closed { fclose(file) }
            unlink(temp.path)
            throw error
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    static func exists(_ url: URL) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && !isDir.boolValue
    }
}
