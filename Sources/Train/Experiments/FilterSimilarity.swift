import Autograd
import Foundation

/// How far a layer's filters are rotated copies of one another: for each filter, the best correlation with a
/// quarter turn (90, 180 or 270 degrees) of another filter of the layer. 1 means some other filter, turned, is this
/// one up to a positive factor; independent random filters score clearly less.
public enum FilterSimilarity {
    /// The correlation used: the cosine of the angle between the two filters taken as vectors, each with its own
    /// mean removed (Pearson's correlation of their values); 0 when either is constant.
    public static func correlation(_ a: [Float], _ b: [Float]) -> Double {
        check(a.count == b.count, "FilterSimilarity: filters of \(a.count) and \(b.count) values")
        let ma = a.reduce(0.0) { $0 + Double($1) } / Double(a.count)
        let mb = b.reduce(0.0) { $0 + Double($1) } / Double(b.count)
        var ab = 0.0, aa = 0.0, bb = 0.0
        for i in a.indices {
            let x = Double(a[i]) - ma, y = Double(b[i]) - mb
            ab += x * y; aa += x * x; bb += y * y
        }
        return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : 0
    }

    /// For every filter of `weights` (out, in, k, k), the best correlation with a quarter turn (rot90 on the last
    /// two axes, k = 1, 2, 3) of any other filter; needs at least two square filters.
    public static func bestRotatedMatch(_ weights: Tensor<Float>) -> [Double] {
        check(weights.rank == 4 && weights.shape[2] == weights.shape[3] && weights.shape[0] >= 2,
              "FilterSimilarity: expected at least two square filters (out, in, k, k), got \(weights.shape)")
        let count = weights.shape[0], size = weights.count / count
        let filters = (0..<count).map { Array(weights.scalars[($0 * size)..<(($0 + 1) * size)]) }
        let turned = (1...3).map { weights.rotated90($0).scalars }
        return (0..<count).map { i in
            var best = -Double.infinity
            for j in 0..<count where j != i {
                for t in turned {
                    best = max(best, correlation(filters[i], Array(t[(j * size)..<((j + 1) * size)])))
                }
            }
            return best
        }
    }

    /// The mean of `bestRotatedMatch` over the layer's filters: the layer's one number.
    public static func meanBestRotatedMatch(_ weights: Tensor<Float>) -> Double {
        let best = bestRotatedMatch(weights)
        return best.reduce(0, +) / Double(best.count)
    }
}
