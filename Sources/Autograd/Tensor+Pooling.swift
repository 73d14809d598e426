// MARK: - Max pooling
//
// The forward records, per output, the in-plane index of the input element that won (Int32); the backward
// scatters each output gradient onto that element, accumulating where windows overlap.

extension Tensor {
    /// 2-D max pooling over (N, C, H, W), as `torch.nn.functional.max_pool2d` (floor mode, no dilation).
    ///
    /// - Parameters:
    ///   - kernel: window (kh, kw).
    ///   - stride: step (sh, sw); the kernel size when nil.
    ///   - padding: implicit -inf border (ph, pw), each at most half the kernel.
    /// - Returns: (N, C, Hout, Wout) with Hout = floor((H + 2 ph - kh) / sh) + 1, likewise Wout.
    public func maxPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) -> Tensor {
        check(rank == 4, "maxPool2d: input shape \(shape) is not (N, C, H, W)")
        let s = stride ?? kernel
        return maxPooling(op: "maxPool2d", planes: shape[0] * shape[1], volume: [1, shape[2], shape[3]],
                          kernel: [1, kernel.0, kernel.1], stride: [1, s.0, s.1],
                          padding: [0, padding.0, padding.1],
                          outputShape: { Array(shape[0..<2]) + Array($0[1...]) })
    }

    /// 3-D max pooling over (N, C, D, H, W), as `torch.nn.functional.max_pool3d` (floor mode, no dilation).
    ///
    /// - Parameters:
    ///   - kernel: window (kd, kh, kw).
    ///   - stride: step; the kernel size when nil.
    ///   - padding: implicit -inf border, each at most half the kernel.
    /// - Returns: (N, C, Dout, Hout, Wout), each floor((size + 2 p - k) / s) + 1.
    public func maxPool3d(kernel: (Int, Int, Int), stride: (Int, Int, Int)? = nil,
                          padding: (Int, Int, Int) = (0, 0, 0)) -> Tensor {
        check(rank == 5, "maxPool3d: input shape \(shape) is not (N, C, D, H, W)")
        let s = stride ?? kernel
        return maxPooling(op: "maxPool3d", planes: shape[0] * shape[1], volume: Array(shape[2...]),
                          kernel: [kernel.0, kernel.1, kernel.2], stride: [s.0, s.1, s.2],
                          padding: [padding.0, padding.1, padding.2],
                          outputShape: { Array(shape[0..<2]) + $0 })
    }

    /// Shared body: `volume`, `kernel`, `stride`, `padding` are (depth, height, width); `outputShape` maps the
    /// pooled (depth, height, width) to the result's shape.
    private func maxPooling(op: String, planes: Int, volume: [Int], kernel: [Int], stride: [Int], padding: [Int],
                            outputShape: ([Int]) -> [Int]) -> Tensor {
        check(kernel.allSatisfy { $0 > 0 } && stride.allSatisfy { $0 > 0 },
              "\(op): kernel \(kernel) and stride \(stride) must be positive (input shape \(shape))")
        check((0..<3).allSatisfy { padding[$0] >= 0 && padding[$0] <= kernel[$0] / 2 },
              "\(op): padding \(padding) must be between 0 and half the kernel \(kernel) "
              + "(input shape \(shape))")
        let geometry = PoolingGeometry(planes: planes, depth: volume[0], height: volume[1], width: volume[2],
                                       kernel: kernel, stride: stride, padding: padding)
        let pooled = geometry.outputSize
        check(pooled.allSatisfy { $0 > 0 },
              "\(op): input shape \(shape) is smaller than the kernel \(kernel) with padding \(padding)")
        check(geometry.inputPlane <= Int(Int32.max),
              "\(op): planes of \(geometry.inputPlane) elements are too large for Int32 indices")
        let outShape = outputShape(pooled)
        let outCount = planes * geometry.outputPlane
        // Every index is written by the kernel.
        var indices = [Int32](unsafeUninitializedCapacity: outCount) { _, initialized in initialized = outCount }
        let values = [Scalar](fillingAll: outCount) { out in
            indices.withUnsafeMutableBufferPointer { pi in
                scalars.withUnsafeBufferPointer { Scalar.maxPool($0.baseAddress!, out, pi.baseAddress!,
                                                                 geometry: geometry) }
            }
        }
        let inputShape = shape
        return Tensor.record(Tensor(shape: outShape, scalars: values), inputs: [self]) { g in
            [Tensor(shape: inputShape) { dx in
                g.scalars.withUnsafeBufferPointer { pg in
                    indices.withUnsafeBufferPointer { pi in
                        if outCount > 0 {
                            Scalar.maxPoolBackward(pg.baseAddress!, pi.baseAddress!, dx.baseAddress!,
                                                   geometry: geometry)
                        }
                    }
                }
            }]
        }
    }
}
