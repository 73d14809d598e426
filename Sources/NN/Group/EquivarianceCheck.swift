import Foundation
import Autograd

/// Checks that a layer commutes with a group: `layer(g x) == g layer(x)` for every element `g`.
///
/// Each check applies every group element to `input`, compares both sides, and reports the worst relative error
/// (max |a - b| / max |b|). With odd spatial sizes every layer of the framework is equivariant to float precision.
public enum EquivarianceCheck {
    /// What a check found.
    public struct Report: CustomStringConvertible {
        /// "equivariance" or "invariance".
        public let kind: String
        /// The group whose elements were applied.
        public let group: PlanarGroup
        /// Relative error for each group element, in element order.
        public let errors: [Double]
        /// The largest relative error over the group elements (0 when none were checked).
        public var worstRelativeError: Double { errors.max() ?? 0 }
        /// True when every element's error is within `tolerance` (default 1e-5).
        public func holds(tolerance: Double = 1e-5) -> Bool { worstRelativeError <= tolerance }

        /// `Invariant` / `Equivariant` (or `Not ...`), the kind, the group and the worst relative error.
        public var description: String {
            let verdict = holds() ? (kind == "invariance" ? "Invariant" : "Equivariant")
                : (kind == "invariance" ? "Not invariant" : "Not equivariant")
            return "\(verdict) (\(kind), \(group), worst relative error \(formatError(worstRelativeError)))"
        }
    }

    /// How inputs and outputs are transformed.
    public enum Space {
        /// Images (..., H, W): g acts by flip/rot90 on the last two axes.
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
                return relativeError(lhs, rhs)
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
