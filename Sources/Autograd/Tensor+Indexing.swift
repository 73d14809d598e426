// MARK: - Indexing: gather, index_select, comparisons and where
//
// Every op here reads each result element from one input element, so all of them lower to `gathered(_:shape:)`
// (an index gather whose vjp adds each gradient element back onto the element it was read from) with flat indices
// computed from the arguments. `where` gathers from its two operands laid end to end.

/// An integer tensor of positions (PyTorch's int64 index tensors): the `index` of `gather`, the result of `argmax`.
public struct IndexTensor: Equatable, Sendable, CustomStringConvertible {
    /// Size of each axis.
    public let shape: [Int]
    /// The positions, row-major, `shape.reduce(1, *)` of them.
    public let indices: [Int]

    /// Positions of the given shape; `indices.count` must be the product of `shape`.
    public init(shape: [Int], indices: [Int]) {
        check(shape.allSatisfy { $0 >= 0 }, "IndexTensor: negative dimension in shape \(shape)")
        check(indices.count == shape.reduce(1, *), "IndexTensor: \(indices.count) indices do not fill shape \(shape)")
        self.shape = shape
        self.indices = indices
    }

    /// A 1-D index tensor.
    public init(_ indices: [Int]) { self.init(shape: [indices.count], indices: indices) }

    public var rank: Int { shape.count }
    public var count: Int { indices.count }

    public var description: String { "tensor(\(nestedDescription(shape: shape, values: indices.map(String.init))))" }
}

/// A boolean tensor: the result of elementwise comparisons, the condition of `Tensor.where`.
public struct TensorMask: Equatable, Sendable, CustomStringConvertible {
    public let shape: [Int]
    /// The truth values, row-major.
    public let values: [Bool]

    public init(shape: [Int], values: [Bool]) {
        check(shape.allSatisfy { $0 >= 0 }, "TensorMask: negative dimension in shape \(shape)")
        check(values.count == shape.reduce(1, *), "TensorMask: \(values.count) values do not fill shape \(shape)")
        self.shape = shape
        self.values = values
    }

    public var count: Int { values.count }

    /// Elementwise not, and, or (broadcasting).
    public static prefix func .! (a: TensorMask) -> TensorMask { TensorMask(shape: a.shape, values: a.values.map { !$0 }) }
    public static func .& (a: TensorMask, b: TensorMask) -> TensorMask { combining(a, b, "and") { $0 && $1 } }
    public static func .| (a: TensorMask, b: TensorMask) -> TensorMask { combining(a, b, "or") { $0 || $1 } }

    static func combining(_ a: TensorMask, _ b: TensorMask, _ op: String,
                          _ f: (Bool, Bool) -> Bool) -> TensorMask {
        guard let shape = ShapeMath.broadcast(a.shape, b.shape) else {
            fatalError("mask \(op): shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let ia = broadcastIndices(a.shape, to: shape), ib = broadcastIndices(b.shape, to: shape)
        return TensorMask(shape: shape, values: zip(ia, ib).map { f(a.values[$0], b.values[$1]) })
    }

    public var description: String {
        "tensor(\(nestedDescription(shape: shape, values: values.map { $0 ? "True" : "False" })))"
    }
}

/// For each element of `target` (row-major), the flat index of the element of `shape` that broadcasting reads.
func broadcastIndices(_ shape: [Int], to target: [Int]) -> [Int] {
    let strides = ShapeMath.broadcastStrides(shape, to: target)
    let count = target.reduce(1, *)
    var result = [Int](repeating: 0, count: count)
    var index = [Int](repeating: 0, count: target.count)
    var offset = 0
    for i in 0..<count {
        result[i] = offset
        var axis = target.count - 1
        while axis >= 0 {
            index[axis] += 1
            offset += strides[axis]
            if index[axis] < target[axis] { break }
            offset -= strides[axis] * target[axis]
            index[axis] = 0
            axis -= 1
        }
    }
    return result
}

extension Tensor {
    /// Flat indices as the `Int32` that the gather kernel reads.
    private static func narrow(_ indices: [Int], op: String) -> [Int32] {
        check(indices.count < Int(Int32.max), "\(op): \(indices.count) elements are more than the gather kernel takes")
        return indices.map { Int32(truncatingIfNeeded: $0) }
    }

    // MARK: gather and index_select

    /// Picks elements along `axis` by position, as `torch.gather(input, dim, index)`: for a 3-D input and axis 1,
    /// out[i][j][k] = input[i][index[i][j][k]][k]. `index` has the input's rank and, on every other axis, at most the
    /// input's size; the result has the shape of `index`. vjp: each gradient element added onto the element read.
    public func gather(axis: Int, index: IndexTensor) -> Tensor {
        check(rank == index.rank || (rank == 0 && index.rank <= 1),
              "gather: index of shape \(index.shape) must have the rank of the input of shape \(shape)")
        if rank == 0 {
            check(index.indices.allSatisfy { $0 == 0 }, "gather: index \(index.indices) out of range for a rank-0 input")
            return gathered(Tensor.narrow(index.indices.map { _ in 0 }, op: "gather"), shape: index.shape)
        }
        check(axis >= -rank && axis < rank, "gather: axis \(axis) is out of range for the input of shape \(shape)")
        let a = (axis + rank) % rank
        for d in 0..<rank where d != a {
            check(index.shape[d] <= shape[d], "gather: index of shape \(index.shape) is larger than the input of "
                  + "shape \(shape) on axis \(d)")
        }
        let strides = ShapeMath.strides(shape)
        let indexStrides = ShapeMath.strides(index.shape)
        var flat = [Int](repeating: 0, count: index.count)
        for i in 0..<index.count {
            let position = index.indices[i]
            check(position >= 0 && position < shape[a], "gather: index \(position) is out of range 0..<\(shape[a]) "
                  + "for axis \(axis) of the input of shape \(shape)")
            var offset = 0, rest = i
            for d in 0..<rank {
                let coordinate = rest / indexStrides[d]
                rest %= indexStrides[d]
                offset += (d == a ? position : coordinate) * strides[d]
            }
            flat[i] = offset
        }
        return gathered(Tensor.narrow(flat, op: "gather"), shape: index.shape)
    }

    /// The slices at `indices` along `axis`, in that order (repeats allowed), as `torch.index_select(input, dim,
    /// index)`. Shape: the input's with size `indices.count` on `axis`. vjp: the gradient slices added back.
    public func indexSelect(axis: Int, indices: [Int]) -> Tensor {
        check(rank > 0 || indices.allSatisfy { $0 == 0 }, "index_select: the input of shape \(shape) has no axes")
        if rank == 0 { return gathered(Tensor.narrow(indices.map { _ in 0 }, op: "index_select"), shape: []) }
        check(axis >= -rank && axis < rank,
              "index_select: axis \(axis) is out of range for the input of shape \(shape)")
        let a = (axis + rank) % rank
        for position in indices {
            check(position >= 0 && position < shape[a], "index_select: index \(position) is out of range "
                  + "0..<\(shape[a]) for axis \(axis) of the input of shape \(shape)")
        }
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var flat: [Int] = []
        flat.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for position in indices {
                let start = (o * shape[a] + position) * inner
                flat.append(contentsOf: start ..< start + inner)
            }
        }
        var outShape = shape
        outShape[a] = indices.count
        return gathered(Tensor.narrow(flat, op: "index_select"), shape: outShape)
    }

    // MARK: Comparisons

    private static func comparing(_ a: Tensor, _ b: Tensor, _ op: String,
                                  _ f: (Scalar, Scalar) -> Bool) -> TensorMask {
        guard let shape = ShapeMath.broadcast(a.shape, b.shape) else {
            fatalError("\(op): shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let ia = broadcastIndices(a.shape, to: shape), ib = broadcastIndices(b.shape, to: shape)
        return TensorMask(shape: shape, values: zip(ia, ib).map { f(a.scalars[$0], b.scalars[$1]) })
    }

    /// Elementwise comparisons with broadcasting, as `torch.gt`, `lt`, `ge`, `le`, `eq`, `ne` (NaN compares false,
    /// except for `.!=`). Not differentiable.
    public static func .> (a: Tensor, b: Tensor) -> TensorMask { comparing(a, b, "gt") { $0 > $1 } }
    public static func .< (a: Tensor, b: Tensor) -> TensorMask { comparing(a, b, "lt") { $0 < $1 } }
    public static func .>= (a: Tensor, b: Tensor) -> TensorMask { comparing(a, b, "ge") { $0 >= $1 } }
    public static func .<= (a: Tensor, b: Tensor) -> TensorMask { comparing(a, b, "le") { $0 <= $1 } }
    public static func .== (a: Tensor, b: Tensor) -> TensorMask { comparing(a, b, "eq") { $0 == $1 } }
    public static func .!= (a: Tensor, b: Tensor) -> TensorMask { comparing(a, b, "ne") { $0 != $1 } }
    public static func .> (a: Tensor, s: Scalar) -> TensorMask { a .> Tensor(s) }
    public static func .< (a: Tensor, s: Scalar) -> TensorMask { a .< Tensor(s) }
    public static func .>= (a: Tensor, s: Scalar) -> TensorMask { a .>= Tensor(s) }
    public static func .<= (a: Tensor, s: Scalar) -> TensorMask { a .<= Tensor(s) }
    public static func .== (a: Tensor, s: Scalar) -> TensorMask { a .== Tensor(s) }
    public static func .!= (a: Tensor, s: Scalar) -> TensorMask { a .!= Tensor(s) }

    /// The mask as a tensor of 1 (true) and 0 (false), a constant.
    public init(_ mask: TensorMask) {
        self.init(shape: mask.shape, scalars: mask.values.map { $0 ? 1 : 0 })
    }

    // MARK: where and masking

    /// `a` where `condition` holds, `b` elsewhere, all three broadcast together, as `torch.where(condition, a, b)`.
    /// vjp: g to `a` where the condition holds and to `b` elsewhere (0 for the other), summed back over broadcasting.
    /// An infinity or NaN in the branch not taken does not reach the result; that branch gets a zero gradient there
    /// (an op before it whose vjp is 0 / 0 at that point, as log at 0, still makes NaN, as in PyTorch).
    public static func `where`(_ condition: TensorMask, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard let ab = ShapeMath.broadcast(a.shape, b.shape), let shape = ShapeMath.broadcast(condition.shape, ab)
        else {
            fatalError("where: condition \(condition.shape), a \(a.shape) and b \(b.shape) do not broadcast")
        }
        let ia = broadcastIndices(a.shape, to: shape), ib = broadcastIndices(b.shape, to: shape)
        let ic = broadcastIndices(condition.shape, to: shape)
        let flat = (0..<ia.count).map { condition.values[ic[$0]] ? ia[$0] : a.count + ib[$0] }
        let both = concatenated([a.reshaped([a.count]), b.reshaped([b.count])], axis: 0)
        return both.gathered(narrow(flat, op: "where"), shape: shape)
    }

    /// `a` where `condition` holds, the constant `b` elsewhere.
    public static func `where`(_ condition: TensorMask, _ a: Tensor, _ b: Scalar) -> Tensor {
        Tensor.where(condition, a, Tensor(b))
    }

    /// The constant `a` where `condition` holds, `b` elsewhere.
    public static func `where`(_ condition: TensorMask, _ a: Scalar, _ b: Tensor) -> Tensor {
        Tensor.where(condition, Tensor(a), b)
    }

    /// `value` where `mask` holds, this tensor elsewhere, as `Tensor.masked_fill(mask, value)`; the mask broadcasts to
    /// this tensor's shape. vjp: g where the mask is false, 0 where it is true.
    public func maskedFill(_ mask: TensorMask, _ value: Scalar) -> Tensor {
        check(ShapeMath.broadcast(mask.shape, shape) == shape,
              "masked_fill: mask of shape \(mask.shape) does not broadcast to the input of shape \(shape)")
        return Tensor.where(mask, value, self)
    }
}
