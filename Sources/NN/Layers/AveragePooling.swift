import Autograd

// MARK: - Average pooling layers

/// Average pooling over the last two axes of (N, C, H, W) or (C, H, W), as `torch.nn.AvgPool2d` (zero padding
/// counted in the average).
public final class AvgPool2d: Module {
    public let kernelSize: Int, stride: Int, padding: Int

    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        check(kernelSize > 0 && (stride ?? 1) > 0 && padding >= 0 && 2 * padding <= kernelSize,
                     "AvgPool2d: kernel \(kernelSize) and stride \(stride ?? kernelSize) must be positive, padding "
                     + "\(padding) at most half the kernel")
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
    }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        let r = input.rank
        guard r == 3 || r == 4, input.shape[r - 2] + 2 * padding >= kernelSize,
              input.shape[r - 1] + 2 * padding >= kernelSize
        else {
            throw ShapeError(layer: "AvgPool2d", expected: "(N, C, H, W) or (C, H, W) with H, W >= "
                             + "\(max(kernelSize - 2 * padding, 0))", given: input.shape)
        }
        return input.avgPool2d(kernel: (kernelSize, kernelSize), stride: (stride, stride), padding: (padding, padding))
    }
}

/// Average pooling of (N, C, H, W) or (C, H, W) to a fixed output size, as `torch.nn.AdaptiveAvgPool2d`.
public final class AdaptiveAvgPool2d: Module {
    public let outputSize: (Int, Int)

    public init(outputSize: (Int, Int)) {
        check(outputSize.0 > 0 && outputSize.1 > 0, "AdaptiveAvgPool2d: output size \(outputSize) must be "
                     + "positive")
        self.outputSize = outputSize
    }

    /// A square output of `outputSize` x `outputSize`.
    public convenience init(outputSize: Int) { self.init(outputSize: (outputSize, outputSize)) }

    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        let r = input.rank
        guard r == 3 || r == 4, input.shape[r - 2] > 0, input.shape[r - 1] > 0 else {
            throw ShapeError(layer: "AdaptiveAvgPool2d", expected: "(N, C, H, W) or (C, H, W) with H, W > 0",
                             given: input.shape)
        }
        return input.adaptiveAvgPool2d(outputSize: outputSize)
    }
}
