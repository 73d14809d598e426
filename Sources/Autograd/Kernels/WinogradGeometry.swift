import CKernels

// MARK: - Winograd convolution F(3x3, 3x3) and F(5x5, 3x3)
//
// A 3x3 convolution with stride 1 computes each 3x3 block of outputs from a 5x5 block ("tile") of the padded input
// with 25 multiplications per channel pair instead of 81 (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016; the transforms are Toom-Cook's for the interpolation points 0, 1, -1, -2 and infinity):
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A        (per channel pair, summed over input channels)
//
//   B^T = [ 2  1 -2 -1  0 ]    G = [ 1/2    0    0  ]    A^T = [ 1  1  1  1  0 ]
//         [ 0  2  3  1  0 ]        [ 1/6  1/6  1/6  ]          [ 0  1 -1 -2  0 ]
//         [ 0 -2  1  1  0 ]        [ 1/2 -1/2  1/2  ]          [ 0  1  1  4  1 ]
//         [ 0  1  0 -1  0 ]        [ 1/6 -1/3  2/3  ]
//         [ 0 -2 -1  2  1 ]        [  0    0    1   ]
//
// Summed over input channels, each of the 25 positions xi of the transformed tiles is one matrix product:
//   M[xi] (tiles x K) = V[xi] (tiles x C) * U[xi] (C x K),
// with V the transformed input tiles and U the transformed filters, so the whole convolution is 25 GEMMs over all
// tiles of a chunk of images, between cheap linear transforms. The backward pass is the exact adjoint of this
// computation: dM = A dY A^T (the output transform's adjoint); for the input, dV[xi] = dM[xi] U[xi]^T and
// dx = B dV B^T scattered back onto the overlapping input tiles; for the weights, dU[xi] = V[xi]^T dM[xi] (GEMMs
// too) and dg = G^T dU G (`winogradFiltersAdjoint`, or `winogradWeightGradientByRows` when all tiles are held at
// once).
//
// In floating point a weight whose inputs and output gradients never meet (structural zeros: dead units, the single
// position a max pool passes back) gets a rounding residue from these sums instead of the exact zero of a direct
// sum, and Adam turns any nonzero gradient, however small, into a step of up to the full learning rate. So the
// Winograd weight gradient is followed by the zero mask (`WinogradZeroMask.swift`), which finds those gradients and
// sets them to exactly 0.
//
// Small images (5x5 outputs, say) waste most of a 3x3 tiling; there F(5x5, 3x3) (7x7 tiles, 49 multiplications per
// 25 outputs) is used instead, with the same layouts. `WinogradGeometry.init` picks the block with fewer
// multiplications: in the C4CNN, 3x3 blocks on the 33x33, 17x17 and 9x9 maps and 5x5 blocks on the 5x5 maps.
//
// Layouts. Channels are vectorised in groups of 8 lanes: V is [xi][tile][C8], M and dM are [xi][tile][K8], U is
// [xi][C][K8] (C8, K8 = channel counts rounded up to a multiple of 8; the extra lanes are never read by the GEMMs),
// each position's block padded to an odd number of cache lines (`positionStride`).
// A padded image is first copied into a scratch [group][row][column][8 lanes], so that every tile load is one
// vector load with no bounds test; outputs go through a scratch of the same form.
//
// The files: WinogradGeometry.swift (this overview, the sizes, the transform matrices), WinogradTransforms.swift
// (the one-dimensional transforms and the tile plumbing), WinogradTiles.swift (the per-image input and output tile
// transforms and their adjoints), WinogradKernels.swift (filter transform, forward, backward, weight gradient by
// rows, the backward's products: BLAS, or narrow kernels for few channels) and WinogradZeroMask.swift (the exact
// zeros of the weight gradient).

/// The sizes of a Winograd F(m x m, 3x3) convolution over NCHW input, with output blocks of m = 3 (tiles of 5) or,
/// for small images where whole-image tiles waste less, m = 5 (tiles of 7).
struct WinogradGeometry: Sendable, Equatable {
    var batch: Int
    var channels: Int
    var height: Int
    var width: Int
    var outChannels: Int
    var padHeight: Int
    var padWidth: Int
    /// Output block edge m: 3, or 5.
    var block: Int

    /// When set, convolutions take this block instead of choosing (for tests of both block sizes).
    nonisolated(unsafe) static var forcedBlock: Int?
    /// When set, the backward's products take the narrow kernels (true, where their shapes allow) or BLAS (false)
    /// instead of choosing (for tests of both).
    nonisolated(unsafe) static var forcedNarrowProducts: Bool?
    /// The backward pass keeps every tile's transforms at once (instead of chunks of images) up to this many
    /// elements.
    nonisolated(unsafe) static var allAtOnceLimit = 1 << 22

    /// `block` nil picks the block with the fewest multiplications (5 only when it saves at least a third).
    init(batch: Int, channels: Int, height: Int, width: Int, outChannels: Int, padding: (Int, Int),
                block: Int? = nil) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.outChannels = outChannels
        (padHeight, padWidth) = padding
        self.block = 3
        if let block = block ?? Self.forcedBlock {
            check(block == 3 || block == 5, "WinogradGeometry: block \(block) is not 3 or 5")
            self.block = block
        } else {
            var five = self
            five.block = 5
            if 3 * five.tilesPerImage * five.positions <= 2 * tilesPerImage * positions { self.block = 5 }
        }
    }

    var outputHeight: Int { height + 2 * padHeight - 2 }
    var outputWidth: Int { width + 2 * padWidth - 2 }
    /// Input tile edge (m + 2) and number of tile positions ((m + 2)^2).
    var tile: Int { block + 2 }
    var positions: Int { tile * tile }
    var tilesHigh: Int { (outputHeight + block - 1) / block }
    var tilesWide: Int { (outputWidth + block - 1) / block }
    var tilesPerImage: Int { tilesHigh * tilesWide }
    /// Rows and columns of the padded input scratch (every tile inside it), and of the output scratch.
    var rows: Int { tilesHigh * block + 2 }
    var columns: Int { tilesWide * block + 2 }
    var outRows: Int { tilesHigh * block }
    var outColumns: Int { tilesWide * block }
    var inGroups: Int { (channels + 7) / 8 }
    var outGroups: Int { (outChannels + 7) / 8 }
    var inLanes: Int { inGroups * 8 }
    var outLanes: Int { outGroups * 8 }
    /// Elements from one tile position of U (and dU) to the next: C x K8, padded (`positionStride`).
    var filterStride: Int { Self.positionStride(channels * outLanes) }
    /// Elements of the transformed filters U.
    var filterCount: Int { positions * filterStride }
    /// Elements from one tile position of V, M, dM or dV to the next, for `tiles` tiles of `lanes` lanes.
    func tileStride(tiles: Int, lanes: Int) -> Int { Self.positionStride(tiles * lanes) }

    /// `count` elements rounded up to an odd number of 16-element blocks (64-byte cache lines of Float). The
    /// transforms read or write all 25 or 49 positions of a tile at once; at strides of a power of two (U of the
    /// C4CNN's layers: 8 KiB to 512 KiB) those streams fall into the same cache set, more of them than the set has
    /// ways, and each access evicted another. An odd number of lines spreads them over the sets: the 5x5 layer's
    /// filter transform took 4.1 -> 2.7 ms in a scratch C benchmark of the same loop (one thread).
    static func positionStride(_ count: Int) -> Int { ((count + 15) / 16 | 1) * 16 }

    /// Images per chunk: transformed tiles (V and M) of about 2^19 elements (2 MiB of Float, an L2 cache), so that
    /// the products read V and the output transform reads M while they are still in the cache, but at least 128
    /// tiles (the products' rows) and at most 512; at least one chunk per thread. Against 2^20 elements and 16 tiles
    /// or more, the C4CNN's 33x33 and 17x17 group convolutions took 10-15 % less (forward and both backward parts,
    /// one thread, 3 alternating runs), the 9x9 one the same.
    func imagesPerChunk(threads: Int) -> Int {
        let perTile = positions * (inLanes + outLanes)
        let targetTiles = Swift.min(512, Swift.max(128, (1 << 19) / perTile))
        var images = Swift.max(1, Swift.min(batch, targetTiles / Swift.max(1, tilesPerImage)))
        var chunks = (batch + images - 1) / images
        if threads > 1 && chunks % threads != 0 {
            chunks = (chunks + threads - 1) / threads * threads
            images = Swift.max(1, (batch + chunks - 1) / chunks)
        }
        return images
    }

    /// True when the transformed tiles of the whole batch are few enough to hold at once (small images): then the
    /// passes run per image and per tile position instead of per chunk of images.
    var allAtOnce: Bool { batch * tilesPerImage * positions * (inLanes + outLanes) <= Self.allAtOnceLimit }

    /// The filter transform G, `tile` x 3, row-major.
    var filterMatrix: [Double] {
        block == 5 ? WinogradMatrices5.filterTransform : WinogradMatrices3.filterTransform
    }

    /// The tiles of one image on `side`, as the C tile loops of Float's F(3x3, 3x3) take them.
    func dispatchedTiles(_ side: WinogradSide, firstTile: Int, chunkTiles: Int) -> CKWinogradTiles {
        let input = side == .input
        let lanes = input ? inLanes : outLanes
        return CKWinogradTiles(firstTile: firstTile, positionStride: tileStride(tiles: chunkTiles, lanes: lanes),
                               tilesHigh: tilesHigh, tilesWide: tilesWide, groups: input ? inGroups : outGroups,
                               lanes: lanes, rows: input ? rows : outRows, columns: input ? columns : outColumns)
    }

    /// Scratch elements one chunk of `images` images needs: V, M and the image-sized tile scratch.
    func scratchCount(images: Int) -> Int {
        let tiles = images * tilesPerImage
        let input = inGroups * rows * columns * 8
        let output = outGroups * outRows * outColumns * 8
        return positions * (tileStride(tiles: tiles, lanes: inLanes) + tileStride(tiles: tiles, lanes: outLanes))
            + Swift.max(input, output)
    }
}

/// The filter transform of F(3x3, 3x3) (G above), row-major, 5 x 3.
enum WinogradMatrices3 {
    static let filterTransform: [Double] = [
        0.5, 0, 0,
        1.0 / 6, 1.0 / 6, 1.0 / 6,
        0.5, -0.5, 0.5,
        1.0 / 6, -1.0 / 3, 2.0 / 3,
        0, 0, 1,
    ]
}

/// The transform matrices of F(5x5, 3x3), row-major, for the interpolation points 0, 1, -1, 2, -2, 1/2 and infinity
/// (the same construction as F(3x3, 3x3) above). The kernels apply them through the factored rows `inputRow5`,
/// `outputRow5` and `filterRow5` and their adjoints; the tests check those against these matrices.
enum WinogradMatrices5 {
    /// B^T, 7 x 7.
    static let inputTransform: [Double] = [
        4, -8, -5, 10, 1, -2, 0,
        0, -4, 4, 9, -1, -2, 0,
        0, -4, 12, -7, -3, 2, 0,
        0, 2, -3, -4, 3, 2, 0,
        0, 2, -5, 0, 5, -2, 0,
        0, 4, 0, -5, 0, 1, 0,
        0, -4, 8, 5, -10, -1, 2,
    ]
    /// A^T, 5 x 7.
    static let outputTransform: [Double] = [
        1, 1, 1, 1, 1, 1, 0,
        0, 1, -1, 2, -2, 0.5, 0,
        0, 1, 1, 4, 4, 0.25, 0,
        0, 1, -1, 8, -8, 0.125, 0,
        0, 1, 1, 16, 16, 0.0625, 1,
    ]
    /// G, 7 x 3.
    static let filterTransform: [Double] = [
        1.0 / 4, 0, 0,
        1.0 / 6, 1.0 / 6, 1.0 / 6,
        1.0 / 18, -1.0 / 18, 1.0 / 18,
        1.0 / 72, 1.0 / 36, 1.0 / 18,
        1.0 / 120, -1.0 / 60, 1.0 / 30,
        32.0 / 45, 16.0 / 45, 8.0 / 45,
        0, 0, 0.5,
    ]
}
