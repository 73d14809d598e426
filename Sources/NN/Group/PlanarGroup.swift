import Autograd
import Foundation

/// A finite group of rotations of the plane about the image centre, optionally with reflections: the cyclic group
/// C_N (rotations by multiples of 2 pi / N) or the dihedral group D_N (those rotations and the mirror images).
/// C4 ("p4" when combined with translations) and D4 ("p4m") are the symmetries of the square pixel grid.
///
/// Element `g` has index `flip * N + rotation` and acts on an image by first flipping the width axis (when
/// `flip == 1`) and then rotating counter-clockwise by `rotation * 2 pi / N`. Rotations by multiples of 90 degrees
/// are `rot90` on the last two axes, exact; any other angle is a bilinear resampling (`Tensor.rotated(by:)`), exact
/// only up to the grid's sampling error. On a group feature map of shape (B, C, |G|, H, W) it permutes the group axis
/// and transforms every plane: `out[:, :, g * h] = T_g(y[:, :, h])` (for C_N: `out[:, :, (i + r) % N] =
/// rotate(y[:, :, i], 2 pi r / N)`), the regular representation.
public struct PlanarGroup: Sendable, Equatable, CustomStringConvertible {
    /// "C4", "D4", "C8", ...: C_N or D_N.
    public let name: String
    /// Number of elements: N for C_N, 2N for D_N.
    public let order: Int
    /// N: the number of rotations.
    public let rotations: Int
    /// True for D_N.
    public let hasReflections: Bool

    /// Rotations by 0, 90, 180 and 270 degrees.
    public static let c4 = PlanarGroup.cyclic(4)
    /// Rotations and reflections: the symmetries of the square.
    public static let d4 = PlanarGroup.dihedral(4)

    /// C_N, the rotations by multiples of 2 pi / N (N >= 1).
    public static func cyclic(_ n: Int) -> PlanarGroup {
        check(n >= 1, "PlanarGroup.cyclic: the rotation order must be at least 1, got \(n)")
        return PlanarGroup(name: "C\(n)", order: n, rotations: n, hasReflections: false)
    }

    /// D_N, the rotations by multiples of 2 pi / N and their compositions with the mirror of the width axis (N >= 1).
    public static func dihedral(_ n: Int) -> PlanarGroup {
        check(n >= 1, "PlanarGroup.dihedral: the rotation order must be at least 1, got \(n)")
        return PlanarGroup(name: "D\(n)", order: 2 * n, rotations: n, hasReflections: true)
    }

    /// The group's name.
    public var description: String { name }
    /// The elements as indices 0..<order (0 is the identity).
    public var elements: Range<Int> { 0..<order }

    // MARK: Group law

    /// (flip, rotation) of element `g`.
    public func parts(_ g: Int) -> (flip: Int, rotation: Int) {
        check(g >= 0 && g < order, "\(name): no element \(g) (elements are 0..<\(order))")
        return (g / rotations, g % rotations)
    }

    /// The element with these parts (rotation taken modulo N).
    public func element(flip: Int, rotation: Int) -> Int {
        check(flip == 0 || (flip == 1 && hasReflections), "\(name): no element with flip \(flip)")
        return flip * rotations + ((rotation % rotations) + rotations) % rotations
    }

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

    /// The rotation angle of `g` in radians, counter-clockwise: 2 pi rotation / N.
    public func angle(_ g: Int) -> Double {
        2 * Double.pi * Double(parts(g).rotation) / Double(rotations)
    }

    /// The quarter turns of `g`'s rotation when it is a multiple of 90 degrees (so `g` maps the pixel grid onto
    /// itself and acts exactly), else nil.
    public func quarterTurns(_ g: Int) -> Int? {
        let r = parts(g).rotation
        return (4 * r) % rotations == 0 ? 4 * r / rotations : nil
    }

    /// True when `g` maps the square pixel grid onto itself (its rotation is a multiple of 90 degrees).
    public func isExactOnGrid(_ g: Int) -> Bool { quarterTurns(g) != nil }

    /// The elements that act exactly on the grid, a subgroup (C1, C2 or C4, with the reflections for D_N).
    public var gridElements: [Int] { elements.filter(isExactOnGrid) }

    // MARK: Actions

    /// Transforms the last two axes of `x` by `g`: flip of the width axis, then the rotation (rot90 for multiples of
    /// 90 degrees, else bilinear with zeros outside the image).
    public func transformPlanes<S>(_ x: Tensor<S>, by g: Int) -> Tensor<S> {
        let m = parts(g).flip
        let flipped = m == 1 ? x.flipped([-1]) : x
        if let turns = quarterTurns(g) { return flipped.rotated90(turns, axes: (-2, -1)) }
        return flipped.rotated(by: angle(g))
    }

    /// Acts by `g` on a group feature map (B, C, |G|, H, W) (or any tensor whose axis -3 is the group axis):
    /// plane `h` moves to `g * h` and is transformed by `g`.
    public func act<S>(_ g: Int, onFeatureMap y: Tensor<S>) -> Tensor<S> {
        check(y.rank >= 3 && y.shape[y.rank - 3] == order,
              "\(name).act: axis -3 of \(y.shape) must be the group axis of size \(order)")
        return transformPlanes(permuteGroupAxis(g, y), by: g)
    }

    /// The planes of `y` (group axis -3) moved as `g` moves them, without transforming them: plane `h` to `g * h`.
    public func permuteGroupAxis<S>(_ g: Int, _ y: Tensor<S>) -> Tensor<S> {
        let inverse = inverse(g)
        let axis = y.rank - 3
        let planes = elements.map { j in y.sliced(axis: axis, compose(inverse, j) ..< compose(inverse, j) + 1) }
        return Tensor.concatenated(planes, axis: axis)
    }
}
