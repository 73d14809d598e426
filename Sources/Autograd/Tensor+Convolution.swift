// MARK: - 2-D convolution (im2col + GEMM)
//
// With K = Cin * kh * kw and L = Hout * Wout, the input is unfolded once for the whole batch into
// col (K, N * L); the forward is the single GEMM W (Cout, K) x col (K, N * L) -> (Cout, N * L), reordered to
// (N, Cout, L) together with the bias add. The backward reorders gy to (Cout, N * L) and runs
//   dW = gy x col^T      (one GEMM, col kept from the forward),
//   dcol = W^T x gy      (one GEMM), folded back onto the input by col2im (accumulating),
//   dbias = sum of gy over N and L.

extension Array where Element: TensorScalar {
    /// An array of `count` elements that `body` must initialise completely (no zero fill first).
    init(fillingAll count: Int, _ body: (UnsafeMutablePointer<Element>) -> Void) {
        self.init(unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { body(buffer.baseAddress!) }
            initialized = count
        }
    }
}

extension Tensor {
    /// 2-D cross-correlation over NCHW input, as `torch.conv2d` with groups = 1.
    ///
    /// - Parameters:
    ///   - weight: (Cout, Cin, kh, kw).
    ///   - bias: (Cout), optional.
    ///   - stride, padding, dilation: (vertical, horizontal); padding is zeros on both sides.
    /// - Returns: (N, Cout, Hout, Wout) with Hout = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1, likewise Wout.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                       padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1)) -> Tensor {
        let x = self
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[1],
                     "conv2d: input shape \(x.shape) (N, Cin, H, W) does not match weight shape \(weight.shape) "
                     + "(Cout, Cin, kh, kw)")
        precondition(stride.0 > 0 && stride.1 > 0 && dilation.0 > 0 && dilation.1 > 0
                     && padding.0 >= 0 && padding.1 >= 0,
                     "conv2d: invalid stride \(stride), padding \(padding) or dilation \(dilation) for input shape "
                     + "\(x.shape) and weight shape \(weight.shape)")
        let (batch, outChannels) = (x.shape[0], weight.shape[0])
        if let bias {
            precondition(bias.shape == [outChannels],
                         "conv2d: bias shape \(bias.shape) does not match weight shape \(weight.shape)")
        }
        let geometry = ConvolutionGeometry(
            batch: batch, channels: x.shape[1], height: x.shape[2], width: x.shape[3],
            kernel: (weight.shape[2], weight.shape[3]), stride: stride, padding: padding, dilation: dilation)
        let (outH, outW) = (geometry.outputHeight, geometry.outputWidth)
        precondition(geometry.columnRows > 0 && geometry.height > 0 && geometry.width > 0 && outChannels > 0
                     && outH > 0 && outW > 0,
                     "conv2d: input shape \(x.shape) is too small for weight shape \(weight.shape) with padding "
                     + "\(padding) and dilation \(dilation)")
        let outShape = [batch, outChannels, outH, outW]
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        if batch == 0 {
            let (xShape, wShape) = (x.shape, weight.shape)
            return Tensor.record(Tensor(zeros: outShape), inputs: inputs) { _ in
                [Tensor(zeros: xShape), Tensor(zeros: wShape), Tensor(zeros: [outChannels])]
            }
        }

        let k = geometry.columnRows
        let columns = geometry.columnCount  // N * L
        let plane = outH * outW
        let col = [Scalar](fillingAll: k * columns) { c in
            x.scalars.withUnsafeBufferPointer { Scalar.im2col($0.baseAddress!, c, geometry: geometry) }
        }
        let product = [Scalar](fillingAll: outChannels * columns) { p in
            weight.scalars.withUnsafeBufferPointer { pw in
                col.withUnsafeBufferPointer { pc in
                    Scalar.gemm(transA: false, transB: false, m: outChannels, n: columns, k: k, alpha: 1,
                                a: pw.baseAddress!, lda: k, b: pc.baseAddress!, ldb: columns,
                                beta: 0, c: p, ldc: columns)
                }
            }
        }
        let output = [Scalar](fillingAll: product.count) { out in
            product.withUnsafeBufferPointer { pp in
                if let bias {
                    bias.scalars.withUnsafeBufferPointer { pb in
                        Scalar.swapLeadingAxes(pp.baseAddress!, out, outer: outChannels, middle: batch,
                                               inner: plane, bias: pb.baseAddress!)
                    }
                } else {
                    Scalar.swapLeadingAxes(pp.baseAddress!, out, outer: outChannels, middle: batch,
                                           inner: plane, bias: nil)
                }
            }
        }

        // Keep only what the backward needs: the columns for dW, the weight for dx.
        let savedColumns = weight.requiresGradient ? col : []
        let savedWeight = x.requiresGradient ? weight.scalars : []
        let (xShape, wShape) = (x.shape, weight.shape)
        let (needX, needW) = (x.requiresGradient, weight.requiresGradient)
        let needBias = bias?.requiresGradient ?? false
        return Tensor.record(Tensor(shape: outShape, scalars: output), inputs: inputs) { g in
            // gy reordered to (Cout, N * L).
            let gy = [Scalar](fillingAll: g.count) { d in
                g.scalars.withUnsafeBufferPointer {
                    Scalar.swapLeadingAxes($0.baseAddress!, d, outer: batch, middle: outChannels, inner: plane,
                                           bias: nil)
                }
            }
            var grads: [Tensor?] = [nil, nil]
            gy.withUnsafeBufferPointer { pg in
                if needX {
                    let dcol = [Scalar](fillingAll: k * columns) { d in
                        savedWeight.withUnsafeBufferPointer { pw in
                            Scalar.gemm(transA: true, transB: false, m: k, n: columns, k: outChannels, alpha: 1,
                                        a: pw.baseAddress!, lda: k, b: pg.baseAddress!, ldb: columns,
                                        beta: 0, c: d, ldc: columns)
                        }
                    }
                    grads[0] = Tensor(shape: xShape) { dx in
                        dcol.withUnsafeBufferPointer { Scalar.col2im($0.baseAddress!, dx.baseAddress!,
                                                                     geometry: geometry) }
                    }
                }
                if needW {
                    let dw = [Scalar](fillingAll: outChannels * k) { d in
                        savedColumns.withUnsafeBufferPointer { pc in
                            Scalar.gemm(transA: false, transB: true, m: outChannels, n: k, k: columns, alpha: 1,
                                        a: pg.baseAddress!, lda: columns, b: pc.baseAddress!, ldb: columns,
                                        beta: 0, c: d, ldc: k)
                        }
                    }
                    grads[1] = Tensor(shape: wShape, scalars: dw)
                }
                if needBias {
                    grads.append(Tensor(shape: [outChannels]) { db in
                        Scalar.reduce(.sum, pg.baseAddress!, shape: [outChannels, columns], reduced: [false, true],
                                      db.baseAddress!)
                    })
                }
            }
            return grads
        }
    }
}
