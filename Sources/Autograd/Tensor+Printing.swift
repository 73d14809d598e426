import Foundation

// MARK: - Printing tensors as PyTorch does
//
// `print(x)` shows nested rows as `torch.Tensor.__repr__` does with its default print options: 4 decimals, every
// element right-aligned to one width, scientific notation when magnitudes span more than 1e3 (or exceed 1e8, or fall
// below 1e-4), integral values as "3."; a tensor of more than 1000 elements shows the first and last 3 entries of
// each axis around "...". Then the shape, the element type when it is not Float, and whether it requires a gradient:
//
//     tensor([[ 0.1000, -1.2000],
//             [ 3.0000,  4.0000]], shape=[2, 2], requires_grad=True)

/// PyTorch's default print options.
enum PrintOptions {
    static let precision = 4
    static let threshold = 1000
    static let edgeItems = 3
    static let lineWidth = 80
}

/// How the elements of one tensor are written: one mode and one width for all of them.
struct ScalarFormatter {
    private var integral = true
    private var scientific = false
    private(set) var width = 1

    /// Chooses the mode from the nonzero finite values among `values`, as PyTorch's `_Formatter`.
    init(_ values: [Double]) {
        let finite = values.filter { $0.isFinite && $0 != 0 }
        guard !finite.isEmpty else { return }
        let magnitudes = finite.map { Swift.abs($0) }
        let (low, high) = (magnitudes.min()!, magnitudes.max()!)
        integral = finite.allSatisfy { $0 == $0.rounded(.up) }
        if integral {
            scientific = high / low > 1000 || high > 1e8
        } else {
            scientific = high / low > 1000 || high > 1e8 || low < 1e-4
        }
        width = finite.reduce(1) { Swift.max($0, unpadded($1).count) }
    }

    private func unpadded(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        let p = PrintOptions.precision
        if scientific { return String(format: "%.\(p)e", value) }
        if integral { return String(format: "%.0f", value) + "." }
        return String(format: "%.\(p)f", value)
    }

    /// `value` right-aligned to the common width.
    func format(_ value: Double) -> String {
        let text = unpadded(value)
        return String(repeating: " ", count: Swift.max(0, width - text.count)) + text
    }
}

/// The positions shown along an axis of `size`: all of them, or the first and last edge items with nil for "...".
private func shownPositions(_ size: Int, summarize: Bool) -> [Int?] {
    let edge = PrintOptions.edgeItems
    if summarize && size > 2 * edge { return Array(0..<edge) + [nil] + Array(size - edge ..< size) }
    return Array(0..<size)
}

/// Every flat index that the summarised view shows.
private func shownIndices(_ shape: [Int], summarize: Bool) -> [Int] {
    let strides = ShapeMath.strides(shape)
    var offsets = [0]
    for (axis, size) in shape.enumerated() {
        let positions = shownPositions(size, summarize: summarize).compactMap { $0 }
        offsets = offsets.flatMap { base in positions.map { base + $0 * strides[axis] } }
    }
    return offsets
}

/// Nested brackets over `shape` for elements already written (and padded) as `values[flatIndex]`, laid out as
/// PyTorch's `_tensor_str`: rows wrapped at 80 columns, a blank line between blocks of rank 3 and more, "..." in
/// place of the middle of long axes when `summarize`.
private func nestedRows(shape: [Int], values: (Int) -> String, width: Int, summarize: Bool, indent: Int) -> String {
    let strides = ShapeMath.strides(shape)
    func render(_ axis: Int, _ offset: Int, _ indent: Int) -> String {
        let positions = shownPositions(shape[axis], summarize: summarize)
        if axis == shape.count - 1 {
            let items = positions.map { $0.map { values(offset + $0 * strides[axis]) } ?? " ..." }
            let perLine = Swift.max(1, (PrintOptions.lineWidth - indent) / (width + 2))
            let lines = stride(from: 0, to: items.count, by: perLine).map {
                items[$0 ..< Swift.min($0 + perLine, items.count)].joined(separator: ", ")
            }
            return "[" + lines.joined(separator: ",\n" + String(repeating: " ", count: indent + 1)) + "]"
        }
        let slices = positions.map { $0.map { render(axis + 1, offset + $0 * strides[axis], indent + 1) } ?? "..." }
        let separator = "," + String(repeating: "\n", count: shape.count - axis - 1)
            + String(repeating: " ", count: indent + 1)
        return "[" + slices.joined(separator: separator) + "]"
    }
    return render(0, 0, indent)
}

/// The bracketed elements of a tensor of `shape` whose elements are written as `values` (integers, truth values),
/// padded to one width, for `IndexTensor` and `TensorMask`.
func nestedDescription(shape: [Int], values: [String]) -> String {
    if shape.isEmpty { return values.first ?? "" }
    if values.isEmpty { return "[]" }
    let summarize = values.count > PrintOptions.threshold
    let width = shownIndices(shape, summarize: summarize).reduce(1) { Swift.max($0, values[$1].count) }
    let padded = { (i: Int) in String(repeating: " ", count: width - values[i].count) + values[i] }
    return nestedRows(shape: shape, values: padded, width: width, summarize: summarize, indent: 7)
}

extension Tensor: CustomStringConvertible {
    /// The elements in nested rows as PyTorch prints them (summarised beyond 1000 elements), then `shape=`, the
    /// element type when it is not Float (`dtype=F64`) and `requires_grad=True` for a tracked tensor.
    public var description: String {
        let summarize = count > PrintOptions.threshold
        let doubles = scalars.map { Double($0) }
        let body: String
        if rank == 0 {
            body = ScalarFormatter(doubles).format(doubles[0]).trimmingCharacters(in: .whitespaces)
        } else if count == 0 {
            body = "[]"
        } else {
            let formatter = ScalarFormatter(shownIndices(shape, summarize: summarize).map { doubles[$0] })
            body = nestedRows(shape: shape, values: { formatter.format(doubles[$0]) }, width: formatter.width,
                              summarize: summarize, indent: 7)
        }
        var suffixes = ["shape=\(shape)"]
        if Scalar.self != Float.self { suffixes.append("dtype=\(Scalar.dtypeName)") }
        if requiresGradient { suffixes.append("requires_grad=True") }
        // As PyTorch's `_add_suffixes`: a suffix that would pass 80 columns starts a new line.
        var text = "tensor(" + body
        var lastLine = text.count - (text.lastIndex(of: "\n").map { text.distance(from: text.startIndex, to: $0) }
            ?? -1)
        for suffix in suffixes {
            if lastLine + suffix.count + 2 > PrintOptions.lineWidth {
                text += ",\n" + String(repeating: " ", count: 7) + suffix
                lastLine = 7 + suffix.count
            } else {
                text += ", " + suffix
                lastLine += suffix.count + 2
            }
        }
        return text + ")"
    }
}
