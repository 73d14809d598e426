import Autograd
import Foundation

// MARK: - Rotation of images by any angle

/// The bilinear resampling of an H x W image rotated counter-clockwise by `angle` about its centre
/// ((H - 1) / 2, (W - 1) / 2), as the matrix M of shape (H * W, H * W) with `out = x M` on flattened images.
///
/// Output pixel (i, j) sits at x = j - cx, y = cy - i (y up, so that 90 degrees is `rot90`); it takes the value of
/// the input at the point rotated back by `angle`, interpolated bilinearly from its four neighbours, with zeros
/// outside the image.
public func bilinearRotationMatrix(height: Int, width: Int, angle: Double) -> [Double] {
    let cy = Double(height - 1) / 2, cx = Double(width - 1) / 2
    let (c, s) = (cos(angle), sin(angle))
    let pixels = height * width
    var matrix = [Double](repeating: 0, count: pixels * pixels)
    for i in 0..<height {
        for j in 0..<width {
            let x = Double(j) - cx, y = cy - Double(i)
            // R(-angle) (x, y): the source point.
            let sx = c * x + s * y, sy = -s * x + c * y
            let row = cy - sy, column = cx + sx
            let r0 = Int(row.rounded(.down)), c0 = Int(column.rounded(.down))
            let fr = row - Double(r0), fc = column - Double(c0)
            let out = i * width + j
            for (dr, wr) in [(0, 1 - fr), (1, fr)] {
                for (dc, wc) in [(0, 1 - fc), (1, fc)] {
                    let (r, q) = (r0 + dr, c0 + dc)
                    let weight = wr * wc
                    guard weight > 1e-12, r >= 0, r < height, q >= 0, q < width else { continue }
                    matrix[(r * width + q) * pixels + out] += weight
                }
            }
        }
    }
    return matrix
}

extension Tensor {
    /// This tensor's last two axes rotated counter-clockwise by `angle` (radians) about their centre, by bilinear
    /// interpolation with zeros outside (see `bilinearRotationMatrix`). Any shape (..., H, W); a linear map, so the
    /// gradient is the transposed resampling (through `matmul`). For multiples of 90 degrees `rotated90` is exact.
    public func rotated(by angle: Double) -> Tensor {
        check(rank >= 2, "rotated(by:): needs at least two axes, got shape \(shape)")
        let height = shape[rank - 2], width = shape[rank - 1]
        let matrix = Tensor(shape: [height * width, height * width],
                            scalars: bilinearRotationMatrix(height: height, width: width, angle: angle)
                                .map { Scalar($0) })
        let rows = shape.dropLast(2).reduce(1, *)
        return reshaped([rows, height * width]).matmul(matrix).reshaped(shape)
    }
}
