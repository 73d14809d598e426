import XCTest
@testable import Autograd

final class MatmulTests: XCTestCase {
    // MARK: Reference cases

    func testMatmulReference() throws {
        let c = try loadReferenceCase("matmul")
        let a = try c.tensor("a").tensor.requiringGradient()
        let b = try c.tensor("b").tensor.requiringGradient()
        let y = a.matmul(b)
        assertMatches(y, try c.tensor("output"), tolerance: 1e-5, "matmul output")
        y.backward(seed: try c.tensor("grad.output").tensor)
        assertMatches(a.grad, try c.tensor("grad.a"), tolerance: 1e-4, "matmul grad.a")
        assertMatches(b.grad, try c.tensor("grad.b"), tolerance: 1e-4, "matmul grad.b")
    }

    func testLinearReference() throws {
        let c = try loadReferenceCase("linear")
        let x = try c.tensor("input").tensor.requiringGradient()
        let w = try c.tensor("weight").tensor.requiringGradient()
        let b = try c.tensor("bias").tensor.requiringGradient()
        let y = Tensor.linear(x, weight: w, bias: b)
        assertMatches(y, try c.tensor("output"), tolerance: 1e-5, "linear output")
        y.backward(seed: try c.tensor("grad.output").tensor)
        assertMatches(x.grad, try c.tensor("grad.input"), tolerance: 1e-4, "linear grad.input")
        assertMatches(w.grad, try c.tensor("grad.weight"), tolerance: 1e-4, "linear grad.weight")
        assertMatches(b.grad, try c.tensor("grad.bias"), tolerance: 1e-4, "linear grad.bias")
    }

    // MARK: Forward against a naive product

    /// Naive (..., m, k) x (k, n) or equal-batch product.
    private func naiveProduct(_ a: Tensor<Double>, _ b: Tensor<Double>) -> [Double] {
        let (m, k, n) = (a.shape[a.rank - 2], a.shape[a.rank - 1], b.shape[b.rank - 1])
        let batch = a.count / (m * k)
        var out = [Double](repeating: 0, count: batch * m * n)
        for t in 0..<batch {
            let bBase = b.rank == 2 ? 0 : t * k * n
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k { s += a.scalars[t * m * k + i * k + p] * b.scalars[bBase + p * n + j] }
                    out[t * m * n + i * n + j] = s
                }
            }
        }
        return out
    }

    func testMatmulForwardShapes() {
        var g = SeededRandom(seed: 1)
        for (sa, sb) in [([3, 4], [4, 5]), ([2, 3, 4], [2, 4, 2]), ([2, 2, 3, 4], [4, 5]), ([2, 2, 3, 4], [2, 2, 4, 1])] {
            let a = randomTensor(sa, &g), b = randomTensor(sb, &g)
            let y = a.matmul(b)
            XCTAssertEqual(y.shape, Array(sa.dropLast()) + [sb.last!])
            XCTAssertLessThan(relativeError(y.scalars, naiveProduct(a, b)), 1e-12, "\(sa) x \(sb)")
        }
    }

    func testMatmulEmptyInnerDimension() {
        let a = Tensor<Double>(zeros: [2, 0]), b = Tensor<Double>(zeros: [0, 3])
        XCTAssertEqual(a.matmul(b).scalars, [Double](repeating: 0, count: 6))
    }

    // MARK: Finite differences

    func testMatmulGradients() {
        var g = SeededRandom(seed: 2)
        checkGradients([randomTensor([3, 4], &g), randomTensor([4, 5], &g)], "matmul 2-D") { $0[0].matmul($0[1]) }
        checkGradients([randomTensor([2, 3, 4], &g), randomTensor([2, 4, 2], &g)], "matmul batched") {
            $0[0].matmul($0[1])
        }
        checkGradients([randomTensor([2, 3, 4], &g), randomTensor([4, 5], &g)], "matmul batched x 2-D") {
            $0[0].matmul($0[1])
        }
    }

    func testLinearGradients() {
        var g = SeededRandom(seed: 3)
        checkGradients([randomTensor([4, 5], &g), randomTensor([3, 5], &g), randomTensor([3], &g)], "linear") {
            Tensor.linear($0[0], weight: $0[1], bias: $0[2])
        }
        checkGradients([randomTensor([2, 3, 5], &g), randomTensor([2, 5], &g)], "linear without bias, rank 3") {
            Tensor.linear($0[0], weight: $0[1], bias: nil)
        }
    }

    func testLinearMatchesMatmul() {
        var g = SeededRandom(seed: 4)
        let x = randomTensor([4, 5], &g), w = randomTensor([3, 5], &g), b = randomTensor([3], &g)
        let y = Tensor.linear(x, weight: w, bias: b)
        let expected = x.matmul(w.transposed()) + b
        XCTAssertLessThan(relativeError(y.scalars, expected.scalars), 1e-12)
    }

    /// beta = 0 overwrites C (cleared by the wrapper and run with beta = 1, or, for Float's small products on
    /// OpenBLAS's AVX-512 kernels, written by BLAS's small-matrix kernels): every element of the m x n block is the
    /// product whatever C held before (NaN included), the columns between n and ldc are untouched, and beta = 1 still
    /// adds to C. Float and Double, each transpose, a small product (5 x 7 x 3) and one above OpenBLAS's small-matrix
    /// bound (120 x 90 x 100). Small integers: the sums are exact in any order.
    func testGemmWithZeroBetaOverwritesOnlyTheBlock() {
        func check<T: TensorScalar & BinaryFloatingPoint>(_: T.Type) {
            for (m, n, k, ldc) in [(5, 7, 3, 10), (120, 90, 100, 95)] {
                for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                    let what = "\(T.self) \(m)x\(n)x\(k) transA \(transA) transB \(transB)"
                    let a = (0..<(m * k)).map { T($0 % 5) - 2 }
                    let b = (0..<(k * n)).map { T($0 % 7) * 0.5 - 1 }
                    // op(A)[i][p] and op(B)[p][j] from their stored layouts.
                    func opA(_ i: Int, _ p: Int) -> T { transA ? a[p * m + i] : a[i * k + p] }
                    func opB(_ p: Int, _ j: Int) -> T { transB ? b[j * k + p] : b[p * n + j] }
                    var expected = [T](repeating: 0, count: m * n)
                    for i in 0..<m {
                        for j in 0..<n {
                            for p in 0..<k { expected[i * n + j] += opA(i, p) * opB(p, j) }
                        }
                    }
                    var c = [T](repeating: .nan, count: m * ldc)
                    for i in 0..<m { for j in n..<ldc { c[i * ldc + j] = T(100 + i * ldc + j) } }
                    T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a,
                           lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: 0, c: &c, ldc: ldc)
                    for i in 0..<m {
                        XCTAssertEqual(Array(c[(i * ldc)..<(i * ldc + n)]), Array(expected[(i * n)..<(i * n + n)]),
                                       "\(what): row \(i)")
                        for j in n..<ldc {
                            XCTAssertEqual(c[i * ldc + j], T(100 + i * ldc + j), "\(what): gap at \(i), \(j)")
                        }
                    }
                    T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a,
                           lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: 1, c: &c, ldc: ldc)
                    for i in 0..<m {
                        XCTAssertEqual(Array(c[(i * ldc)..<(i * ldc + n)]),
                                       expected[(i * n)..<(i * n + n)].map { 2 * $0 }, "\(what): beta 1, row \(i)")
                    }
                }
            }
        }
        check(Float.self)
        check(Double.self)
    }
}
