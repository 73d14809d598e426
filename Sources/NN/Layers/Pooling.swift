import Autograd

/// Max pooling over the last two axes of (N, C, H, W).
public final class MaxPool2d: Module {
    /// Square window side, step, and -inf padding on every side.
    public let kernelSize: Int, stride: Int, padding: Int

    /// Pooling with a `kernelSize` window and `stride` (the kernel size when nil).
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
    }

    /// (N, C, H, W) -> (N, C, H', W'), H' = floor((H + 2 padding - kernel) / stride) + 1.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank == 4, input.shape[2] + 2 * padding >= kernelSize, input.shape[3] + 2 * padding >= kernelSize
        else {
            throw ShapeError(layer: "MaxPool2d", expected: "(N, C, H, W) with H, W >= \(max(kernelSize - 2 * padding, 0))",
                             given: input.shape)
        }
        return input.maxPool2d(kernel: (kernelSize, kernelSize), stride: (stride, stride), padding: (padding, padding))
    }
}

/// Max pooling over the last three axes of (N, C, D, H, W); with kernel (1, k, k) it pools each plane of a group
/// feature map separately, which keeps equivariance.
public final class MaxPool3d: Module {
    /// Window, step and -inf padding as (depth, height, width).
    public let kernelSize: (Int, Int, Int), stride: (Int, Int, Int), padding: (Int, Int, Int)

    /// Pooling with a `kernelSize` window and `stride` (the kernel size when nil).
    public init(kernelSize: (Int, Int, Int), stride: (Int, Int, Int)? = nil, padding: (Int, Int, Int) = (0, 0, 0)) {
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
    }

    /// (N, C, D, H, W) -> (N, C, D', H', W'), each floor((size + 2 padding - kernel) / stride) + 1.
    override public func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard input.rank == 5, input.shape[2] + 2 * padding.0 >= kernelSize.0,
              input.shape[3] + 2 * padding.1 >= kernelSize.1, input.shape[4] + 2 * padding.2 >= kernelSize.2
        else {
            let minimum = [kernelSize.0 - 2 * padding.0, kernelSize.1 - 2 * padding.1, kernelSize.2 - 2 * padding.2]
                .map { max($0, 0) }
            throw ShapeError(layer: "MaxPool3d", expected: "(N, C, D, H, W) with D >= \(minimum[0]), H >= \(minimum[1]), "
                             + "W >= \(minimum[2])", given: input.shape)
        }
        return input.maxPool3d(kernel: kernelSize, stride: stride, padding: padding)
    }
}
