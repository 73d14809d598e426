import Autograd

/// 2-D convolution (cross-correlation) in NCHW: (N, inChannels, H, W) -> (N, outChannels, H', W').
/// Weight (out, in, k, k) and bias (out) as in PyTorch.
public final class Conv2d: Module {
    /// Weight (out, in, k, k).
    public let weight: Parameter
    /// Bias (out); nil without bias.
    public let bias: Parameter?
    /// Channel counts and the square kernel side.
    public let inChannels: Int, outChannels: Int, kernelSize: Int
    /// Stride, zero padding on every side, and dilation, the same along both axes.
    public let stride: Int, padding: Int, dilation: Int
    /// How the convolution is computed: `.im2col` (the default) gives the direct sums, `.fastest` takes Winograd
    /// where it is faster (3x3, stride 1, at least 4 input channels, outputs of at least 3x3), with rounding
    /// differences of a few 1e-6 relative, `.fastestBackward` the direct sums forward and Winograd's gradients.
    public let algorithm: ConvolutionAlgorithm
    /// The weight's Winograd transform, reused in evaluation mode (Winograd layers only).
    let winogradCache = WinogradFilterCache<Float>()

    /// PyTorch's default initialisation: uniform in +-1/sqrt(in * k * k) for weight and bias.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, bias: Bool = true, algorithm: ConvolutionAlgorithm = .im2col,
                generator: inout SeededRandom) {
        self.algorithm = algorithm
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        let bound = 1 / Double(inChannels * kernelSize * kernelSize).squareRoot()
        weight = Parameter(.uniform(shape: [outChannels, inChannels, kernelSize, kernelSize], low: -bound,
                                    high: bound, generator: &generator))
        self.bias = bias ? Parameter(.uniform(shape: [outChannels], low: -bound, high: bound, generator: &generator))
            : nil
    }

    /// The same layer with its parameters drawn from the global generator (`manualSeed(_:)` of Autograd).
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1,
                            padding: Int = 0, dilation: Int = 1, bias: Bool = true,
                            algorithm: ConvolutionAlgorithm = .im2col) {
        self.init(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding,
                  dilation: dilation, bias: bias, algorithm: algorithm, generator: &GlobalGenerator.shared.generator)
    }

    /// (N, in, H, W) -> (N, out, H', W'); a `ShapeError` for another channel count or a too small image.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try checkImageInput(input, channels: inChannels, kernel: kernelSize, padding: padding, dilation: dilation,
                            layer: "Conv2d(\(inChannels), \(outChannels))")
        return input.conv2d(weight: weight.value, bias: bias?.value, stride: (stride, stride),
                            padding: (padding, padding), dilation: (dilation, dilation), algorithm: algorithm,
                            filterCache: evaluationFilterCache)
    }

    /// The filter cache to pass in evaluation mode, nil in training mode (a step changes the weight anyway).
    var evaluationFilterCache: WinogradFilterCache<Float>? { isTraining ? nil : winogradCache }

    /// Drops the kept Winograd transform.
    override public func modeDidChange() { winogradCache.clear() }
}

/// Throws unless `input` is (N, channels, H, W) with H and W large enough for the kernel.
func checkImageInput(_ input: Tensor<Float>, channels: Int, kernel: Int, padding: Int, dilation: Int = 1,
                     layer: String) throws {
    let reach = dilation * (kernel - 1) + 1
    guard input.rank == 4, input.shape[1] == channels,
          input.shape[2] + 2 * padding >= reach, input.shape[3] + 2 * padding >= reach else {
        throw ShapeError(layer: layer, expected: "(N, \(channels), H, W) with H, W >= \(reach - 2 * padding)",
                         given: input.shape)
    }
}
