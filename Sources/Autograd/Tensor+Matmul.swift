// MARK: - Matrix products
//
// Forward and backward are BLAS GEMMs (large ones split over the framework's threads); transposed operands are read
// through the GEMM's transpose flags, never copied. For C = A B: dA = G B^T and dB = A^T G.

extension TensorScalar {
    /// `gemm` that accepts empty matrices: nothing to do when m or n is 0; C = beta C (0 when beta is 0) when k is 0.
    /// Leading dimensions are clamped to at least 1 as BLAS requires.
    static func gemmAllowingEmpty(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>?, lda: Int, b: UnsafePointer<Self>?, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>?, ldc: Int
    ) {
        guard m > 0, n > 0, let c else { return }
        guard k > 0, let a, let b else {
            if beta == 0 { for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) } }
            check(beta == 0 || beta == 1, "gemm: an empty inner dimension with beta \(beta)")
            return
        }
        parallelGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                     a: a, lda: Swift.max(1, lda), b: b, ldb: Swift.max(1, ldb),
                     beta: beta, c: c, ldc: Swift.max(1, ldc))
    }
}

extension Tensor {
    /// Matrix product.
    ///
    /// - (m, k) x (k, n) -> (m, n);
    /// - (..., m, k) x (..., k, n) with equal batch axes -> (..., m, n), one GEMM per matrix pair;
    /// - (..., m, k) x (k, n) -> (..., m, n), one GEMM over the batch folded into the rows.
    public func matmul(_ other: Tensor) -> Tensor {
        let a = self, b = other
        check(a.rank >= 2 && b.rank >= 2,
              "matmul: operands need rank >= 2, got shapes \(a.shape) and \(b.shape)")
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1]
        let k2 = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
        check(k == k2, "matmul: inner dimensions differ for shapes \(a.shape) and \(b.shape)")
        let batchShape = Array(a.shape.dropLast(2))
        if b.rank == 2 {
            // Fold the batch into the rows: (B m, k) x (k, n), one GEMM each way.
            let rows = batchShape.reduce(1, *) * m
            let result = Tensor(shape: batchShape + [m, n]) { out in
                a.scalars.withUnsafeBufferPointer { pa in
                    b.scalars.withUnsafeBufferPointer { pb in
                        Scalar.gemmAllowingEmpty(transA: false, transB: false, m: rows, n: n, k: k, alpha: 1,
                                                 a: pa.baseAddress, lda: k, b: pb.baseAddress, ldb: n,
                                                 beta: 0, c: out.baseAddress, ldc: n)
                    }
                }
            }
            let (ca, cb) = (a.detached(), b.detached())
            return Tensor.record(result, inputs: [a, b]) { g in
                [a.requiresGradient ? Tensor.product(g, cb, transA: false, transB: true, shape: ca.shape) : nil,
                 b.requiresGradient ? Tensor.product(ca, g, transA: true, transB: false, shape: cb.shape) : nil]
            }
        }
        check(Array(b.shape.dropLast(2)) == batchShape,
              "matmul: batch dimensions differ for shapes \(a.shape) and \(b.shape)")
        let batch = batchShape.reduce(1, *)
        let result = Tensor.batchedProduct(a, b, transA: false, transB: false, batch: batch, shape: batchShape + [m, n])
        let (ca, cb) = (a.detached(), b.detached())
        return Tensor.record(result, inputs: [a, b]) { g in
            [a.requiresGradient ? Tensor.batchedProduct(g, cb, transA: false, transB: true, batch: batch,
                                                        shape: ca.shape) : nil,
             b.requiresGradient ? Tensor.batchedProduct(ca, g, transA: true, transB: false, batch: batch,
                                                        shape: cb.shape) : nil]
        }
    }

    /// op(x) op(y) for x, y read as matrices made of their last axis by all leading axes folded (no recording).
    /// The result has `shape`, whose element count is rows(op(x)) * cols(op(y)).
    static func product(_ x: Tensor, _ y: Tensor, transA: Bool, transB: Bool, shape: [Int]) -> Tensor {
        let xCols = x.shape.last!, xRows = x.count / Swift.max(1, xCols)
        let yCols = y.shape.last!, yRows = y.count / Swift.max(1, yCols)
        let (m, k) = transA ? (xCols, xRows) : (xRows, xCols)
        let n = transB ? yRows : yCols
        check(shape.reduce(1, *) == m * n, "matmul: internal shape mismatch")
        // beta = 0 writes every element of the result (zeros for an empty inner dimension).
        return Tensor(shape: shape, scalars: [Scalar](fillingAll: m * n) { out in
            x.scalars.withUnsafeBufferPointer { px in
                y.scalars.withUnsafeBufferPointer { py in
                    Scalar.gemmAllowingEmpty(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                                             a: px.baseAddress, lda: xCols, b: py.baseAddress, ldb: yCols,
                                             beta: 0, c: out, ldc: n)
                }
            }
        })
    }

    /// op(x_i) op(y_i) for each of `batch` matrix pairs (the last two axes), into a tensor of `shape`.
    static func batchedProduct(_ x: Tensor, _ y: Tensor, transA: Bool, transB: Bool, batch: Int,
                               shape: [Int]) -> Tensor {
        let (xr, xc) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let (yr, yc) = (y.shape[y.rank - 2], y.shape[y.rank - 1])
        let (m, k) = transA ? (xc, xr) : (xr, xc)
        let n = transB ? yr : yc
        check(shape.reduce(1, *) == batch * m * n, "matmul: internal shape mismatch")
        // beta = 0 writes every element of the result (zeros for an empty inner dimension).
        return Tensor(shape: shape, scalars: [Scalar](fillingAll: batch * m * n) { out in
            x.scalars.withUnsafeBufferPointer { px in
                y.scalars.withUnsafeBufferPointer { py in
                    for i in 0..<batch {
                        Scalar.gemmAllowingEmpty(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                                                 a: px.baseAddress.map { $0 + i * xr * xc }, lda: xc,
                                                 b: py.baseAddress.map { $0 + i * yr * yc }, ldb: yc,
                                                 beta: 0, c: out + i * m * n, ldc: n)
                    }
                }
            }
        })
    }

    /// A fully connected layer, PyTorch layout: x (..., in), weight (out, in), bias (out) -> (..., out) =
    /// x W^T + b, as one GEMM (W read transposed) on an output pre-filled with the bias.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
        check(x.rank >= 1 && weight.rank == 2 && x.shape[x.rank - 1] == weight.shape[1],
              "linear: input shape \(x.shape) does not match weight shape \(weight.shape) (out, in)")
        let (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
        if let bias {
            check(bias.shape == [outFeatures],
                  "linear: bias shape \(bias.shape) does not match weight shape \(weight.shape)")
        }
        let rows = x.count / Swift.max(1, inFeatures)
        let outShape = Array(x.shape.dropLast()) + [outFeatures]
        // The bias copy or beta = 0 writes every element of the result.
        let result = Tensor(shape: outShape, scalars: [Scalar](fillingAll: rows * outFeatures) { out in
            var beta: Scalar = 0
            if let bias {
                bias.scalars.withUnsafeBufferPointer { pb in
                    // Every output row starts as the bias (a stride-0 read); the GEMM adds x W^T (beta = 1).
                    Scalar.stridedCopy(pb.baseAddress!, srcOffset: 0, srcStrides: [0, 1],
                                       out, dstOffset: 0, dstStrides: [outFeatures, 1],
                                       shape: [rows, outFeatures], accumulate: false)
                }
                beta = 1
            }
            x.scalars.withUnsafeBufferPointer { px in
                weight.scalars.withUnsafeBufferPointer { pw in
                    Scalar.gemmAllowingEmpty(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                                             alpha: 1, a: px.baseAddress, lda: inFeatures,
                                             b: pw.baseAddress, ldb: inFeatures,
                                             beta: beta, c: out, ldc: outFeatures)
                }
            }
        })
        let (cx, cw) = (x.detached(), weight.detached())
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(result, inputs: inputs) { g in
            // Read g as (rows, out): dx = g W, dW = g^T x, db = column sums of g.
            var grads: [Tensor?] = [
                x.requiresGradient ? product(g, cw, transA: false, transB: false, shape: cx.shape) : nil,
                weight.requiresGradient ? product(g, cx, transA: true, transB: false, shape: cw.shape) : nil,
            ]
            if let bias {
                grads.append(bias.requiresGradient ? g.reshaped([rows, outFeatures]).sum(axes: [0]) : nil)
            }
            return grads
        }
    }
}
