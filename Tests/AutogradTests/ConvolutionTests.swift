import XCTest
@testable import Autograd

final class ConvolutionTests: XCTestCase {
    // MARK: Reference cases

    private func checkReference(_ name: String) throws {
        let c = try loadReferenceCase(name)
        let stride = try c.intArgument("stride", count: 2)
        let padding = try c.intArgument("padding", count: 2)
        let dilation = try c.intArgument("dilation", count: 2)
        let x = try c.tensor("input").tensor.requiringGradient()
        let w = try c.tensor("weight").tensor.requiringGradient()
        let b = try c.tensor("bias").tensor.requiringGradient()
        let y = x.conv2d(weight: w, bias: b, stride: (stride[0], stride[1]), padding: (padding[0], padding[1]),
                         dilation: (dilation[0], dilation[1]))
        assertMatches(y, try c.tensor("output"), tolerance: 1e-5, "\(name) output")
        y.backward(seed: try c.tensor("grad.output").tensor)
        assertMatches(x.grad, try c.tensor("grad.input"), tolerance: 1e-4, "\(name) grad.input")
        assertMatches(w.grad, try c.tensor("grad.weight"), tolerance: 1e-4, "\(name) grad.weight")
        assertMatches(b.grad, try c.tensor("grad.bias"), tolerance: 1e-4, "\(name) grad.bias")
    }

    func testConv2dReference0() throws { try checkReference("conv2d_0") }
    func testConv2dReference1() throws { try checkReference("conv2d_1") }
    func testConv2dReference2() throws { try checkReference("conv2d_2") }

    // MARK: Forward against a direct loop

    private struct Config {
        var input: [Int]
        var weight: [Int]
        var stride = (1, 1), padding = (0, 0), dilation = (1, 1)
        var bias = true
    }

    private let configs: [Config] = [
        Config(input: [2, 2, 7, 6], weight: [3, 2, 2, 3], stride: (2, 1), padding: (1, 2), dilation: (1, 2)),
        Config(input: [1, 3, 6, 7], weight: [2, 3, 3, 2], stride: (2, 2), padding: (0, 1), dilation: (2, 1)),
        Config(input: [2, 1, 5, 5], weight: [2, 1, 3, 3], stride: (1, 1), padding: (1, 1), bias: false),
        Config(input: [1, 2, 4, 5], weight: [2, 2, 1, 1], stride: (2, 3)),
        // A kernel wider than the input, made to fit by the padding.
        Config(input: [1, 1, 3, 2], weight: [1, 1, 2, 4], padding: (0, 1)),
    ]

    private func directConv(_ x: Tensor<Double>, _ w: Tensor<Double>, _ b: Tensor<Double>?, _ c: Config)
        -> (shape: [Int], values: [Double]) {
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let oh = (h + 2 * c.padding.0 - c.dilation.0 * (kh - 1) - 1) / c.stride.0 + 1
        let ow = (wd + 2 * c.padding.1 - c.dilation.1 * (kw - 1) - 1) / c.stride.1 + 1
        var out = [Double]()
        for i in 0..<n { for o in 0..<cout { for y in 0..<oh { for xo in 0..<ow {
            var s = b?.scalars[o] ?? 0
            for ci in 0..<cin { for p in 0..<kh { for q in 0..<kw {
                let iy = y * c.stride.0 - c.padding.0 + p * c.dilation.0
                let ix = xo * c.stride.1 - c.padding.1 + q * c.dilation.1
                if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                    s += x.scalars[((i * cin + ci) * h + iy) * wd + ix] * w.scalars[((o * cin + ci) * kh + p) * kw + q]
                }
            } } }
            out.append(s)
        } } } }
        return ([n, cout, oh, ow], out)
    }

    func testConv2dForwardMatchesDirectLoop() {
        var g = SeededRandom(seed: 10)
        for c in configs {
            let x = randomTensor(c.input, &g), w = randomTensor(c.weight, &g)
            let b = c.bias ? randomTensor([c.weight[0]], &g) : nil
            let y = x.conv2d(weight: w, bias: b, stride: c.stride, padding: c.padding, dilation: c.dilation)
            let expected = directConv(x, w, b, c)
            XCTAssertEqual(y.shape, expected.shape, "\(c)")
            if y.shape == expected.shape {
                XCTAssertLessThan(relativeError(y.scalars, expected.values), 1e-12, "\(c)")
            }
        }
    }

    // MARK: Finite differences

    func testConv2dGradients() {
        var g = SeededRandom(seed: 11)
        for c in configs {
            var inputs = [randomTensor(c.input, &g), randomTensor(c.weight, &g)]
            if c.bias { inputs.append(randomTensor([c.weight[0]], &g)) }
            checkGradients(inputs, "conv2d \(c)") { t in
                t[0].conv2d(weight: t[1], bias: t.count > 2 ? t[2] : nil, stride: c.stride, padding: c.padding,
                            dilation: c.dilation)
            }
        }
    }

    func testConv2dGradientOnlyForWeight() {
        var g = SeededRandom(seed: 12)
        let x = randomTensor([1, 2, 4, 4], &g)
        let w = randomTensor([2, 2, 3, 3], &g).requiringGradient()
        x.conv2d(weight: w, padding: (1, 1)).sum().backward()
        XCTAssertEqual(w.grad?.shape, [2, 2, 3, 3])
    }

    func testConv2dEmptyBatch() {
        let y = Tensor<Float>(zeros: [0, 2, 5, 5]).conv2d(weight: Tensor(zeros: [3, 2, 3, 3]))
        XCTAssertEqual(y.shape, [0, 3, 3, 3])
    }
}
