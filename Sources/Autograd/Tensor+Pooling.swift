// MARK: - Max pooling
//
// The forward records, per output, the in-plane index of the input element that won (Int32); the backward
// scatters each output gradient onto that element, accumulating where windows overlap. Where no gradient will be
// asked for, the forward computes the values alone.

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
        guard Tape.current.isRecording && requiresGradient else {
            // Nothing will ask for the gradient: the values alone, without the indices the backward would read.
            return Tensor(shape: outShape, scalars: [Scalar](fillingAll: outCount) { out in
                scalars.withUnsafeBufferPointer { Scalar.maxPool($0.baseAddress!, out, nil, geometry: geometry) }
            })
        }
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
            // The kernel writes every element (planes = 0 leaves nothing to write).
            [Tensor(shape: inputShape, scalars: [Scalar](fillingAll: inputShape.reduce(1, *)) { dx in
                g.scalars.withUnsafeBufferPointer { pg in
                    indices.withUnsafeBufferPointer { pi in
                        Scalar.maxPoolBackward(pg.baseAddress!, pi.baseAddress!, dx, geometry: geometry)
                    }
                }
            })]
        }
    }
}

// MARK: - Average pooling
//
// avg_pool2d is a convolution of each (n, c) plane with a constant kernel of 1 / (kh kw) (zero padding counted in
// the average, as PyTorch's default count_include_pad=True), so its vjp is the convolution's input gradient: each
// output gradient spread evenly over its window. adaptive_avg_pool2d averages separable bins, so it is two matrix
// products with averaging matrices, whose vjps are the transposed products.

extension Tensor {
    /// 2-D average pooling over (N, C, H, W) or (C, H, W), as `torch.nn.functional.avg_pool2d` (floor mode, zero
    /// padding counted in the average).
    ///
    /// - Parameters:
    ///   - kernel: window (kh, kw).
    ///   - stride: step (sh, sw); the kernel size when nil.
    ///   - padding: zero border (ph, pw), each at most half the kernel.
    /// - Returns: (N, C, Hout, Wout) with Hout = floor((H + 2 ph - kh) / sh) + 1, likewise Wout.
    public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) -> Tensor {
        check(rank == 4 || rank == 3, "avgPool2d: input shape \(shape) is not (N, C, H, W) or (C, H, W)")
        let s = stride ?? kernel
        check(kernel.0 > 0 && kernel.1 > 0 && s.0 > 0 && s.1 > 0,
              "avgPool2d: kernel \(kernel) and stride \(s) must be positive (input shape \(shape))")
        check(padding.0 >= 0 && padding.1 >= 0 && 2 * padding.0 <= kernel.0 && 2 * padding.1 <= kernel.1,
              "avgPool2d: padding \(padding) must be at most half of the kernel \(kernel) (input shape \(shape))")
        let (h, w) = (shape[rank - 2], shape[rank - 1])
        check(h + 2 * padding.0 >= kernel.0 && w + 2 * padding.1 >= kernel.1,
              "avgPool2d: kernel \(kernel) is larger than the padded input of shape \(shape) (padding \(padding))")
        let planes = shape[..<(rank - 2)].reduce(1, *)
        let weight = Tensor(repeating: 1 / Scalar(kernel.0 * kernel.1), shape: [1, 1, kernel.0, kernel.1])
        let pooled = reshaped([planes, 1, h, w]).conv2d(weight: weight, stride: s, padding: padding)
        return pooled.reshaped(Array(shape[..<(rank - 2)]) + Array(pooled.shape[2...]))
    }

    /// 2-D adaptive average pooling over (N, C, H, W) or (C, H, W) to `outputSize` (oh, ow), as
    /// `torch.nn.functional.adaptive_avg_pool2d`: output row i averages input rows floor(i H / oh) ..<
    /// ceil((i + 1) H / oh), likewise columns. Returns (N, C, oh, ow).
    public func adaptiveAvgPool2d(outputSize: (Int, Int)) -> Tensor {
        check(rank == 4 || rank == 3, "adaptiveAvgPool2d: input shape \(shape) is not (N, C, H, W) or (C, H, W)")
        check(outputSize.0 > 0 && outputSize.1 > 0,
              "adaptiveAvgPool2d: output size \(outputSize) must be positive (input shape \(shape))")
        let (h, w) = (shape[rank - 2], shape[rank - 1])
        check(h > 0 && w > 0, "adaptiveAvgPool2d: the input of shape \(shape) has an empty plane")
        let lead = Array(shape[..<(rank - 2)])
        // (in, out) matrices: column o holds 1 / (end - start) over the bin of output o.
        func averaging(_ size: Int, _ out: Int) -> Tensor {
            var m = [Scalar](repeating: 0, count: size * out)
            for o in 0..<out {
                let start = (o * size) / out, end = ((o + 1) * size + out - 1) / out
                for i in start..<end { m[i * out + o] = 1 / Scalar(end - start) }
            }
            return Tensor(shape: [size, out], scalars: m)
        }
        let planes = lead.reduce(1, *)
        let columns = reshaped([planes * h, w]).matmul(averaging(w, outputSize.1))          // (P H, ow)
        let rows = columns.reshaped([planes, h, outputSize.1]).transposed(1, 2)             // (P, ow, H)
            .reshaped([planes * outputSize.1, h]).matmul(averaging(h, outputSize.0))         // (P ow, oh)
        return rows.reshaped([planes, outputSize.1, outputSize.0]).transposed(1, 2)
            .reshaped(lead + [outputSize.0, outputSize.1])
    }
}
