import Autograd
import Foundation

/// A basis of k x k filters that can be rotated by any angle exactly before they are sampled on the grid:
/// circular harmonics cos(m phi), sin(m phi) times Gaussian rings exp(-(d - r)^2 / (2 sigma^2)).
///
/// Rings sit at radii r = 0, 1, ..., (k - 1) / 2 with sigma = 0.6. Each ring is band-limited: ring r carries the
/// frequencies m = 0 ... min(floor(2 r), maximumFrequency) (ring 0 only m = 0; maximumFrequency 2 by default). A ring
/// of circumference 2 pi r sampled about once per pixel carries at most floor(pi r); higher harmonics on the small
/// rings of a 3x3 to 7x7 grid alias, and their sampled rotations by angles off the grid stop behaving like rotated
/// filters (measured: a 5x5 group convolution of D5 with m up to 4 showed 0.58 relative error at 144 degrees, against
/// 0.2 with m <= 2). For k = 3 that is 6 functions, for k = 5 11, for k = 7 16 (of 9, 25 and 49 pixels).
///
/// Filter pixel (i, j) sits at x = j - c, y = c - i with c = (k - 1) / 2, at distance d and angle phi. The basis
/// transformed by a group element g (flip of the width axis, then a counter-clockwise rotation by theta) takes at
/// each pixel the value of the continuous function at g^-1 p: angle phi - theta (then pi - (phi - theta) after the
/// flip), distance d. Rotating by theta is thus a phase shift of each harmonic, exact before sampling; for multiples
/// of 90 degrees the samples are the rot90 of the unrotated samples. Each function is scaled to unit norm on the grid
/// (the same factor for all its rotations); a harmonic with m >= 1 is 0 at the centre, where its angle is undefined.
public struct SteerableBasis: Sendable, Equatable {
    /// One basis function: ring radius, frequency, and whether it is the sine (else cosine) harmonic.
    public struct Function: Sendable, Equatable {
        public let radius: Double
        public let frequency: Int
        public let isSine: Bool
    }

    public let kernelSize: Int
    public let sigma: Double
    public let maximumFrequency: Int
    public let functions: [Function]
    /// Unit-norm factors of the functions, from their unrotated samples.
    private let scales: [Double]

    public var count: Int { functions.count }

    /// The basis for odd `kernelSize` (3, 5 or 7 in the models; any odd size works).
    public init(kernelSize: Int, sigma: Double = 0.6, maximumFrequency: Int = 2) {
        check(kernelSize >= 1 && kernelSize % 2 == 1,
              "SteerableBasis: the kernel size must be odd and positive, got \(kernelSize)")
        self.kernelSize = kernelSize
        self.sigma = sigma
        self.maximumFrequency = maximumFrequency
        var functions: [Function] = []
        for ring in 0...(kernelSize - 1) / 2 {
            let r = Double(ring)
            let maximum = ring == 0 ? 0 : min(Int((2 * r).rounded(.down)), maximumFrequency)
            for m in 0...maximum {
                functions.append(Function(radius: r, frequency: m, isSine: false))
                if m > 0 { functions.append(Function(radius: r, frequency: m, isSine: true)) }
            }
        }
        var kept: [Function] = [], scales: [Double] = []
        for f in functions {
            let samples = SteerableBasis.samples(f, kernelSize: kernelSize, sigma: sigma, angle: 0, flip: false)
            let norm = samples.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 1e-9 else { continue }
            kept.append(f)
            scales.append(1 / norm)
        }
        self.functions = kept
        self.scales = scales
    }

    private static func samples(_ f: Function, kernelSize k: Int, sigma: Double, angle theta: Double,
                                flip: Bool) -> [Double] {
        let c = Double(k - 1) / 2
        var out = [Double](repeating: 0, count: k * k)
        for i in 0..<k {
            for j in 0..<k {
                let x = Double(j) - c, y = c - Double(i)
                let d = (x * x + y * y).squareRoot()
                let radial = exp(-(d - f.radius) * (d - f.radius) / (2 * sigma * sigma))
                if f.frequency == 0 { out[i * k + j] = radial; continue }
                guard d > 0 else { continue }
                var phi = atan2(y, x) - theta
                if flip { phi = Double.pi - phi }
                let m = Double(f.frequency)
                out[i * k + j] = radial * (f.isSine ? sin(m * phi) : cos(m * phi))
            }
        }
        return out
    }

    /// The basis transformed by a flip (first) and a counter-clockwise rotation by `angle`: (count, k, k), flat.
    public func sampled(angle: Double, flip: Bool = false) -> [Double] {
        zip(functions, scales).flatMap { f, scale in
            SteerableBasis.samples(f, kernelSize: kernelSize, sigma: sigma, angle: angle, flip: flip).map { $0 * scale }
        }
    }

    /// The basis transformed by element `g` of `group`: (count, k, k), flat.
    public func sampled(for g: Int, in group: PlanarGroup) -> [Double] {
        sampled(angle: group.angle(g), flip: group.parts(g).flip == 1)
    }

    /// The basis transformed by every element of `group`, as a tensor (|G|, count, k * k).
    public func tensor<S: TensorScalar>(for group: PlanarGroup, as _: S.Type = S.self) -> Tensor<S> {
        Tensor(shape: [group.order, count, kernelSize * kernelSize],
               scalars: group.elements.flatMap { sampled(for: $0, in: group) }.map { S($0) })
    }

    /// The filters sum_b coefficients[..., b] * basis_b, unrotated: (..., count) -> (..., k, k).
    public func filters<S: TensorScalar>(_ coefficients: Tensor<S>) -> Tensor<S> {
        check(coefficients.rank >= 1 && coefficients.shape.last == count,
              "SteerableBasis.filters: the last axis of \(coefficients.shape) must be the \(count) coefficients")
        let basis = Tensor(shape: [count, kernelSize * kernelSize], scalars: sampled(angle: 0).map { S($0) })
        return coefficients.matmul2D(basis).reshaped(Array(coefficients.shape.dropLast()) + [kernelSize, kernelSize])
    }
}

extension Tensor {
    /// (..., k) x (k, n) -> (..., n) for any rank >= 1.
    func matmul2D(_ matrix: Tensor) -> Tensor {
        let k = shape.last ?? 0
        let rows = count / Swift.max(k, 1)
        return reshaped([rows, k]).matmul(matrix).reshaped(Array(shape.dropLast()) + [matrix.shape[1]])
    }
}
