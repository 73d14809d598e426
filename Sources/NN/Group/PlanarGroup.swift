import Autograd

/// A finite group of symmetries of the square pixel grid: the rotations by multiples of 90 degrees (C4, "p4" when
/// combined with translations), optionally with reflections (D4, "p4m").
///
/// Element `g` has index `flip * 4 + rotation` and acts on an image by first flipping the width axis (when
/// `flip == 1`) and then rotating by `rotation` quarter turns (`rot90` on the last two axes). On a group feature map
/// of shape (B, C, |G|, H, W) it permutes the group axis and transforms every plane:
/// `out[:, :, g * h] = T_g(y[:, :, h])` (for C4: `out[:, :, (i + r) % 4] = rot90(y[:, :, i], r)`).
public struct PlanarGroup: Sendable, Equatable, CustomStringConvertible {
    /// "C4" or "D4".
    public let name: String
    /// Number of elements: 4 for C4, 8 for D4.
    public let order: Int

    /// Rotations by 0, 90, 180 and 270 degrees.
    public static let c4 = PlanarGroup(name: "C4", order: 4)
    /// Rotations and reflections: the symmetries of the square.
    public static let d4 = PlanarGroup(name: "D4", order: 8)

    /// The group's name.
    public var description: String { name }
    /// The elements as indices 0..<order (0 is the identity).
    public var elements: Range<Int> { 0..<order }

    // MARK: Group law

    /// (flip, rotation) of element `g`.
    public func parts(_ g: Int) -> (flip: Int, rotation: Int) {
        check(g >= 0 && g < order, "\(name): no element \(g)")
        return (g / 4, g % 4)
    }

    private func element(flip: Int, rotation: Int) -> Int { flip * 4 + ((rotation % 4) + 4) % 4 }

    /// The element `a * b` (apply b, then a). With F R = R^-1 F: (m1, r1)(m2, r2) = (m1 + m2, r1 + (-1)^m1 r2).
    public func compose(_ a: Int, _ b: Int) -> Int {
        let (m1, r1) = parts(a), (m2, r2) = parts(b)
        return element(flip: (m1 + m2) % 2, rotation: r1 + (m1 == 0 ? r2 : -r2))
    }

    /// The element `g^-1`.
    public func inverse(_ g: Int) -> Int {
        let (m, r) = parts(g)
        return element(flip: m, rotation: m == 0 ? -r : r)
    }

    // MARK: Actions

    /// Transforms the last two axes of `x` by `g` (flip of the width axis, then rot90).
    public func transformPlanes<S>(_ x: Tensor<S>, by g: Int) -> Tensor<S> {
        let (m, r) = parts(g)
        return (m == 1 ? x.flipped([-1]) : x).rotated90(r, axes: (-2, -1))
    }

    /// Acts by `g` on a group feature map (B, C, |G|, H, W) (or any tensor whose axis -3 is the group axis):
    /// plane `h` moves to `g * h` and is transformed by `g`.
    public func act<S>(_ g: Int, onFeatureMap y: Tensor<S>) -> Tensor<S> {
        check(y.rank >= 3 && y.shape[y.rank - 3] == order,
              "\(name).act: axis -3 of \(y.shape) must be the group axis of size \(order)")
        let inverse = inverse(g)
        let axis = y.rank - 3
        let planes = elements.map { j in y.sliced(axis: axis, compose(inverse, j) ..< compose(inverse, j) + 1) }
        return transformPlanes(Tensor.concatenated(planes, axis: axis), by: g)
    }
}
