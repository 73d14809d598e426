import Autograd
import Foundation

// MARK: - Steerable lifting convolution

/// Lifts an image to a function on any planar group C_N or D_N: (N, in, H, W) -> (N, out, |G|, H', W'), with
/// steerable filters.
///
/// Weight (out, in, b): the coefficients of each (out, in) filter in a `SteerableBasis` of b functions. Output plane
/// `g` is the convolution with the filter transformed by `g`, sum_b w[o, i, b] * (g basis_b): the basis rotated
/// exactly by g's angle (and mirrored for a reflection), then sampled on the grid. For multiples of 90 degrees that is
/// the rot90 of the filter. The bias (out) is shared over the group axis. The expansion is a matmul with the sampled
/// bases, so the gradient comes from the tape; the expanded filters run through the plain `conv2d` and are cached in
/// evaluation mode.
public final class SteerableLiftingConv2d: GroupFilterConv2d {
    public let basis: SteerableBasis
    /// The transformed bases, (b, |G| * k * k): column block g holds g basis.
    let expansionMatrix: Tensor<Double>

    /// Coefficients N(0, 1/sqrt(in * out)) (the rot90 group layers' initialiser), bias N(0, 1).
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, padding: Int = 0,
                group: PlanarGroup, bias: Bool = true, generator: inout SeededRandom) {
        basis = SteerableBasis(kernelSize: kernelSize)
        let sampled: Tensor<Double> = basis.tensor(for: group)  // (|G|, b, k * k)
        expansionMatrix = sampled.permuted([1, 0, 2]).reshaped([basis.count, group.order * kernelSize * kernelSize])
        super.init(inChannels, outChannels, filterShape: [basis.count], kernelSize: kernelSize, padding: padding,
                   group: group, bias: bias, generator: &generator)
    }

    /// Coefficients (out, in, b) -> the plain convolution's filters (out * |G|, in, k, k), channel `o * |G| + g`.
    public func expand<S: TensorScalar>(_ coefficients: Tensor<S>) -> Tensor<S> {
        let (o, i, k) = (outChannels, inChannels, kernelSize)
        check(coefficients.shape == [o, i, basis.count],
              "SteerableLiftingConv2d.expand: coefficients \(coefficients.shape), expected \([o, i, basis.count])")
        let filters = coefficients.reshaped([o * i, basis.count]).matmul(expansionMatrix.converted(to: S.self))
        return try! filters.reshaped([o, i, group.order, k, k]).rearranged("o i g h w -> (o g) i h w")
    }

    override func buildFilters() -> (weight: Tensor<Float>, bias: Tensor<Float>?) {
        (expand(weight.value), bias.map { try! $0.value.repeated("o -> (o g)", ["g": group.order]) })
    }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try liftingForward(input, layer: "SteerableLiftingConv2d(\(inChannels), \(outChannels), \(group))")
    }
}

// MARK: - Steerable group convolution

/// Convolution of functions on any planar group C_N or D_N: (N, in, |G|, H, W) -> (N, out, |G|, H', W'), with
/// steerable filters.
///
/// Weight (out, in, |G|, b): for each input plane h a filter given by b coefficients in a `SteerableBasis`. The filter
/// for output element g and input plane h is the base filter of plane g^-1 h transformed by g (the regular
/// representation: for C_N, the base filter rotated by 2 pi r / N in space and shifted cyclically by r over the input
/// group axis; the reflection for D_N): sum_b w[o, i, g^-1 h, b] * (g basis_b). All are one plain convolution with
/// filters (out * |G|, in * |G|, k, k). The bias (out) is shared over the group axis. The expansion is a gather of the
/// coefficients and one batched matmul with the transformed bases (gradients from the tape).
public final class SteerableGroupConv2d: GroupFilterConv2d {
    public let basis: SteerableBasis
    /// The transformed bases, (|G|, b, k * k).
    let sampledBases: Tensor<Double>
    /// Flat indices into the weight for the gathered coefficients (|G|, out * in * |G|, b): [g, (o, i, h), b] reads
    /// w[o, i, g^-1 h, b].
    let gatherIndices: [Int32]

    /// Coefficients N(0, 1/sqrt(in * out)) (the rot90 group layers' initialiser), bias N(0, 1).
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, padding: Int = 0,
                group: PlanarGroup, bias: Bool = true, generator: inout SeededRandom) {
        basis = SteerableBasis(kernelSize: kernelSize)
        sampledBases = basis.tensor(for: group)
        let (n, b) = (group.order, basis.count)
        var indices: [Int32] = []
        indices.reserveCapacity(n * outChannels * inChannels * n * b)
        for g in 0..<n {
            let inverse = group.inverse(g)
            for o in 0..<outChannels {
                for i in 0..<inChannels {
                    for h in 0..<n {
                        let source = ((o * inChannels + i) * n + group.compose(inverse, h)) * b
                        for q in 0..<b { indices.append(Int32(source + q)) }
                    }
                }
            }
        }
        gatherIndices = indices
        super.init(inChannels, outChannels, filterShape: [group.order, basis.count], kernelSize: kernelSize,
                   padding: padding, group: group, bias: bias, generator: &generator)
    }

    /// Coefficients (out, in, |G|, b) -> the plain convolution's filters (out * |G|, in * |G|, k, k), output channel
    /// `o * |G| + g`, input channel `i * |G| + h`.
    public func expand<S: TensorScalar>(_ coefficients: Tensor<S>) -> Tensor<S> {
        let (o, i, n, k) = (outChannels, inChannels, group.order, kernelSize)
        check(coefficients.shape == [o, i, n, basis.count],
              "SteerableGroupConv2d.expand: coefficients \(coefficients.shape), expected \([o, i, n, basis.count])")
        let gathered = coefficients.gathered(gatherIndices, shape: [n, o * i * n, basis.count])
        let filters = gathered.matmul(sampledBases.converted(to: S.self))  // (|G|, o i |G|, k k)
        return try! filters.reshaped([n, o, i, n, k, k]).rearranged("g o i h kh kw -> (o g) (i h) kh kw")
    }

    override func buildFilters() -> (weight: Tensor<Float>, bias: Tensor<Float>?) {
        (expand(weight.value), bias.map { try! $0.value.repeated("o -> (o g)", ["g": group.order]) })
    }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try groupForward(input, layer: "SteerableGroupConv2d(\(inChannels), \(outChannels), \(group))")
    }
}
