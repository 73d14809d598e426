import Foundation
import Autograd

/// Checks that a layer commutes with a group: `layer(g x) == g layer(x)` for every element `g`.
///
/// Each check applies every group element to `input`, compares both sides, and reports the relative error
/// (max |a - b| / max |b|) per element. Elements that act exactly on the pixel grid (rotations by multiples of 90
/// degrees, with or without the mirror) are compared over the whole output: with odd spatial sizes every layer of the
/// framework is equivariant to them to float precision. The others (45 degrees in C8, ...) rotate by bilinear
/// resampling, so both sides carry the grid's sampling error; they are compared inside the disc inscribed in the
/// output planes less one pixel (outside it a rotated image has lost its corners), and reported apart. Such a check
/// means something for inputs that vanish outside their inscribed disc, as the rotated digits do.
public enum EquivarianceCheck {
    /// What a check found.
    public struct Report: CustomStringConvertible {
        /// "equivariance" or "invariance".
        public let kind: String
        /// The group whose elements were applied.
        public let group: PlanarGroup
        /// Relative error for each group element, in element order.
        public let errors: [Double]
        /// The worst relative error over the elements exact on the grid.
        public var worstRelativeError: Double {
            group.elements.filter(group.isExactOnGrid).map { errors[$0] }.max() ?? 0
        }
        /// The worst relative error over the other elements (the grid's sampling error), nil when all are exact.
        public var worstSamplingError: Double? {
            group.elements.filter { !group.isExactOnGrid($0) }.map { errors[$0] }.max()
        }
        /// True when every element exact on the grid is within `tolerance` (default 1e-5).
        public func holds(tolerance: Double = 1e-5) -> Bool { worstRelativeError <= tolerance }

        /// `Invariant` / `Equivariant` (or `Not ...`), the kind, the group and the worst relative error.
        public var description: String {
            let verdict = holds() ? (kind == "invariance" ? "Invariant" : "Equivariant")
                : (kind == "invariance" ? "Not invariant" : "Not equivariant")
            guard let sampling = worstSamplingError else {
                return "\(verdict) (\(kind), \(group), worst relative error \(formatError(worstRelativeError)))"
            }
            let exact = group.gridElements.count
            return "\(verdict) (\(kind), \(group): \(exact) elements exact on the grid, worst relative error "
                + "\(formatError(worstRelativeError)); \(group.order - exact) others, sampling error up to "
                + "\(formatError(sampling)))"
        }

        /// One line per element: its name, angle and relative error, marked exact or sampled.
        public var perElement: [String] {
            group.elements.map { g in
                let (flip, rotation) = group.parts(g)
                let degrees = 360 * Double(rotation) / Double(group.rotations)
                let name = (flip == 1 ? "mirror, then " : "") + String(format: "rotation %.1f deg", degrees)
                return "\(group) element \(g) (\(name)): relative error \(formatError(errors[g]))"
                    + (group.isExactOnGrid(g) ? " (exact on the grid)" : " (sampling error)")
            }
        }
    }

    /// How inputs and outputs are transformed.
    public enum Space {
        /// Images (..., H, W): g acts on the last two axes by the flip and the rotation (rot90, or bilinear off
        /// the grid).
        case image
        /// Group feature maps (N, C, |G|, H, W): g permutes the group axis and transforms each plane.
        case group
        /// Left as they are (for invariance).
        case invariant

        func apply<S>(_ g: Int, _ group: PlanarGroup, _ x: Tensor<S>) -> Tensor<S> {
            switch self {
            case .image: return group.transformPlanes(x, by: g)
            case .group: return group.act(g, onFeatureMap: x)
            case .invariant: return x
            }
        }
    }

    /// Compares `layer(g x)` with `g layer(x)` for every g, with `from`/`to` saying how g acts on each side.
    public static func check(_ group: PlanarGroup, from: Space, to: Space, input: Tensor<Float>,
                             _ layer: (Tensor<Float>) throws -> Tensor<Float>) rethrows -> Report {
        try withoutGradients {
            let reference = try layer(input)
            let errors = try group.elements.map { g -> Double in
                let lhs = try layer(from.apply(g, group, input))
                let rhs = to.apply(g, group, reference)
                if group.isExactOnGrid(g) || lhs.rank < 2 || to == .invariant { return relativeError(lhs, rhs) }
                let disc = discMask(height: lhs.shape[lhs.rank - 2], width: lhs.shape[lhs.rank - 1])
                return relativeError(lhs * disc, rhs * disc)
            }
            let kind: String
            switch (from, to) {
            case (.image, .image): kind = "image -> image"
            case (.image, .group): kind = "image -> group"
            case (.group, .group): kind = "group -> group"
            case (_, .invariant): kind = "invariance"
            default: kind = "custom"
            }
            return Report(kind: kind, group: group, errors: errors)
        }
    }

    /// image -> image (an isotropic or plain convolution).
    public static func imageToImage(_ layer: Module, input: Tensor<Float>, group: PlanarGroup = .c4) throws -> Report {
        try check(group, from: .image, to: .image, input: input, layer.forward)
    }

    /// image -> group (a lifting convolution).
    public static func imageToGroup(_ layer: Module, input: Tensor<Float>, group: PlanarGroup = .c4) throws -> Report {
        try check(group, from: .image, to: .group, input: input, layer.forward)
    }

    /// group -> group (a group convolution, pooling over planes, ReLU).
    public static func groupToGroup(_ layer: Module, input: Tensor<Float>, group: PlanarGroup = .c4) throws -> Report {
        try check(group, from: .group, to: .group, input: input, layer.forward)
    }

    /// Invariance of a whole model: `model(g x) == model(x)`.
    public static func invariance(_ model: Module, input: Tensor<Float>, group: PlanarGroup = .c4) throws -> Report {
        try check(group, from: .image, to: .invariant, input: input, model.forward)
    }

    /// 1 inside the disc of radius (min(H, W) - 1) / 2 - 1 about the centre of an H x W plane, 0 outside: (H, W).
    public static func discMask(height: Int, width: Int) -> Tensor<Float> {
        let cy = Double(height - 1) / 2, cx = Double(width - 1) / 2
        let radius = Double(min(height, width) - 1) / 2 - 1
        var values = [Float](repeating: 0, count: height * width)
        for i in 0..<height {
            for j in 0..<width where hypot(Double(i) - cy, Double(j) - cx) <= radius { values[i * width + j] = 1 }
        }
        return Tensor(shape: [height, width], scalars: values)
    }

    /// max |a - b| / max |b| (0 when both are zero).
    public static func relativeError<S>(_ a: Tensor<S>, _ b: Tensor<S>) -> Double {
        Autograd.check(a.shape == b.shape, "relativeError: shapes \(a.shape) and \(b.shape) differ")
        var worst = 0.0, scale = 0.0
        for (x, y) in zip(a.scalars, b.scalars) {
            worst = max(worst, abs(Double(x) - Double(y)))
            scale = max(scale, abs(Double(y)))
        }
        return scale == 0 ? worst : worst / scale
    }
}

func formatError(_ e: Double) -> String {
    e == 0 ? "0" : String(format: "%.2e", e)
}
