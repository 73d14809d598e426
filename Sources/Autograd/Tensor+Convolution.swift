import Foundation

// MARK: - 2-D convolution
//
// Two algorithms. By default im2col + GEMM, below. With `.fastest`, 3x3 convolutions with stride 1 and no dilation
// of `Float` tensors with at least 4 input channels and outputs of at least 3x3 take the Winograd kernels
// (`Kernels/Winograd*.swift`): F(3x3, 3x3) or, on small maps, F(5x5, 3x3), 25 (or 49) GEMMs over transformed tiles,
// 3.2x to 4.6x fewer multiplications than a direct product, at the price of rounding differences of a few 1e-6
// relative; the group convolutions use them. `.fastestBackward` keeps im2col's forward and takes the Winograd
// adjoint for the gradients alone (the plain CNN: its max poolings then compare the direct sums).
//
// im2col (`Kernels/ConvolutionKernels.swift`), with K = Cin * kh * kw and L = Hout * Wout, runs over chunks of
// images: each chunk unfolds its images into a column buffer col (K, images * L) of about 2^16 elements taken from
// the `BufferPool` (nothing batch-sized is unfolded or kept between the passes), and the chunks run in parallel:
//   forward:  y = W (Cout, K) x col, summed over blocks of at most 128 of the K rows (`depthBlockedGemm`: less
//             rounding than one chain of K terms); per image for large planes, straight into y, the bias a column
//             of W against a row of ones in col; per chunk for small planes, reordered to (N, Cout, L) with the bias
//             added in the same pass;
//   backward: one pass per chunk, its gy brought into the products' layout once: dW and dbias from one product,
//             gy x [col; ones]^T, the chunk's columns unfolded again from the input, summed over the chunks (per
//             worker, then added up); dcol = W^T x gy, written over col and folded back onto the input by col2im.
// Large planes at stride 1 without dilation take wide columns (`Kernels/ConvolutionWideColumns.swift`): each image is
// padded once and every row of col is one contiguous span of it, over Hout * (Wout + kw - 1) positions whose extra
// kw - 1 per output row are dropped from y and are zeros in gy; the sums keep their terms and their order.

extension Array where Element: TensorScalar {
    /// An array of `count` elements that `body` must initialise completely (no zero fill first).
    init(fillingAll count: Int, _ body: (UnsafeMutablePointer<Element>) -> Void) {
        self.init(unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { body(buffer.baseAddress!) }
            initialized = count
        }
    }
}

/// How `conv2d` computes a convolution.
public enum ConvolutionAlgorithm: Sendable, Equatable {
    /// im2col + GEMM, for every geometry and element type: the products and sums of a direct convolution (the
    /// default).
    case im2col
    /// Winograd for the 3x3, stride-1, undilated convolutions of `Float` tensors with at least 4 input channels,
    /// padding at most 2 and outputs of at least 3x3, im2col otherwise: 2.25x to 4x fewer multiplications, with
    /// results within a few 1e-6 (relative to their largest magnitude) of the direct sums. Smaller outputs fill a
    /// fraction of a tile (a 1x1 output one ninth of a 3x3 tile), where im2col is faster.
    case fastest
    /// Winograd F(3x3, 3x3) (F(5x5, 3x3) for small images) for any element type; precondition: a 3x3 kernel,
    /// stride 1, dilation 1.
    case winograd
    /// The forward of `.im2col` and the backward of `.fastest`: the outputs are the direct sums, so a max pooling
    /// after the convolution compares the same values as with `.im2col` (Winograd's rounding picks another winner
    /// wherever two candidates are within a few 1e-6, and the gradient then flows elsewhere), while the input and
    /// weight gradients come from the Winograd adjoint wherever `.fastest` would take Winograd, within a few 1e-6
    /// of the direct sums. For training a network with max pooling whose 3x3 layers spend most of their time in
    /// the backward (the plain CNN's).
    case fastestBackward
}

extension Tensor {
    /// 2-D cross-correlation over NCHW input, as `torch.conv2d` with groups = 1.
    ///
    /// - Parameters:
    ///   - weight: (Cout, Cin, kh, kw).
    ///   - bias: (Cout), optional.
    ///   - stride: step (vertical, horizontal).
    ///   - padding: zeros on both sides (vertical, horizontal).
    ///   - dilation: spacing of the kernel taps (vertical, horizontal).
    ///   - algorithm: the exact im2col path by default; `.fastest` takes Winograd where it applies,
    ///     `.fastestBackward` only for the gradients.
    ///   - filterCache: keeps the Winograd transform of `weight` for the next call with the same weight array
    ///     (`WinogradFilterCache`); for repeated inference with fixed filters.
    /// - Returns: (N, Cout, Hout, Wout) with Hout = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1, likewise Wout.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                       padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1),
                       algorithm: ConvolutionAlgorithm = .im2col,
                       filterCache: WinogradFilterCache<Scalar>? = nil) -> Tensor {
        let x = self
        check(x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[1],
              "conv2d: input shape \(x.shape) (N, Cin, H, W) does not match weight shape \(weight.shape) "
              + "(Cout, Cin, kh, kw)")
        check(stride.0 > 0 && stride.1 > 0 && dilation.0 > 0 && dilation.1 > 0
              && padding.0 >= 0 && padding.1 >= 0,
              "conv2d: invalid stride \(stride), padding \(padding) or dilation \(dilation) for input shape "
              + "\(x.shape) and weight shape \(weight.shape)")
        let (batch, outChannels) = (x.shape[0], weight.shape[0])
        if let bias {
            check(bias.shape == [outChannels],
                  "conv2d: bias shape \(bias.shape) does not match weight shape \(weight.shape)")
        }
        let geometry = ConvolutionGeometry(
            batch: batch, channels: x.shape[1], height: x.shape[2], width: x.shape[3],
            kernel: (weight.shape[2], weight.shape[3]), stride: stride, padding: padding, dilation: dilation)
        let (outH, outW) = (geometry.outputHeight, geometry.outputWidth)
        check(geometry.columnRows > 0 && geometry.height > 0 && geometry.width > 0 && outChannels > 0
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

        let winogradFits = geometry.kernelHeight == 3 && geometry.kernelWidth == 3 && stride == (1, 1)
            && dilation == (1, 1)
        // Where `.fastest` takes Winograd.
        let winogradIsFaster = winogradFits && Scalar.prefersWinograd && geometry.channels >= 4
            && padding.0 <= 2 && padding.1 <= 2 && outH >= 3 && outW >= 3
        var backward: WinogradGeometry?
        switch algorithm {
        case .winograd:
            check(winogradFits, "conv2d: the Winograd algorithm needs a 3x3 kernel with stride 1 and no "
                  + "dilation, got weight shape \(weight.shape), stride \(stride), dilation \(dilation)")
            return winogradConvolution(weight: weight, bias: bias, geometry: geometry, inputs: inputs,
                                       cache: filterCache)
        case .fastest where winogradIsFaster:
            return winogradConvolution(weight: weight, bias: bias, geometry: geometry, inputs: inputs,
                                       cache: filterCache)
        case .fastestBackward where winogradIsFaster:
            backward = WinogradGeometry(batch: batch, channels: geometry.channels, height: geometry.height,
                                        width: geometry.width, outChannels: outChannels, padding: padding)
        default:
            break
        }

        let output = [Scalar](fillingAll: outShape.reduce(1, *)) { out in
            x.scalars.withUnsafeBufferPointer { px in
                weight.scalars.withUnsafeBufferPointer { pw in
                    withOptionalPointer(bias?.scalars) { pb in
                        Scalar.convolutionForward(px.baseAddress!, weight: pw.baseAddress!, bias: pb, out,
                                                  outChannels: outChannels, geometry: geometry)
                    }
                }
            }
        }
        return recordConvolution(output: Tensor(shape: outShape, scalars: output), x: x, weight: weight, bias: bias,
                                 inputs: inputs, geometry: geometry,
                                 winograd: backward.map { (filters: nil, geometry: $0) })
    }

    /// Records a convolution whose result is `output`. The backward takes the Winograd adjoint when `winograd` is
    /// given, with its transformed filters (nil: transformed from the weight when the input gradient needs them),
    /// im2col GEMMs otherwise.
    private func recordConvolution(output: Tensor, x: Tensor, weight: Tensor, bias: Tensor?, inputs: [Tensor],
                                   geometry: ConvolutionGeometry,
                                   winograd: (filters: [Scalar]?, geometry: WinogradGeometry)?) -> Tensor {
        let (needX, needW) = (x.requiresGradient, weight.requiresGradient)
        let needBias = bias?.requiresGradient ?? false
        let outChannels = weight.shape[0]
        // Keep only what the backward needs: the input for dW, the weight (or its transform) for dx.
        let savedInput = needW ? x.scalars : []
        let savedWeight = needX && winograd?.filters == nil ? weight.scalars : []
        let givenFilters = needX ? winograd?.filters : nil
        let winogradGeometry = winograd?.geometry
        let (xShape, wShape) = (x.shape, weight.shape)
        return Tensor.record(output, inputs: inputs) { g in
            // The transformed filters for the input gradient: the forward's, or transformed now (`.fastestBackward`).
            var filters: [Scalar] = []
            if needX, let wg = winogradGeometry {
                filters = givenFilters ?? [Scalar](fillingAll: wg.filterCount) { u in
                    savedWeight.withUnsafeBufferPointer { Scalar.winogradFilters($0.baseAddress!, u, geometry: wg) }
                }
            }
            var dx = needX ? [Scalar](fillingAll: xShape.reduce(1, *)) { _ in } : nil
            var dw = needW ? [Scalar](fillingAll: wShape.reduce(1, *)) { _ in } : nil
            var db = needBias ? [Scalar](fillingAll: outChannels) { _ in } : nil
            g.scalars.withUnsafeBufferPointer { pg in
                withOptionalMutablePointer(&dx) { pdx in
                    withOptionalMutablePointer(&dw) { pdw in
                        withOptionalMutablePointer(&db) { pdb in
                            savedInput.withUnsafeBufferPointer { px in
                                if let wg = winogradGeometry {
                                    // One pass over the output gradient's transform serves all three gradients.
                                    filters.withUnsafeBufferPointer { pu in
                                        Scalar.winogradBackward(pg.baseAddress!, filters: pu.baseAddress,
                                                                input: px.baseAddress, gradInput: pdx,
                                                                gradWeight: pdw, gradBias: pdb, geometry: wg)
                                    }
                                    return
                                }
                                savedWeight.withUnsafeBufferPointer { pw in
                                    Scalar.convolutionBackward(pg.baseAddress!, input: px.baseAddress,
                                                               weight: pw.baseAddress, gradInput: pdx,
                                                               gradWeight: pdw, gradBias: pdb,
                                                               outChannels: outChannels, geometry: geometry)
                                }
                            }
                        }
                    }
                }
            }
            var grads: [Tensor?] = [dx.map { Tensor(shape: xShape, scalars: $0) },
                                    dw.map { Tensor(shape: wShape, scalars: $0) }]
            if bias != nil { grads.append(db.map { Tensor(shape: [outChannels], scalars: $0) }) }
            return grads
        }
    }
}

/// Runs `body` with the base address of `array`, or nil when there is no array.
func withOptionalMutablePointer<S, R>(_ array: inout [S]?, _ body: (UnsafeMutablePointer<S>?) -> R) -> R {
    guard array != nil else { return body(nil) }
    return array!.withUnsafeMutableBufferPointer { body($0.baseAddress) }
}

/// Runs `body` with the base address of `array`, or nil when there is no array.
func withOptionalPointer<S, R>(_ array: [S]?, _ body: (UnsafePointer<S>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}

// MARK: - Winograd path

extension Tensor {
    /// The 3x3 stride-1 convolution through the Winograd kernels; the transformed filters (from `cache` when it
    /// holds them) are kept for the input gradient.
    private func winogradConvolution(weight: Tensor, bias: Tensor?, geometry c: ConvolutionGeometry,
                                     inputs: [Tensor], cache: WinogradFilterCache<Scalar>?) -> Tensor {
        let x = self
        let outChannels = weight.shape[0]
        let g = WinogradGeometry(batch: c.batch, channels: c.channels, height: c.height, width: c.width,
                                 outChannels: outChannels, padding: (c.padHeight, c.padWidth))
        let transform = {
            [Scalar](fillingAll: g.filterCount) { u in
                weight.scalars.withUnsafeBufferPointer { Scalar.winogradFilters($0.baseAddress!, u, geometry: g) }
            }
        }
        let filters = cache?.filters(for: weight.scalars, shape: weight.shape, block: g.block, transform)
            ?? transform()
        let outShape = [g.batch, outChannels, g.outputHeight, g.outputWidth]
        let output = [Scalar](fillingAll: outShape.reduce(1, *)) { out in
            x.scalars.withUnsafeBufferPointer { px in
                filters.withUnsafeBufferPointer { pu in
                    if let bias {
                        bias.scalars.withUnsafeBufferPointer { pb in
                            Scalar.winogradForward(px.baseAddress!, filters: pu.baseAddress!, bias: pb.baseAddress!,
                                                   out, geometry: g)
                        }
                    } else {
                        Scalar.winogradForward(px.baseAddress!, filters: pu.baseAddress!, bias: nil, out,
                                               geometry: g)
                    }
                }
            }
        }
        return recordConvolution(output: Tensor(shape: outShape, scalars: output), x: x, weight: weight, bias: bias,
                                 inputs: inputs, geometry: c, winograd: (filters, g))
    }
}

/// The Winograd transform of one filter bank, kept between convolutions with the same filters: inference with fixed
/// weights transforms them once instead of at every call. `conv2d(..., filterCache:)` reuses the transform while it
/// is given the very weight array the transform came from (the same storage: storage the cache holds cannot change in
/// place, since a write to a shared array copies it first, so a changed weight is new storage), in the same shape and
/// for the same tile size; otherwise it transforms the weight given and keeps that. Holds one transform; safe to share
/// between threads.
public final class WinogradFilterCache<Scalar: TensorScalar>: @unchecked Sendable {
    private let lock = NSLock()
    private var weight: [Scalar] = []
    private var shape: [Int] = []
    private var block = 0
    private var transformed: [Scalar] = []
    /// How many transforms the cache has computed (for tests).
    private(set) var computed = 0

    /// An empty cache.
    public init() {}

    /// Drops the kept transform (and the weight it came from).
    public func clear() {
        lock.lock()
        defer { lock.unlock() }
        (weight, shape, transformed, block) = ([], [], [], 0)
    }

    /// The transform of `weight` (of `shape`) for tiles of `block`: the kept one when it came from this storage,
    /// shape and block, else `transform()`, which is then kept.
    func filters(for weight: [Scalar], shape: [Int], block: Int, _ transform: () -> [Scalar]) -> [Scalar] {
        lock.lock()
        defer { lock.unlock() }
        let sameStorage = weight.withUnsafeBufferPointer { given in
            self.weight.withUnsafeBufferPointer { kept in given.baseAddress == kept.baseAddress }
        }
        // Storage that is the same holds the same count, and a kept weight always has its transform.
        if sameStorage && !weight.isEmpty && shape == self.shape && block == self.block {
            return transformed
        }
        transformed = transform()
        self.weight = weight
        self.shape = shape
        self.block = block
        computed += 1
        return transformed
    }
}

// MARK: - Index gathers

extension Tensor {
    /// A tensor of `shape` whose element i is this tensor's flat element `indices[i]`: any fixed rearrangement or
    /// replication of elements (rotated and stacked filters) as one copy. The gradient adds each result element back
    /// onto the element it was read from.
    ///
    /// Precondition: every index lies in 0..<count, and `indices.count` is the product of `shape`.
    public func gathered(_ indices: [Int32], shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        check(indices.count == n, "gathered: \(indices.count) indices for shape \(shape)")
        let sourceCount = count
        let bounds = indices.withUnsafeBufferPointer { indexBounds($0) }
        check(n == 0 || (bounds.low >= 0 && Int(bounds.high) < sourceCount),
              "gathered: an index lies outside 0..<\(sourceCount)")
        let result = Tensor(shape: shape, scalars: [Scalar](fillingAll: n) { dst in
            scalars.withUnsafeBufferPointer { src in
                indices.withUnsafeBufferPointer { Scalar.gather(src.baseAddress!, $0.baseAddress!, dst, count: n) }
            }
        })
        let inputShape = self.shape
        return Tensor.record(result, inputs: [self]) { g in
            [Tensor(shape: inputShape) { dx in
                g.scalars.withUnsafeBufferPointer { pg in
                    indices.withUnsafeBufferPointer { pi in
                        if n > 0 {
                            Scalar.scatterAdd(pg.baseAddress!, pi.baseAddress!, dx.baseAddress!, count: n,
                                              destinationCount: sourceCount)
                        }
                    }
                }
            }]
        }
    }
}
