import Autograd
import Foundation

// MARK: - Initialisation

/// The parameters of a group filter of `shape` (out, in, ...): weight N(0, 1/sqrt(in * out)), bias (out) N(0, 1).
func groupFilterParameters(shape: [Int], bias: Bool, generator: inout SeededRandom) -> (Parameter, Parameter?) {
    let std = 1 / Double(shape[0] * shape[1]).squareRoot()
    let weight = Parameter(.normal(shape: shape, std: std, generator: &generator))
    return (weight, bias ? Parameter(.normal(shape: [shape[0]], generator: &generator)) : nil)
}

// MARK: - Group filter layers

/// What the lifting and group convolutions share: a weight (out, in, ...) of filters on the group, a bias (out)
/// shared over the group axis, and the filters of the equivalent plain convolution expanded from them (cached in
/// evaluation mode). Subclasses give the expansion of the weight and the forward pass.
public class GroupFilterConv2d: Module {
    /// The group the filters are transformed by.
    public let group: PlanarGroup
    /// The filters on the group: (out, in, k, k) for lifting, (out, in, |G|, k, k) for group convolutions.
    public let weight: Parameter
    /// Bias (out), shared over the group axis; nil without bias.
    public let bias: Parameter?
    /// Channel counts, the square kernel side, and zero padding on every side.
    public let inChannels: Int, outChannels: Int, kernelSize: Int, padding: Int
    private var cache = ExpandedFilterCache()
    /// The Winograd transform of the cached expanded filters, reused in evaluation mode.
    let winogradCache = WinogradFilterCache<Float>()
    private var expansion = FilterExpansion()

    /// Weight (out, in) + `filterShape` N(0, 1/sqrt(in * out)), bias N(0, 1).
    init(_ inChannels: Int, _ outChannels: Int, filterShape: [Int], kernelSize: Int, padding: Int,
         group: PlanarGroup, bias: Bool, generator: inout SeededRandom) {
        self.group = group
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.padding = padding
        (weight, self.bias) = groupFilterParameters(shape: [outChannels, inChannels] + filterShape, bias: bias,
                                                    generator: &generator)
    }

    /// The filters of the equivalent plain convolution: weight (out * |G|, ...) with channel index `o * |G| + g`, and
    /// the bias repeated over the group, (out * |G|).
    public func expandedFilters() -> (weight: Tensor<Float>, bias: Tensor<Float>?) {
        cache.filters(isTraining: isTraining, versions: [weight.version, bias?.version ?? -1]) { buildFilters() }
    }

    /// Builds the expanded filters from the parameters (recorded on the tape in training mode): here one gather of
    /// the weight moved by `expandWeight`; steerable layers override it with their basis expansion.
    func buildFilters() -> (weight: Tensor<Float>, bias: Tensor<Float>?) {
        let maps = expansion.maps(weight: weight.shape, bias: bias?.shape) { w in
            expandWeight(w)
        } bias: { b in
            try! b.repeated("o -> (o g)", ["g": group.order])
        }
        return maps.apply(weight: weight.value, bias: bias?.value)
    }

    /// The weight expanded into the plain convolution's filters (run once, on element indices); subclasses override.
    func expandWeight(_ w: Tensor<Double>) -> Tensor<Double> {
        fatalError("\(type(of: self)) must override expandWeight(_:)")
    }

    /// Drops the cached expanded filters and their Winograd transform.
    override public func modeDidChange() {
        cache.clear()
        winogradCache.clear()
    }

    /// The Winograd cache to pass in evaluation mode, nil in training mode (the filters are rebuilt at every call).
    private var evaluationFilterCache: WinogradFilterCache<Float>? { isTraining ? nil : winogradCache }

    // MARK: Forward passes

    /// (N, in, H, W) -> (N, out, |G|, H', W'): the plain convolution with the expanded filters.
    func liftingForward(_ input: Tensor<Float>, layer: String) throws -> Tensor<Float> {
        try checkImageInput(input, channels: inChannels, kernel: kernelSize, padding: padding, layer: layer)
        let (w, b) = expandedFilters()
        let y = input.conv2d(weight: w, bias: b, padding: (padding, padding), algorithm: .fastest,
                             filterCache: evaluationFilterCache)
        return try! y.rearranged("n (o g) h w -> n o g h w", ["g": group.order])
    }

    /// (N, in, |G|, H, W) -> (N, out, |G|, H', W'): the plain convolution of (N, in * |G|, H, W) with the expanded
    /// filters.
    func groupForward(_ input: Tensor<Float>, layer: String) throws -> Tensor<Float> {
        guard input.rank == 5, input.shape[1] == inChannels, input.shape[2] == group.order,
              input.shape[3] + 2 * padding >= kernelSize, input.shape[4] + 2 * padding >= kernelSize else {
            throw ShapeError(layer: layer, expected: "(N, \(inChannels), \(group.order), H, W)", given: input.shape)
        }
        let (w, b) = expandedFilters()
        let flat = try! input.rearranged("n i g h w -> n (i g) h w")
        let y = flat.conv2d(weight: w, bias: b, padding: (padding, padding), algorithm: .fastest,
                            filterCache: evaluationFilterCache)
        return try! y.rearranged("n (o g) h w -> n o g h w", ["g": group.order])
    }
}

// MARK: - Lifting convolution

/// Lifts an image to a function on the group: (N, in, H, W) -> (N, out, |G|, H', W').
///
/// One learnable filter per (out, in), weight (out, in, k, k); output plane `g` is the convolution with the filter
/// transformed by `g`. The bias (out) is shared over the group axis.
public final class LiftingConv2d: GroupFilterConv2d {
    /// Weight N(0, 1/sqrt(in * out)), bias N(0, 1).
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, padding: Int = 0,
                group: PlanarGroup = .c4, bias: Bool = true, generator: inout SeededRandom) {
        check(group.gridElements.count == group.order, "LiftingConv2d: free filters are transformed by rot90, so "
              + "\(group) must act exactly on the grid (C1, C2, C4, D1, D2, D4); use SteerableLiftingConv2d")
        super.init(inChannels, outChannels, filterShape: [kernelSize, kernelSize], kernelSize: kernelSize,
                   padding: padding, group: group, bias: bias, generator: &generator)
    }

    /// The same layer with its parameters drawn from the global generator (`manualSeed(_:)` of Autograd).
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, padding: Int = 0,
                            group: PlanarGroup = .c4, bias: Bool = true) {
        self.init(inChannels, outChannels, kernelSize: kernelSize, padding: padding, group: group, bias: bias,
                  generator: &GlobalGenerator.shared.generator)
    }

    /// (out, in, k, k) -> (out * |G|, in, k, k), channel index `o * |G| + g`.
    override func expandWeight(_ w: Tensor<Double>) -> Tensor<Double> {
        let stacked = Tensor.stacked(group.elements.map { group.transformPlanes(w, by: $0) }, axis: 1)
        return try! stacked.rearranged("o g i h w -> (o g) i h w")
    }

    /// (N, in, H, W) -> (N, out, |G|, H', W'); a `ShapeError` for another channel count or a too small image.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try liftingForward(input, layer: "LiftingConv2d(\(inChannels), \(outChannels))")
    }
}

// MARK: - Group convolution

/// Convolution of functions on the group: (N, in, |G|, H, W) -> (N, out, |G|, H', W').
///
/// Weight (out, in, |G|, k, k), a filter on the group; the filter for output element `g` is the weight acted on by
/// `g` (planes permuted along the group axis and transformed spatially), and all are stacked into one plain
/// convolution with filters (out * |G|, in * |G|, k, k). The bias (out) is shared over the group axis.
public final class GroupConv2d: GroupFilterConv2d {
    /// Weight N(0, 1/sqrt(in * out)), bias N(0, 1).
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, padding: Int = 0,
                group: PlanarGroup = .c4, bias: Bool = true, generator: inout SeededRandom) {
        check(group.gridElements.count == group.order, "GroupConv2d: free filters are transformed by rot90, so "
              + "\(group) must act exactly on the grid (C1, C2, C4, D1, D2, D4); use SteerableGroupConv2d")
        super.init(inChannels, outChannels, filterShape: [group.order, kernelSize, kernelSize],
                   kernelSize: kernelSize, padding: padding, group: group, bias: bias, generator: &generator)
    }

    /// The same layer with its parameters drawn from the global generator (`manualSeed(_:)` of Autograd).
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, padding: Int = 0,
                            group: PlanarGroup = .c4, bias: Bool = true) {
        self.init(inChannels, outChannels, kernelSize: kernelSize, padding: padding, group: group, bias: bias,
                  generator: &GlobalGenerator.shared.generator)
    }

    /// (out, in, |G|, k, k) -> (out * |G|, in * |G|, k, k).
    override func expandWeight(_ w: Tensor<Double>) -> Tensor<Double> {
        let stacked = Tensor.stacked(group.elements.map { group.act($0, onFeatureMap: w) }, axis: 1)
        return try! stacked.rearranged("o g i h kh kw -> (o g) (i h) kh kw")
    }

    /// (N, in, |G|, H, W) -> (N, out, |G|, H', W'); a `ShapeError` for any other shape.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try groupForward(input, layer: "GroupConv2d(\(inChannels), \(outChannels), \(group))")
    }
}

// MARK: - Group pooling

/// Pools a group feature map (N, C, |G|, H, W) to an invariant image (N, C, H, W): the mean over the group axis,
/// averaged over the transforms of the image by the group's elements that act exactly on the grid (all of C4 and D4;
/// the rotations by multiples of 90 degrees of C_N and D_N, with their reflections). The result is invariant to
/// those exactly and to the other elements up to the grid's sampling error.
public final class GroupPooling: Module {
    /// The group pooled over.
    public let group: PlanarGroup
    /// Pooling over `group` (C4 by default).
    public init(group: PlanarGroup = .c4) { self.group = group }

    /// (N, C, |G|, S, S) -> (N, C, S, S), invariant to the group; a `ShapeError` for any other shape.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank == 5, input.shape[2] == group.order, input.shape[3] == input.shape[4] else {
            throw ShapeError(layer: "GroupPooling(\(group))", expected: "(N, C, \(group.order), S, S)",
                             given: input.shape)
        }
        // For C4 and D4, the mean over the concatenation of the |G| transformed maps along the group axis equals
        // the mean over the group axis first, then the mean of the |G| transforms of that image: the same result,
        // |G| times less data through the transforms.
        let planeMean = input.mean(axes: [2])
        let exact = group.gridElements
        let transformed = exact.map { group.transformPlanes(planeMean, by: $0) }
        return transformed.dropFirst().reduce(transformed[0], +) * (1 / Float(exact.count))
    }
}

// MARK: - Isotropic convolution

/// A convolution whose 3x3 filters are invariant to every symmetry of the square: each (out, in) filter has two
/// weights, the centre and the ring of its 8 neighbours. Image -> image, equivariant to rotations and flips.
/// Weight (out, in, 2): [..., 0] centre, [..., 1] ring.
public final class IsotropicConv2d: Module {
    /// Weight (out, in, 2): [..., 0] the centre, [..., 1] the ring of each 3x3 filter.
    public let weight: Parameter
    /// Bias (out); nil without bias.
    public let bias: Parameter?
    /// Channel counts and zero padding on every side.
    public let inChannels: Int, outChannels: Int, padding: Int

    /// Weight N(0, 1/sqrt(in * out)), bias N(0, 1).
    public init(_ inChannels: Int, _ outChannels: Int, padding: Int = 0, bias: Bool = true,
                generator: inout SeededRandom) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.padding = padding
        (weight, self.bias) = groupFilterParameters(shape: [outChannels, inChannels, 2], bias: bias,
                                                    generator: &generator)
    }

    /// The same layer with its parameters drawn from the global generator (`manualSeed(_:)` of Autograd).
    public convenience init(_ inChannels: Int, _ outChannels: Int, padding: Int = 0, bias: Bool = true) {
        self.init(inChannels, outChannels, padding: padding, bias: bias,
                  generator: &GlobalGenerator.shared.generator)
    }

    /// The (out, in, 3, 3) filters: centre * centreMask + ring * ringMask.
    public func expandedFilter() -> Tensor<Float> {
        let centreMask = Tensor<Float>(shape: [3, 3], scalars: [0, 0, 0, 0, 1, 0, 0, 0, 0])
        let ringMask = Tensor<Float>(shape: [3, 3], scalars: [1, 1, 1, 1, 0, 1, 1, 1, 1])
        let w = weight.value
        let centre = w.sliced(axis: 2, 0..<1).unsqueezed(3)  // (out, in, 1, 1)
        let ring = w.sliced(axis: 2, 1..<2).unsqueezed(3)
        return centre * centreMask + ring * ringMask
    }

    /// (N, in, H, W) -> (N, out, H', W'); a `ShapeError` for another channel count or a too small image.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try checkImageInput(input, channels: inChannels, kernel: 3, padding: padding,
                            layer: "IsotropicConv2d(\(inChannels), \(outChannels))")
        return input.conv2d(weight: expandedFilter(), bias: bias?.value, padding: (padding, padding))
    }
}

// MARK: - Filter expansion

/// The expansion of a layer's parameters into the filters of its plain convolution, as one gather per tensor.
///
/// The expansion (rotations, permutations of the group axis, stacking) only moves and copies elements, so it is
/// fixed by where each element comes from. That map is found once, by running the expansion on a tensor holding
/// the element indices, and every later expansion is a single gather whose gradient is the matching scatter-add:
/// the same values and gradients as the chain of ops, without its copies and tape entries.
struct FilterExpansion {
    private var weightShape: [Int] = []
    private var biasShape: [Int]?
    private var weightMap: (indices: [Int32], shape: [Int])?
    private var biasMap: (indices: [Int32], shape: [Int])?

    struct Maps {
        let weight: (indices: [Int32], shape: [Int])
        let bias: (indices: [Int32], shape: [Int])?

        func apply(weight w: Tensor<Float>, bias b: Tensor<Float>?) -> (weight: Tensor<Float>, bias: Tensor<Float>?) {
            let expanded = w.gathered(weight.indices, shape: weight.shape)
            guard let b, let bias else { return (expanded, nil) }
            return (expanded, b.gathered(bias.indices, shape: bias.shape))
        }
    }

    /// The maps for parameters of these shapes, computed on first use by `weight` and `bias`, the expansion itself.
    mutating func maps(weight shape: [Int], bias: [Int]?, _ expandWeight: (Tensor<Double>) -> Tensor<Double>,
                       bias expandBias: (Tensor<Double>) -> Tensor<Double>) -> Maps {
        if let weightMap, weightShape == shape, biasShape == bias {
            return Maps(weight: weightMap, bias: biasMap)
        }
        func indexMap(_ shape: [Int], _ expand: (Tensor<Double>) -> Tensor<Double>)
            -> (indices: [Int32], shape: [Int]) {
            let count = shape.reduce(1, *)
            check(count <= Int(Int32.max), "FilterExpansion: \(count) elements are too many to index")
            let positions = Tensor<Double>(shape: shape, scalars: (0..<count).map(Double.init))
            let expanded = withoutGradients { expand(positions) }
            return (expanded.scalars.map { Int32($0) }, expanded.shape)
        }
        let w = indexMap(shape, expandWeight)
        let b = bias.map { indexMap($0, expandBias) }
        weightShape = shape
        biasShape = bias
        weightMap = w
        biasMap = b
        return Maps(weight: w, bias: b)
    }
}

// MARK: - Filter cache

/// Holds expanded filters in evaluation mode, rebuilt when a parameter's version changes; in training mode they are
/// built on every call so that their gradients flow through the tape.
struct ExpandedFilterCache {
    private var versions: [Int] = []
    private var value: (weight: Tensor<Float>, bias: Tensor<Float>?)?

    mutating func filters(isTraining: Bool, versions current: [Int],
                          build: () -> (weight: Tensor<Float>, bias: Tensor<Float>?))
        -> (weight: Tensor<Float>, bias: Tensor<Float>?) {
        if isTraining { value = nil; return build() }
        if let value, versions == current { return value }
        let built = withoutGradients(build)
        value = built
        versions = current
        return built
    }

    mutating func clear() { value = nil }
}
