import Autograd
import Foundation

/// The IDX format of MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a type code, the number of
/// dimensions, then one 32-bit size per dimension) followed by the values. Files may be gzip-compressed.
public enum IDX {
    /// Reads IDX images (magic 0x00000803, dims count,rows,cols; UInt8 -> /255) and labels (0x00000801);
    /// gzip detected by magic 1f 8b, else plain. Validates magic, dims, byte counts, label range, matching counts.
    public static func read(images: URL, labels: URL) throws -> ImageDataset {
        let (imageBytes, imagesZipped) = try load(images, expectedDims: 3)
        let imageDims = try header(imageBytes, url: images, zipped: imagesZipped, expectedDims: 3)
        let (outLabels, labelsZipped) = try readLabelFile(labels)

        let (count, rows, cols) = (imageDims[0], imageDims[1], imageDims[2])
        guard rows > 0, cols > 0 else {
            throw DataError(images, imagesZipped ? "uncompressed byte 8" : "byte 8", "image size \(rows)x\(cols) is empty")
        }
        guard outLabels.count == count else {
            throw DataError(labels, labelsZipped ? "uncompressed byte 4" : "byte 4",
                            "holds \(outLabels.count) labels but \(images.path) holds \(count) images")
        }
        guard count > 0 else { throw DataError(images, imagesZipped ? "uncompressed byte 4" : "byte 4", "holds no images") }

        let pixels = rows * cols
        let imageOffset = 16
        var out = [Float](repeating: 0, count: count * pixels)
        imageBytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress! + imageOffset
                for i in 0..<(count * pixels) { dst[i] = Float(s[i]) / 255 }
            }
        }
        return ImageDataset(images: out, labels: outLabels, height: rows, width: cols)
    }

    /// Reads an IDX label file (magic 0x00000801) on its own; labels must be 0...9.
    public static func readLabels(_ url: URL) throws -> [Int] {
        try readLabelFile(url).labels
    }

    /// The labels of an IDX label file and whether it was gzip-compressed.
    static func readLabelFile(_ url: URL) throws -> (labels: [Int], zipped: Bool) {
        let (bytes, zipped) = try load(url, expectedDims: 1)
        let dims = try header(bytes, url: url, zipped: zipped, expectedDims: 1)
        var labels = [Int](repeating: 0, count: dims[0])
        for i in 0..<dims[0] {
            let l = Int(bytes[8 + i])
            guard l <= 9 else {
                throw DataError(url, "\(zipped ? "uncompressed byte" : "byte") \(8 + i) (label \(i))",
                                "label \(l) is not a class 0...9")
            }
            labels[i] = l
        }
        return (labels, zipped)
    }

    /// The content of `url`, inflated if gzip-compressed, and whether it was. A compressed file is inflated no further
    /// than the size its IDX header declares: the header is inflated first, then the stream up to one byte past that
    /// size, which is enough to tell that it holds more. (A header that cannot be read leaves the bound at what the
    /// memory holds, so that a damaged stream is reported as such.) The content and the values decoded from it (4
    /// bytes each) must fit in this machine's memory.
    static func load(_ url: URL, expectedDims: Int) throws -> ([UInt8], Bool) {
        let raw = try DataFiles.readBytes(url)
        guard Gzip.isGzip(raw) else { return (raw, false) }
        let headerSize = 4 + 4 * expectedDims
        let memory = RegularFile.memoryBudget / 5
        let head = try Gzip.inflate(raw, file: url.path, maximumSize: headerSize, prefix: true)
        let header = try? declaredSize(head, url: url, zipped: true, expectedDims: expectedDims)
        let bound = min(header?.bytes ?? memory, memory)
        let content = try Gzip.inflate(raw, file: url.path, maximumSize: bound + 1, prefix: true)
        if content.count > bound, let (dims, declared) = header {
            let shape = dims.map(String.init).joined(separator: "x")
            if declared > bound {
                throw DataError(url, "uncompressed byte \(bound)", "shape \(shape) declares \(declared) bytes and the "
                                + "stream holds more than \(bound), more than this machine's "
                                + "\(RegularFile.size(RegularFile.memoryBudget)) of memory can hold decoded")
            }
            throw DataError(url, "uncompressed byte \(declared)",
                            "size mismatch: shape \(shape) needs \(declared) bytes, the file holds more")
        }
        if content.count > bound {
            throw DataError(url, "uncompressed byte \(bound)", "the gzip stream inflates to more than this machine's "
                            + "\(RegularFile.size(RegularFile.memoryBudget)) of memory can hold decoded")
        }
        return (content, true)
    }

    /// Checks the header of an unsigned-byte IDX file with `expectedDims` dimensions and that the data size
    /// matches exactly; returns the dimensions. Byte offsets in errors count the uncompressed content.
    static func header(_ bytes: [UInt8], url: URL, zipped: Bool, expectedDims: Int) throws -> [Int] {
        let byte = zipped ? "uncompressed byte" : "byte"
        let (dims, expectedBytes) = try declaredSize(bytes, url: url, zipped: zipped, expectedDims: expectedDims)
        guard bytes.count == expectedBytes else {
            let shape = dims.map(String.init).joined(separator: "x")
            throw DataError(url, "\(byte) \(min(bytes.count, expectedBytes))",
                            "size mismatch: shape \(shape) needs \(expectedBytes) bytes, file has \(bytes.count)")
        }
        return dims
    }

    /// The dimensions in the header at the start of `bytes` and the size of the whole file they declare (header and
    /// values); checks the magic number and that the header is complete.
    static func declaredSize(_ bytes: [UInt8], url: URL, zipped: Bool, expectedDims: Int) throws
        -> (dims: [Int], bytes: Int) {
        let byte = zipped ? "uncompressed byte" : "byte"
        let headerSize = 4 + 4 * expectedDims
        guard bytes.count >= 4 else {
            throw DataError(url, "\(byte) 0", "file too short for an IDX header (\(bytes.count) bytes)")
        }
        let magic = bytes[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let expected = UInt32(0x0800) | UInt32(expectedDims)
        guard magic == expected else {
            let hex = String(magic, radix: 16)
            let want = String(expected, radix: 16)
            let kind = expectedDims == 3 ? "images" : "labels"
            throw DataError(url, "\(byte) 0", "bad magic number 0x\(String(repeating: "0", count: 8 - hex.count))\(hex), "
                            + "expected 0x\(String(repeating: "0", count: 8 - want.count))\(want) (unsigned-byte IDX \(kind))")
        }
        guard bytes.count >= headerSize else {
            throw DataError(url, "\(byte) \(bytes.count)", "file ends inside the IDX header (\(headerSize) bytes expected)")
        }
        var dims = [Int]()
        var total = 1
        for d in 0..<expectedDims {
            let o = 4 + 4 * d
            let n = bytes[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) }
            dims.append(n)
            let (product, overflow) = total.multipliedReportingOverflow(by: n)
            guard !overflow else { throw DataError(url, "\(byte) \(o)", "dimension sizes overflow") }
            total = product
        }
        let (expectedBytes, overflow) = total.addingReportingOverflow(headerSize)
        guard !overflow else { throw DataError(url, "\(byte) 4", "dimension sizes overflow") }
        return (dims, expectedBytes)
    }
}
