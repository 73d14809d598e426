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

    // MARK: The backward kernel

    /// The three gradients by direct loops over the output gradient (Double): dx, dW, db of a convolution.
    private func directGradients(_ gy: [Double], _ x: [Double], _ w: [Double], _ g: ConvolutionGeometry,
                                 outChannels: Int) -> [[Double]] {
        let (kh, kw, oh, ow) = (g.kernelHeight, g.kernelWidth, g.outputHeight, g.outputWidth)
        var (dx, dw) = ([Double](repeating: 0, count: x.count), [Double](repeating: 0, count: w.count))
        var db = [Double](repeating: 0, count: outChannels)
        for n in 0..<g.batch { for o in 0..<outChannels { for oy in 0..<oh { for ox in 0..<ow {
            let grad = gy[((n * outChannels + o) * oh + oy) * ow + ox]
            db[o] += grad
            for c in 0..<g.channels { for i in 0..<kh { for j in 0..<kw {
                let iy = oy * g.strideHeight - g.padHeight + i * g.dilationHeight
                let ix = ox * g.strideWidth - g.padWidth + j * g.dilationWidth
                guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { continue }
                let xi = ((n * g.channels + c) * g.height + iy) * g.width + ix
                let wi = ((o * g.channels + c) * kh + i) * kw + j
                dx[xi] += grad * w[wi]
                dw[wi] += grad * x[xi]
            } } }
        } } } }
        return [dx, dw, db]
    }

    /// The one-pass backward writes every element of each gradient it is asked for (the buffers start full of NaN),
    /// for every subset of the three, on wide columns with and without padding, on compact columns one image at a
    /// time (a strided large plane) and one chunk at a time (small planes, stride and dilation), at one and two
    /// threads (two worker slots summing the parameter gradients).
    func testBackwardWritesEachGradientAskedFor() {
        let geometries = [
            ConvolutionGeometry(batch: 3, channels: 2, height: 20, width: 20, kernel: (3, 3), stride: (1, 1),
                                padding: (0, 0), dilation: (1, 1)),
            ConvolutionGeometry(batch: 3, channels: 3, height: 18, width: 17, kernel: (3, 3), stride: (1, 1),
                                padding: (1, 1), dilation: (1, 1)),
            ConvolutionGeometry(batch: 3, channels: 2, height: 40, width: 38, kernel: (3, 3), stride: (2, 2),
                                padding: (1, 1), dilation: (1, 1)),
            ConvolutionGeometry(batch: 5, channels: 3, height: 11, width: 10, kernel: (3, 2), stride: (2, 1),
                                padding: (1, 0), dilation: (2, 1)),
        ]
        XCTAssertEqual(geometries.map(\.usesWideColumns), [true, true, false, false])
        XCTAssertEqual(geometries.map(\.gemmPerImage), [true, true, true, false])
        let savedThreads = Parallel.threads
        defer { Parallel.setThreads(savedThreads) }
        var generator = SeededRandom(seed: 31)
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            for g in geometries {
                let outChannels = 4
                let random = { (count: Int) in (0..<count).map { _ in generator.normal() } }
                let x = random(g.batch * g.inputImageSize), w = random(outChannels * g.columnRows)
                let gy = random(g.batch * outChannels * g.outputPlane)
                let expected = directGradients(gy, x, w, g, outChannels: outChannels)
                for subset in 1..<8 {
                    var (dx, dw, db) = (expected[0].map { _ in Double.nan }, expected[1].map { _ in Double.nan },
                                        expected[2].map { _ in Double.nan })
                    let asked = (0..<3).map { subset & (1 << $0) != 0 }
                    dx.withUnsafeMutableBufferPointer { dx in
                        dw.withUnsafeMutableBufferPointer { dw in
                            db.withUnsafeMutableBufferPointer { db in
                                Double.convolutionBackward(gy, input: x, weight: w,
                                                           gradInput: asked[0] ? dx.baseAddress : nil,
                                                           gradWeight: asked[1] ? dw.baseAddress : nil,
                                                           gradBias: asked[2] ? db.baseAddress : nil,
                                                           outChannels: outChannels, geometry: g)
                            }
                        }
                    }
                    let grads = [dx, dw, db]
                    for (i, name) in ["input", "weight", "bias"].enumerated() {
                        let what = "\(threads) thread(s), \(g), gradients \(asked): grad \(name)"
                        if asked[i] {
                            // relativeError would pass over a NaN (a comparison with NaN is false).
                            XCTAssertFalse(grads[i].contains(where: \.isNaN), "\(what) left unwritten")
                            XCTAssertLessThan(relativeError(grads[i], expected[i]), 1e-12, what)
                        } else {
                            XCTAssertTrue(grads[i].allSatisfy(\.isNaN), "\(what) was written")
                        }
                    }
                }
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
