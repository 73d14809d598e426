import XCTest
@testable import Autograd

// MARK: - Rounding of the im2col forward convolution
//
// The forward convolution's outputs decide max pools and ReLUs; the further a Float output is from its exact value,
// the more often such a decision differs from the exact one and the gradient goes elsewhere (GradientAccuracyTests
// in NNTests counts that over whole models). The im2col forward sums each output's Cin * 9 (+ 1 bias) terms in
// blocks of at most 128 (`depthBlockedGemm`), each block a chain of its own, instead of in one chain of all of them.
// A chain's rounding error grows with its length (for terms of random sign, as the square root of the sum of the
// partial sums' squares: about k / sqrt(2) roundings of the typical term's size for k terms), so b-term blocks carry
// about sqrt(b / k) of a k-term chain's error: 0.58 for the 289 terms below in blocks of 97.

final class ConvolutionRoundingTests: XCTestCase {
    /// Mean |y - y_exact| of the framework's Float conv2d and of one FMA chain per output over the same terms, for
    /// input (2, cin, 17, 17) and a (16, cin, 3, 3) filter with bias and padding 1 (cin * 9 + 1 terms per output).
    func errors(inChannels cin: Int) -> (framework: Double, chain: Double) {
        var generator = SeededRandom(seed: 7)
        let x = Tensor<Float>.normal(shape: [2, cin, 17, 17], generator: &generator)
        let w = Tensor<Float>.normal(shape: [16, cin, 3, 3], std: 1 / Double(cin * 9).squareRoot(),
                                     generator: &generator)
        let b = Tensor<Float>.normal(shape: [16], generator: &generator)
        let y = x.conv2d(weight: w, bias: b, padding: (1, 1))
        let exact = x.converted(to: Double.self).conv2d(weight: w.converted(to: Double.self),
                                                         bias: b.converted(to: Double.self), padding: (1, 1))
        var frameworkError = 0.0, chainError = 0.0
        let (xs, ws) = (x.scalars, w.scalars)
        for n in 0..<2 {
            for o in 0..<16 {
                for r in 0..<17 {
                    for c in 0..<17 {
                        // One chain: the terms in im2col's order (channel, kernel row, kernel column), then the bias.
                        var sum: Float = 0
                        for i in 0..<cin {
                            for kr in 0..<3 {
                                for kc in 0..<3 {
                                    let (rr, cc) = (r + kr - 1, c + kc - 1)
                                    guard rr >= 0, rr < 17, cc >= 0, cc < 17 else { continue }
                                    sum = sum.addingProduct(ws[((o * cin + i) * 3 + kr) * 3 + kc],
                                                            xs[((n * cin + i) * 17 + rr) * 17 + cc])
                                }
                            }
                        }
                        sum += b.scalars[o]
                        let index = ((n * 16 + o) * 17 + r) * 17 + c
                        frameworkError += abs(Double(y.scalars[index]) - exact.scalars[index])
                        chainError += abs(Double(sum) - exact.scalars[index])
                    }
                }
            }
        }
        let count = Double(y.count)
        return (frameworkError / count, chainError / count)
    }

    func testForwardSumsInShortChains() {
        for cin in [32, 64] {
            let (framework, chain) = errors(inChannels: cin)
            // sqrt(b / k) = 0.58 (289 terms, blocks of 97) and 0.45 (577 terms, blocks of 116); 0.8 leaves room
            // for how far a BLAS kernel's order differs from one chain, and still fails for one long chain.
            XCTAssertGreaterThan(framework, 0, "cin \(cin): Float equals the Double sums exactly")
            XCTAssertLessThan(framework / chain, 0.8, "cin \(cin): mean error \(framework), one chain's \(chain)")
        }
    }
}
