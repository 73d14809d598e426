// Winograd convolution: the filter transform U = G g G^T, the forward pass, the backward pass (input, weight and
// bias gradients), the weight gradient by rows of tile positions and the backward's products (overview:
// WinogradGeometry.swift).

import CKernels

// MARK: - Kernels

extension TensorScalar {
    /// U = G g G^T of every filter, [position][C][K8] with positions `g.filterStride` apart. Where U is larger than
    /// an L2 cache (the C4CNN's 5x5 layer: 25 MiB) each thread transforms blocks of input channels into a scratch
    /// of about 512 KiB and copies each position's rows out as one run: written straight into U, the 49 positions
    /// are 49 interleaved store streams, and the transform of the 5x5 layer took 4.5 ms against 1.3-1.6 ms
    /// blocked (one thread, a scratch harness timing this function alone, 3 alternating runs).
    static func winogradFiltersKernel(_ weight: UnsafePointer<Self>, _ u: UnsafeMutablePointer<Self>,
                                       geometry g: WinogradGeometry) {
        let (k, c, lanes) = (g.outChannels, g.channels, g.outLanes)
        let direct = g.filterCount * MemoryLayout<Self>.stride <= 1 << 20
        let blockChannels = Swift.max(1, (1 << 17) / (g.positions * lanes))
        let blockStride = WinogradGeometry.positionStride(blockChannels * lanes)
        // Input channels outermost, so that each position's row of U is written in order, 8 filters at a time.
        Parallel.forRanges(c, minimumPerThread: Swift.max(1, 4096 / Swift.max(1, k))) { channels in
            if direct {
                winogradFiltersBlock(weight, u + channels.lowerBound * lanes, stride: g.filterStride,
                                     channels: channels, geometry: g)
                return
            }
            BufferPool.withScratch(Self.self, count: g.positions * blockStride) { scratch in
                for c0 in Swift.stride(from: channels.lowerBound, to: channels.upperBound, by: blockChannels) {
                    let c1 = Swift.min(channels.upperBound, c0 + blockChannels)
                    winogradFiltersBlock(weight, scratch, stride: blockStride, channels: c0..<c1, geometry: g)
                    for xi in 0..<g.positions {
                        (u + xi * g.filterStride + c0 * lanes).update(from: scratch + xi * blockStride,
                                                                      count: (c1 - c0) * lanes)
                    }
                }
            }
        }
    }

    /// U's rows for the input channels `channels` (row ci - channels.lowerBound at `u`, positions `stride` apart).
    static func winogradFiltersBlock(_ weight: UnsafePointer<Self>, _ u: UnsafeMutablePointer<Self>, stride: Int,
                                     channels: Range<Int>, geometry g: WinogradGeometry) {
        if Self.self == Float.self {
            // Float: the CPU-dispatched C loop (CKernels), the same sums as `winogradFiltersGeneric`.
            var sizes = CKWinogradFilters(outChannels: g.outChannels, channels: g.channels, lanes: g.outLanes,
                                          block: g.block, positionStride: stride)
            ck_winograd_filters(UnsafeRawPointer(weight).assumingMemoryBound(to: Float.self),
                                UnsafeMutableRawPointer(u).assumingMemoryBound(to: Float.self), &sizes,
                                channels.lowerBound, channels.upperBound)
        } else {
            winogradFiltersGeneric(weight, u, stride: stride, channels: channels, geometry: g)
        }
    }

    /// `winogradFiltersBlock` in Swift's SIMD8 (Double's path, and the reference of the C loop's bits in the
    /// tests).
    static func winogradFiltersGeneric(_ weight: UnsafePointer<Self>, _ u: UnsafeMutablePointer<Self>, stride: Int,
                                       channels: Range<Int>, geometry g: WinogradGeometry) {
        let (k, c) = (g.outChannels, g.channels)
        let lanes = g.outLanes
        let positionStride = stride
        let filterStride = c * 9
        do {
            withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 32) { buffer in
                let t = buffer.baseAddress!, taps = buffer.baseAddress! + 21
                for ci in channels {
                    for group in 0..<g.outGroups {
                        let k0 = group * 8, count = Swift.min(8, k - k0)
                        let src = weight + k0 * filterStride + ci * 9
                        if count == 8 {
                            for q in 0..<9 {
                                let p = src + q
                                taps[q] = Lanes(p[0], p[filterStride], p[2 * filterStride], p[3 * filterStride],
                                                p[4 * filterStride], p[5 * filterStride], p[6 * filterStride],
                                                p[7 * filterStride])
                            }
                        } else {
                            for q in 0..<9 {
                                var v = Lanes()
                                for l in 0..<count { v[l] = src[l * filterStride + q] }
                                taps[q] = v
                            }
                        }
                        let o = u + (ci - channels.lowerBound) * lanes + k0
                        if g.block == 3 {
                            for i in 0..<3 {
                                unpack(filterRow(taps[i * 3], taps[i * 3 + 1], taps[i * 3 + 2]), into: t + i * 5)
                            }
                            for j in 0..<5 {
                                storeStrided(filterRow(t[j], t[5 + j], t[10 + j]), o + j * positionStride,
                                             stride: 5 * positionStride)
                            }
                        } else {
                            for i in 0..<3 {
                                unpack(filterRow5(taps[i * 3], taps[i * 3 + 1], taps[i * 3 + 2]), into: t + i * 7)
                            }
                            for j in 0..<7 {
                                storeStrided(filterRow5(t[j], t[7 + j], t[14 + j]), o + j * positionStride,
                                             stride: 7 * positionStride)
                            }
                        }
                    }
                }
            }
        }
    }

    static func winogradForwardKernel(_ input: UnsafePointer<Self>, filters u: UnsafePointer<Self>,
                                       bias: UnsafePointer<Self>?, _ output: UnsafeMutablePointer<Self>,
                                       geometry g: WinogradGeometry) {
        let tilesPerImage = g.tilesPerImage
        let inPlane = g.channels * g.height * g.width
        let outPlane = g.outChannels * g.outputHeight * g.outputWidth
        if g.allAtOnce {
            // Input transforms per image, the products per tile position, output transforms per image.
            let allTiles = g.batch * tilesPerImage
            let imageScratch = Swift.max(g.inGroups * g.rows * g.columns, g.outGroups * g.outRows * g.outColumns) * 8
            let (vStride, mStride) = (g.tileStride(tiles: allTiles, lanes: g.inLanes),
                                      g.tileStride(tiles: allTiles, lanes: g.outLanes))
            BufferPool.withScratch(Self.self, count: g.positions * (vStride + mStride)) { v in
                let m = v + g.positions * vStride
                Parallel.forRanges(g.batch, minimumPerThread: 1) { range in
                    BufferPool.withScratch(Self.self, count: imageScratch) { scratch in
                        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                            for n in range {
                                winogradScatterImage(input + n * inPlane, scratch, g)
                                winogradInputTiles(scratch, v, firstTile: n * tilesPerImage, chunkTiles: allTiles, g,
                                                   t.baseAddress!)
                            }
                        }
                    }
                }
                Parallel.forEach(g.positions) { xi in
                    gemm(transA: false, transB: false, m: allTiles, n: g.outChannels, k: g.channels, alpha: 1,
                         a: v + xi * vStride, lda: g.inLanes, b: u + xi * g.filterStride, ldb: g.outLanes,
                         beta: 0, c: m + xi * mStride, ldc: g.outLanes)
                }
                Parallel.forRanges(g.batch, minimumPerThread: 1) { range in
                    BufferPool.withScratch(Self.self, count: imageScratch) { scratch in
                        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                            for n in range {
                                winogradOutputTiles(m, firstTile: n * tilesPerImage, chunkTiles: allTiles, scratch,
                                                    output + n * outPlane, bias: bias, g, t.baseAddress!)
                            }
                        }
                    }
                }
            }
            return
        }
        let images = g.imagesPerChunk(threads: Parallel.threads)
        let chunks = (g.batch + images - 1) / images
        Parallel.forEachWorker(chunks) { chunk, _ in
            let n0 = chunk * images, n1 = Swift.min(g.batch, n0 + images)
            let tiles = (n1 - n0) * tilesPerImage
            let (vStride, mStride) = (g.tileStride(tiles: tiles, lanes: g.inLanes),
                                      g.tileStride(tiles: tiles, lanes: g.outLanes))
            BufferPool.withScratch(Self.self, count: g.scratchCount(images: n1 - n0)) { v in
                let m = v + g.positions * vStride
                let scratch = m + g.positions * mStride
                withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                    for n in n0..<n1 {
                        winogradScatterImage(input + n * inPlane, scratch, g)
                        winogradInputTiles(scratch, v, firstTile: (n - n0) * tilesPerImage, chunkTiles: tiles, g,
                                           t.baseAddress!)
                    }
                    for xi in 0..<g.positions {
                        gemm(transA: false, transB: false, m: tiles, n: g.outChannels, k: g.channels, alpha: 1,
                             a: v + xi * vStride, lda: g.inLanes, b: u + xi * g.filterStride, ldb: g.outLanes,
                             beta: 0, c: m + xi * mStride, ldc: g.outLanes)
                    }
                    for n in n0..<n1 {
                        winogradOutputTiles(m, firstTile: (n - n0) * tilesPerImage, chunkTiles: tiles, scratch,
                                            output + n * outPlane, bias: bias, g, t.baseAddress!)
                    }
                }
            }
        }
    }

    /// dg = G^T dU G for every filter, written to `gradWeight` (K, C, 3, 3).
    static func winogradFiltersAdjoint(_ du: UnsafePointer<Self>, _ gradWeight: UnsafeMutablePointer<Self>,
                                       geometry g: WinogradGeometry) {
        let (k, c) = (g.outChannels, g.channels)
        let lanes = g.outLanes
        let positionStride = g.filterStride
        let a = g.tile
        Parallel.forRanges(c, minimumPerThread: Swift.max(1, 4096 / Swift.max(1, k))) { channels in
            withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 37) { buffer in
                let t = buffer.baseAddress!, x = t + 21, out = t + 28
                for ci in channels {
                    for group in 0..<g.outGroups {
                        let k0 = group * 8, count = Swift.min(8, k - k0)
                        let s = du + ci * lanes + k0
                        // Rows: t[p][j] = sum over q of G[q][j] dU[p][q]; then columns.
                        for p in 0..<a {
                            for q in 0..<a { x[q] = load8(s + (p * a + q) * positionStride) }
                            let r = a == 5 ? filterRowAdjoint(x) : filterRowAdjoint5(x)
                            t[p * 3] = r.0; t[p * 3 + 1] = r.1; t[p * 3 + 2] = r.2
                        }
                        for j in 0..<3 {
                            for p in 0..<a { x[p] = t[p * 3 + j] }
                            let col = a == 5 ? filterRowAdjoint(x) : filterRowAdjoint5(x)
                            out[j] = col.0; out[3 + j] = col.1; out[6 + j] = col.2
                        }
                        for l in 0..<count {
                            let dst = gradWeight + ((k0 + l) * c + ci) * 9
                            for q in 0..<9 { dst[q] = out[q][l] }
                        }
                    }
                }
            }
        }
    }

    static func winogradBackwardKernel(_ gradOutput: UnsafePointer<Self>, filters u: UnsafePointer<Self>?,
                                        input: UnsafePointer<Self>?, gradInput: UnsafeMutablePointer<Self>?,
                                        gradWeight: UnsafeMutablePointer<Self>?,
                                        gradBias: UnsafeMutablePointer<Self>?, geometry g: WinogradGeometry) {
        let needInput = u != nil && gradInput != nil
        let needWeight = input != nil && gradWeight != nil
        // Per-image channel sums of the output gradient, for the bias gradient, summed in image order at the end.
        let imageSums = gradBias == nil ? nil : UnsafeMutablePointer<Self>.allocate(capacity: g.batch * g.outChannels)
        defer { imageSums?.deallocate() }
        let tilesPerImage = g.tilesPerImage
        let inPlane = g.channels * g.height * g.width
        let outPlane = g.outChannels * g.outputHeight * g.outputWidth
        let imageScratch = Swift.max(g.inGroups * g.rows * g.columns, g.outGroups * g.outRows * g.outColumns) * 8
        // The nonzero masks of the weight gradient's zero test, marked image by image as the transforms read them.
        let masks = needWeight ? WinogradNonzeroMasks(geometry: g) : nil
        defer { masks?.deallocate() }

        // dM (and V and the nonzero masks, for the weight gradient) of one image, into buffers laid out for
        // `chunkTiles` tiles.
        func transformImage(_ n: Int, firstTile: Int, chunkTiles: Int, dm: UnsafeMutablePointer<Self>,
                            v: UnsafeMutablePointer<Self>, scratch: UnsafeMutablePointer<Self>,
                            _ t: UnsafeMutablePointer<Lanes>) {
            winogradOutputTilesAdjoint(gradOutput + n * outPlane, scratch, dm, firstTile: firstTile,
                                       chunkTiles: chunkTiles, g, t,
                                       channelSums: imageSums.map { $0 + n * g.outChannels })
            if needWeight, let input {
                winogradScatterImage(input + n * inPlane, scratch, g)
                winogradInputTiles(scratch, v, firstTile: firstTile, chunkTiles: chunkTiles, g, t)
                masks?.mark(image: n, gradOutput: gradOutput + n * outPlane, input: input + n * inPlane, geometry: g)
            }
        }
        // For tile position xi: dU[xi] (+)= V[xi]^T dM[xi], then dV[xi] = dM[xi] U[xi]^T over V[xi].
        func products(_ xi: Int, tiles: Int, dm: UnsafeMutablePointer<Self>, v: UnsafeMutablePointer<Self>,
                      du: UnsafeMutablePointer<Self>?, beta: Self) {
            let (vi, dmi) = (v + xi * g.tileStride(tiles: tiles, lanes: g.inLanes),
                             dm + xi * g.tileStride(tiles: tiles, lanes: g.outLanes))
            if let du {
                winogradWeightProduct(vi, dmi, tiles: tiles, du + xi * g.filterStride, beta: beta, g)
            }
            if needInput, let u {
                winogradInputProduct(dmi, u + xi * g.filterStride, tiles: tiles, vi, g)
            }
        }

        var total: BufferPool.Block?
        let allTiles = g.batch * tilesPerImage
        var weightDone = false
        if g.allAtOnce {
            // Few tiles (small images, where the transformed filters are largest): all of them at once, in parallel
            // phases per image and per tile position. The weight gradient is taken one row of tile positions at a
            // time, folded through the filter transform's adjoint into 9 taps as it goes, so that no full dU exists.
            let vStride = g.tileStride(tiles: allTiles, lanes: g.inLanes)
            let vm = BufferPool.take(bytes: g.positions * (vStride + g.tileStride(tiles: allTiles, lanes: g.outLanes))
                                         * MemoryLayout<Self>.stride)
            defer { BufferPool.give(vm) }
            let v = vm.typed(Self.self), dm = v + g.positions * vStride
            Parallel.forRanges(g.batch, minimumPerThread: 1) { range in
                BufferPool.withScratch(Self.self, count: imageScratch) { scratch in
                    withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                        for n in range {
                            transformImage(n, firstTile: n * tilesPerImage, chunkTiles: allTiles, dm: dm, v: v,
                                           scratch: scratch, t.baseAddress!)
                        }
                    }
                }
            }
            if let gradWeight, let masks {
                winogradWeightGradientByRows(v: v, dm: dm, tiles: allTiles, filters: needInput ? u : nil,
                                             gradWeight, geometry: g)
                winogradZeroUnsupported(gradWeight, masks: masks, geometry: g)
                weightDone = true
            } else {
                Parallel.forEach(g.positions) { xi in products(xi, tiles: allTiles, dm: dm, v: v, du: nil, beta: 0) }
            }
            if needInput, let gradInput {
                Parallel.forRanges(g.batch, minimumPerThread: 1) { range in
                    BufferPool.withScratch(Self.self, count: imageScratch) { scratch in
                        withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                            for n in range {
                                winogradInputTilesAdjoint(v, firstTile: n * tilesPerImage, chunkTiles: allTiles,
                                                          scratch, gradInput + n * inPlane, g, t.baseAddress!)
                            }
                        }
                    }
                }
            }
        } else {
            // Chunks of images in parallel, each slot summing its own dU (a fixed schedule: the same sums in the
            // same order from run to run).
            let images = g.imagesPerChunk(threads: Parallel.threads)
            let chunks = (g.batch + images - 1) / images
            let slots = Parallel.workerSlots
            let partials = UnsafeMutablePointer<BufferPool.Block?>.allocate(capacity: slots)
            partials.initialize(repeating: nil, count: slots)
            defer { partials.deallocate() }
            Parallel.forEachInSlots(chunks) { chunk, worker in
                let n0 = chunk * images, n1 = Swift.min(g.batch, n0 + images)
                let tiles = (n1 - n0) * tilesPerImage
                var beta: Self = 1
                if needWeight && partials[worker] == nil {
                    partials[worker] = BufferPool.take(bytes: g.filterCount * MemoryLayout<Self>.stride)
                    beta = 0
                }
                let du = partials[worker]?.typed(Self.self)
                BufferPool.withScratch(Self.self, count: g.scratchCount(images: n1 - n0)) { v in
                    let dm = v + g.positions * g.tileStride(tiles: tiles, lanes: g.inLanes)
                    let scratch = dm + g.positions * g.tileStride(tiles: tiles, lanes: g.outLanes)
                    withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 56) { t in
                        for n in n0..<n1 {
                            transformImage(n, firstTile: (n - n0) * tilesPerImage, chunkTiles: tiles, dm: dm, v: v,
                                           scratch: scratch, t.baseAddress!)
                        }
                        for xi in 0..<g.positions { products(xi, tiles: tiles, dm: dm, v: v, du: du, beta: beta) }
                        if needInput, let gradInput {
                            for n in n0..<n1 {
                                winogradInputTilesAdjoint(v, firstTile: (n - n0) * tilesPerImage, chunkTiles: tiles,
                                                          scratch, gradInput + n * inPlane, g, t.baseAddress!)
                            }
                        }
                    }
                }
            }
            if needWeight {
                let used = (0..<slots).compactMap { partials[$0] }
                total = used[0]
                for other in used.dropFirst() {
                    accumulate(other.typed(Self.self), into: used[0].typed(Self.self), count: g.filterCount)
                    BufferPool.give(other)
                }
            }
        }
        if let gradBias, let imageSums {
            for k in 0..<g.outChannels { gradBias[k] = 0 }
            for n in 0..<g.batch {
                for k in 0..<g.outChannels { gradBias[k] += imageSums[n * g.outChannels + k] }
            }
        }
        if !weightDone, let total, let gradWeight, let masks {
            winogradFiltersAdjoint(total.typed(Self.self), gradWeight, geometry: g)
            BufferPool.give(total)
            winogradZeroUnsupported(gradWeight, masks: masks, geometry: g)
        }
    }

    /// The weight gradient from all tiles' V and dM (each over `tiles` tiles), two rows p of tile positions at a
    /// time: dU[p][q] = V[p][q]^T dM[p][q] for the rows, then t[j] = sum over q of G[q][j] dU[p][q] and
    /// dg[i][j] += G[p][i] t[j], row p's terms before row p + 1's. With `filters`, each position's dV = dM U^T is
    /// also computed, over V (whose rows are no longer needed once their dU is taken).
    static func winogradWeightGradientByRows(v: UnsafeMutablePointer<Self>, dm: UnsafeMutablePointer<Self>,
                                             tiles: Int, filters u: UnsafePointer<Self>?,
                                             _ gradWeight: UnsafeMutablePointer<Self>, geometry g: WinogradGeometry) {
        let (a, c, k) = (g.tile, g.channels, g.outChannels)
        let lanes = g.outLanes
        let slab = g.filterStride  // one position of dU
        let gm = g.filterMatrix.map { Self($0) }
        let threads = Parallel.threads
        // Two rows per pass: the fold reads and writes the accumulator (9 taps of C x K, beyond the caches on the
        // large layers) once for both. The fold below takes one or two rows (t0, t1), no more.
        let rowsPerPass = 2
        BufferPool.withScratch(Self.self, count: (rowsPerPass * a + 9) * slab) { row in
            let acc = row + rowsPerPass * a * slab  // [tap][c][K8], each thread clearing its channels' rows first
            for first in stride(from: 0, to: a, by: rowsPerPass) {
                let rows = Swift.min(rowsPerPass, a - first)
                let positions = rows * a
                // When the pass's positions do not divide among the threads (7 positions, 2 threads), each
                // position's products are split into `parts` blocks of input channels (multiples of 16), so that
                // every thread gets as much work. A block's products read and overwrite only its own columns of V.
                var parts = threads / gcd(positions, threads)
                if c / parts < 32 { parts = 1 }
                let bounds = (0...parts).map { Swift.min(c, (c * $0 / parts + 15) / 16 * 16) }
                Parallel.forEach(positions * parts) { item in
                    let (position, part) = item.quotientAndRemainder(dividingBy: parts)
                    let xi = first * a + position
                    let (vi, dmi) = (v + xi * g.tileStride(tiles: tiles, lanes: g.inLanes),
                                     dm + xi * g.tileStride(tiles: tiles, lanes: g.outLanes))
                    let channels = bounds[part]..<bounds[part + 1]
                    winogradWeightProduct(vi, dmi, tiles: tiles, row + position * slab, beta: 0, g, channels: channels)
                    if let u { winogradInputProduct(dmi, u + xi * slab, tiles: tiles, vi, g, channels: channels) }
                }
                // G[p][i] of the pass's first and second row (zeros for a pass of one row).
                let g0 = (0..<3).map { gm[first * 3 + $0] }
                let g1 = (0..<3).map { rows == 2 ? gm[(first + 1) * 3 + $0] : 0 }
                Parallel.forRanges(c, minimumPerThread: Swift.max(1, 2048 / Swift.max(1, k))) { channels in
                    if first == 0 {
                        for tap in 0..<9 {
                            (acc + tap * slab + channels.lowerBound * lanes).update(repeating: 0,
                                                                                    count: channels.count * lanes)
                        }
                    }
                    withUnsafeTemporaryAllocation(of: Lanes.self, capacity: 7) { buffer in
                        let x = buffer.baseAddress!
                        for ci in channels {
                            for group in 0..<g.outGroups {
                                let offset = ci * lanes + group * 8
                                for q in 0..<a { x[q] = load8(row + q * slab + offset) }
                                let t0 = a == 5 ? filterRowAdjoint(x) : filterRowAdjoint5(x)
                                var t1 = t0
                                if rows == 2 {
                                    for q in 0..<a { x[q] = load8(row + (a + q) * slab + offset) }
                                    t1 = a == 5 ? filterRowAdjoint(x) : filterRowAdjoint5(x)
                                }
                                for i in 0..<3 where g0[i] != 0 || g1[i] != 0 {
                                    let base = acc + i * 3 * slab + offset
                                    var (s0, s1, s2) = (load8(base), load8(base + slab), load8(base + 2 * slab))
                                    if g0[i] != 0 {
                                        s0 = s0 + t0.0 * g0[i]
                                        s1 = s1 + t0.1 * g0[i]
                                        s2 = s2 + t0.2 * g0[i]
                                    }
                                    if g1[i] != 0 {
                                        s0 = s0 + t1.0 * g1[i]
                                        s1 = s1 + t1.1 * g1[i]
                                        s2 = s2 + t1.2 * g1[i]
                                    }
                                    store8(s0, base)
                                    store8(s1, base + slab)
                                    store8(s2, base + 2 * slab)
                                }
                            }
                        }
                    }
                }
            }
            // acc[tap][c][k] -> gradWeight[k][c][tap].
            Parallel.forRanges(k, minimumPerThread: 1) { range in
                for ko in range {
                    for ci in 0..<c {
                        let dst = gradWeight + (ko * c + ci) * 9
                        for tap in 0..<9 { dst[tap] = acc[tap * slab + ci * lanes + ko] }
                    }
                }
            }
        }
    }
}

// MARK: - The backward's products

extension TensorScalar {
    /// Whether the backward's products of `g` take the narrow kernels (`ck_gemm_nt_narrow`, `ck_gemm_tn_narrow`):
    /// for Float with FMA (the AVX2 and AVX-512 paths), 8 or 16 input channels (at most 32 output channels for the
    /// weight gradient's), and a BLAS without small-matrix kernels (OpenBLAS's Haswell kernels, which Zen cores run
    /// too): there packing the operands of products over 16 to 32 terms took as long as multiplying them, and the
    /// narrow kernels took a third to a half less time (the CNN's 8 -> 16 and 16 -> 32 layers). OpenBLAS's SkylakeX
    /// and Cooperlake small-matrix kernels are faster than them, and from 32 channels on BLAS is as fast.
    static func narrowProducts(_ g: WinogradGeometry) -> (input: Bool, weight: Bool) {
        guard Self.self == Float.self else { return (false, false) }
        let fits = g.channels % 8 == 0 && g.channels <= 16 && g.outChannels <= 64
        let weightFits = fits && g.outChannels % 16 == 0 && g.outChannels <= 32
        if let forced = WinogradGeometry.forcedNarrowProducts { return (forced && fits, forced && weightFits) }
        guard ck_path() != CKPathBaseline, !BLASLibrary.writesSmallProductsWithZeroBeta else { return (false, false) }
        return (fits, weightFits)
    }

    /// dV = dM U^T at one tile position: dM (tiles x K, rows of K8), U (C x K, rows of K8), dV (tiles x C, rows of
    /// C8); with `channels`, only those columns of dV (rows of U).
    static func winogradInputProduct(_ dm: UnsafePointer<Self>, _ u: UnsafePointer<Self>, tiles: Int,
                                     _ dv: UnsafeMutablePointer<Self>, _ g: WinogradGeometry,
                                     channels: Range<Int>? = nil) {
        let range = channels ?? 0..<g.channels
        if range.count == g.channels && narrowProducts(g).input {
            ck_gemm_nt_narrow(tiles, g.channels, g.outChannels, floats(dm), g.outLanes, floats(u), g.outLanes,
                              mutableFloats(dv), g.inLanes)
        } else {
            gemm(transA: false, transB: true, m: tiles, n: range.count, k: g.outChannels, alpha: 1, a: dm,
                 lda: g.outLanes, b: u + range.lowerBound * g.outLanes, ldb: g.outLanes, beta: 0,
                 c: dv + range.lowerBound, ldc: g.inLanes)
        }
    }

    /// dU = V^T dM (beta 0) or dU + V^T dM (beta 1) at one tile position: V (tiles x C, rows of C8), dM (tiles x K,
    /// rows of K8), dU (C x K, rows of K8); with `channels`, only those rows of dU (columns of V).
    static func winogradWeightProduct(_ v: UnsafePointer<Self>, _ dm: UnsafePointer<Self>, tiles: Int,
                                      _ du: UnsafeMutablePointer<Self>, beta: Self, _ g: WinogradGeometry,
                                      channels: Range<Int>? = nil) {
        let range = channels ?? 0..<g.channels
        if range.count == g.channels && narrowProducts(g).weight {
            ck_gemm_tn_narrow(g.channels, g.outChannels, tiles, floats(v), g.inLanes, floats(dm), g.outLanes,
                              mutableFloats(du), g.outLanes, beta == 0 ? 0 : 1)
        } else {
            gemm(transA: true, transB: false, m: range.count, n: g.outChannels, k: tiles, alpha: 1,
                 a: v + range.lowerBound, lda: g.inLanes, b: dm, ldb: g.outLanes, beta: beta,
                 c: du + range.lowerBound * g.outLanes, ldc: g.outLanes)
        }
    }
}

/// A Float pointer's view of a pointer known to hold Floats.
private func floats<S>(_ p: UnsafePointer<S>) -> UnsafePointer<Float> {
    UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
}

/// A mutable Float pointer's view of a pointer known to hold Floats.
private func mutableFloats<S>(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
}

/// The greatest common divisor of two positive integers.
private func gcd(_ a: Int, _ b: Int) -> Int {
    var (x, y) = (a, b)
    while y != 0 { (x, y) = (y, x % y) }
    return x
}
