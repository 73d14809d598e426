// Winograd convolution: per image, the padded input scratch, the input tiles V = B^T d B, the output tiles
// Y = A^T M A with the bias, and their adjoints (overview: WinogradGeometry.swift).

import CKernels

// MARK: - Per-image transforms

extension TensorScalar {
    /// Copies image `image` (C, H, W) into the zero-padded scratch [group][row][column][8].
    static func winogradScatterImage(_ image: UnsafePointer<Self>, _ scratch: UnsafeMutablePointer<Self>,
                                     _ g: WinogradGeometry) {
        let (rows, cols) = (g.rows, g.columns)
        let groupSize = rows * cols * 8
        let (h, w) = (g.height, g.width)
        let (top, left) = (g.padHeight, g.padWidth)
        // Zero only what the image does not cover: the padding rows, and the padding columns of the image rows.
        for group in 0..<g.inGroups {
            let base = scratch + group * groupSize
            base.update(repeating: 0, count: top * cols * 8)
            (base + (top + h) * cols * 8).update(repeating: 0, count: (rows - top - h) * cols * 8)
            // The side paddings are a few columns each: vector stores, not a library call per row.
            let right = cols - left - w
            for y in top..<(top + h) {
                let row = base + y * cols * 8
                for c in 0..<left { store8(Lanes(), row + c * 8) }
                for c in 0..<right { store8(Lanes(), row + (left + w + c) * 8) }
            }
        }
        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 8) { t in
            for group in 0..<g.inGroups {
                let lanes = Swift.min(8, g.channels - group * 8)
                let src = image + group * 8 * h * w
                let dst = scratch + group * groupSize + (top * cols + left) * 8
                for y in 0..<h {
                    interleave(src + y * w, planeStride: h * w, lanes: lanes, count: w, dst + y * cols * 8,
                               t.baseAddress!)
                }
            }
        }
    }

    /// V[xi][firstTile + t][group lanes] for every tile t of one image, from its padded scratch.
    static func winogradInputTiles(_ scratch: UnsafePointer<Self>, _ v: UnsafeMutablePointer<Self>,
                                   firstTile: Int, chunkTiles: Int, _ g: WinogradGeometry,
                                   _ t: UnsafeMutablePointer<Lanes>) {
        if g.block == 3 && Self.self == Float.self {
            // Float's F(3x3, 3x3) tiles: the CPU-dispatched C loop (CKernels), the same sums as below.
            var tiles = g.dispatchedTiles(.input, firstTile: firstTile, chunkTiles: chunkTiles)
            ck_winograd_input_tiles3(UnsafeRawPointer(scratch).assumingMemoryBound(to: Float.self),
                                     UnsafeMutableRawPointer(v).assumingMemoryBound(to: Float.self), &tiles)
            return
        }
        let step = g.columns * 8  // one scratch row
        let positionStride = g.tileStride(tiles: chunkTiles, lanes: g.inLanes)
        let x = t + 49
        winogradForEachTile(g, .input, firstTile: firstTile) { scratchOffset, tileOffset in
            // Rows into t[i][*], then columns into V.
            let origin = scratch + scratchOffset, o = v + tileOffset
            if g.block == 3 {
                for i in 0..<5 {
                    let row = origin + i * step
                    unpack(inputRow(load8(row), load8(row + 8), load8(row + 16), load8(row + 24), load8(row + 32)),
                           into: t + i * 5)
                }
                for j in 0..<5 {
                    storeStrided(inputRow(t[j], t[5 + j], t[10 + j], t[15 + j], t[20 + j]), o + j * positionStride,
                                 stride: 5 * positionStride)
                }
            } else {
                for i in 0..<7 {
                    gather(origin + i * step, count: 7, stride: 8, into: x)
                    unpack(inputRow5(x), into: t + i * 7)
                }
                for j in 0..<7 {
                    gather(t + j, count: 7, stride: 7, into: x)
                    storeStrided(inputRow5(x), o + j * positionStride, stride: 7 * positionStride)
                }
            }
        }
    }

    /// The adjoint of `winogradInputTiles` followed by `winogradScatterImage`: accumulates B dV B^T of every tile
    /// of one image into the padded scratch and writes the image part to `gradImage` (C, H, W).
    static func winogradInputTilesAdjoint(_ dv: UnsafePointer<Self>, firstTile: Int, chunkTiles: Int,
                                          _ scratch: UnsafeMutablePointer<Self>,
                                          _ gradImage: UnsafeMutablePointer<Self>, _ g: WinogradGeometry,
                                          _ t: UnsafeMutablePointer<Lanes>) {
        let (rows, cols) = (g.rows, g.columns)
        let groupSize = rows * cols * 8
        scratch.update(repeating: 0, count: g.inGroups * groupSize)
        let step = cols * 8  // one scratch row
        let positionStride = g.tileStride(tiles: chunkTiles, lanes: g.inLanes)
        let x = t + 49
        if g.block == 3 && Self.self == Float.self {
            // Float's F(3x3, 3x3) tiles: the CPU-dispatched C loop (CKernels), the same sums as below.
            var tiles = g.dispatchedTiles(.input, firstTile: firstTile, chunkTiles: chunkTiles)
            ck_winograd_input_tiles3_adjoint(UnsafeRawPointer(dv).assumingMemoryBound(to: Float.self),
                                             UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: Float.self),
                                             &tiles)
        } else {
            winogradForEachTile(g, .input, firstTile: firstTile) { scratchOffset, tileOffset in
                // Positions into t[p][*] by rows of the tile, then columns added into the scratch.
                let s = dv + tileOffset, origin = scratch + scratchOffset
                if g.block == 3 {
                    for p in 0..<5 {
                        let q = s + p * 5 * positionStride
                        unpack(inputRowAdjoint(load8(q), load8(q + positionStride), load8(q + 2 * positionStride),
                                               load8(q + 3 * positionStride), load8(q + 4 * positionStride)),
                               into: t + p * 5)
                    }
                    for j in 0..<5 {
                        addStrided(inputRowAdjoint(t[j], t[5 + j], t[10 + j], t[15 + j], t[20 + j]), origin + j * 8,
                                   stride: step)
                    }
                } else {
                    for p in 0..<7 {
                        gather(s + p * 7 * positionStride, count: 7, stride: positionStride, into: x)
                        unpack(inputRowAdjoint5(x), into: t + p * 7)
                    }
                    for j in 0..<7 {
                        gather(t + j, count: 7, stride: 7, into: x)
                        addStrided(inputRowAdjoint5(x), origin + j * 8, stride: step)
                    }
                }
            }
        }
        let (h, w) = (g.height, g.width)
        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 8) { t in
            for group in 0..<g.inGroups {
                let lanes = Swift.min(8, g.channels - group * 8)
                let src = scratch + group * groupSize + (g.padHeight * cols + g.padWidth) * 8
                let dst = gradImage + group * 8 * h * w
                for y in 0..<h {
                    deinterleave(src + y * cols * 8, count: w, dst + y * w, planeStride: h * w, lanes: lanes,
                                 shift: nil, t.baseAddress!)
                }
            }
        }
    }

    /// Output blocks A^T M A of every tile of one image into `output` (K, outH, outW), plus the bias.
    static func winogradOutputTiles(_ mm: UnsafePointer<Self>, firstTile: Int, chunkTiles: Int,
                                    _ scratch: UnsafeMutablePointer<Self>, _ output: UnsafeMutablePointer<Self>,
                                    bias: UnsafePointer<Self>?, _ g: WinogradGeometry,
                                    _ t: UnsafeMutablePointer<Lanes>) {
        let outCols = g.outColumns
        let groupSize = g.outRows * outCols * 8
        let step = outCols * 8  // one scratch row
        let positionStride = g.tileStride(tiles: chunkTiles, lanes: g.outLanes)
        let x = t + 49
        if g.block == 3 && Self.self == Float.self {
            // Float's F(3x3, 3x3) tiles: the CPU-dispatched C loop (CKernels), the same sums as below.
            var tiles = g.dispatchedTiles(.output, firstTile: firstTile, chunkTiles: chunkTiles)
            ck_winograd_output_tiles3(UnsafeRawPointer(mm).assumingMemoryBound(to: Float.self),
                                      UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: Float.self), &tiles)
        } else {
            winogradForEachTile(g, .output, firstTile: firstTile) { scratchOffset, tileOffset in
                // Positions into t[i][*] by rows of the tile, then columns into output rows of the scratch.
                let s = mm + tileOffset, origin = scratch + scratchOffset
                if g.block == 3 {
                    for i in 0..<5 {
                        let p = s + i * 5 * positionStride
                        unpack(outputRow(load8(p), load8(p + positionStride), load8(p + 2 * positionStride),
                                         load8(p + 3 * positionStride), load8(p + 4 * positionStride)), into: t + i * 3)
                    }
                    for b in 0..<3 {
                        storeStrided(outputRow(t[b], t[3 + b], t[6 + b], t[9 + b], t[12 + b]), origin + b * 8,
                                     stride: step)
                    }
                } else {
                    for i in 0..<7 {
                        gather(s + i * 7 * positionStride, count: 7, stride: positionStride, into: x)
                        unpack(outputRow5(x), into: t + i * 5)
                    }
                    for b in 0..<5 {
                        gather(t + b, count: 7, stride: 5, into: x)
                        storeStrided(outputRow5(x), origin + b * 8, stride: step)
                    }
                }
            }
        }
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 8) { t in
            for group in 0..<g.outGroups {
                let lanes = Swift.min(8, g.outChannels - group * 8)
                var shift: Lanes? = nil
                if let bias {
                    var b = Lanes()
                    for l in 0..<lanes { b[l] = bias[group * 8 + l] }
                    shift = b
                }
                let src = scratch + group * groupSize
                let dst = output + group * 8 * oh * ow
                for y in 0..<oh {
                    deinterleave(src + y * outCols * 8, count: ow, dst + y * ow, planeStride: oh * ow, lanes: lanes,
                                 shift: shift, t.baseAddress!)
                }
            }
        }
    }

    /// dM[xi][firstTile + t] = A dY A^T for every tile t of one image, from its output gradient (K, outH, outW).
    /// With `channelSums`, also writes the sum of each channel of the image's output gradient there (K values).
    static func winogradOutputTilesAdjoint(_ gradOutput: UnsafePointer<Self>, _ scratch: UnsafeMutablePointer<Self>,
                                           _ dm: UnsafeMutablePointer<Self>, firstTile: Int, chunkTiles: Int,
                                           _ g: WinogradGeometry, _ t: UnsafeMutablePointer<Lanes>,
                                           channelSums: UnsafeMutablePointer<Self>? = nil) {
        let outCols = g.outColumns
        let outRows = g.outRows
        let groupSize = outRows * outCols * 8
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        // Zero only the tile area past the output (the copy below writes every lane of the rest).
        for group in 0..<g.outGroups {
            let base = scratch + group * groupSize
            (base + oh * outCols * 8).update(repeating: 0, count: (outRows - oh) * outCols * 8)
            for y in 0..<oh {
                (base + (y * outCols + ow) * 8).update(repeating: 0, count: (outCols - ow) * 8)
            }
        }
        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 9) { t in
            let total = t.baseAddress! + 8
            for group in 0..<g.outGroups {
                let lanes = Swift.min(8, g.outChannels - group * 8)
                let src = gradOutput + group * 8 * oh * ow
                let dst = scratch + group * groupSize
                total.pointee = Lanes()
                for y in 0..<oh {
                    interleave(src + y * ow, planeStride: oh * ow, lanes: lanes, count: ow, dst + y * outCols * 8,
                               t.baseAddress!, sum: channelSums == nil ? nil : total)
                }
                if let channelSums {
                    for l in 0..<lanes { channelSums[group * 8 + l] = total.pointee[l] }
                }
            }
        }
        let step = outCols * 8  // one scratch row
        let positionStride = g.tileStride(tiles: chunkTiles, lanes: g.outLanes)
        let x = t + 49
        if g.block == 3 && Self.self == Float.self {
            // Float's F(3x3, 3x3) tiles: the CPU-dispatched C loop (CKernels), the same sums as below.
            var tiles = g.dispatchedTiles(.output, firstTile: firstTile, chunkTiles: chunkTiles)
            ck_winograd_output_tiles3_adjoint(UnsafeRawPointer(scratch).assumingMemoryBound(to: Float.self),
                                              UnsafeMutableRawPointer(dm).assumingMemoryBound(to: Float.self),
                                              &tiles)
            return
        }
        winogradForEachTile(g, .output, firstTile: firstTile) { scratchOffset, tileOffset in
            // Rows of the output block into t[r][*], then columns into dM.
            let origin = scratch + scratchOffset, o = dm + tileOffset
            if g.block == 3 {
                for r in 0..<3 {
                    let row = origin + r * step
                    unpack(outputRowAdjoint(load8(row), load8(row + 8), load8(row + 16)), into: t + r * 5)
                }
                for j in 0..<5 {
                    storeStrided(outputRowAdjoint(t[j], t[5 + j], t[10 + j]), o + j * positionStride,
                                 stride: 5 * positionStride)
                }
            } else {
                for r in 0..<5 {
                    gather(origin + r * step, count: 5, stride: 8, into: x)
                    unpack(outputRowAdjoint5(x), into: t + r * 7)
                }
                for j in 0..<7 {
                    gather(t + j, count: 5, stride: 7, into: x)
                    storeStrided(outputRowAdjoint5(x), o + j * positionStride, stride: 7 * positionStride)
                }
            }
        }
    }
}
