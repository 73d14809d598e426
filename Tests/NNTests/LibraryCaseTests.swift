import Autograd
import Foundation
import NN
import ReferenceCases
import XCTest

/// The PyTorch cases of ../shared/reference/library pass, every op of its README has a case here, and the layers of
/// those ops keep PyTorch's names and shapes.
final class LibraryCaseTests: XCTestCase {
    func testEveryLibraryCasePasses() throws {
        let urls = try referenceCaseURLs(in: try referenceDirectory("library"))
        XCTAssertGreaterThanOrEqual(urls.count, 25)
        var ops = Set<String>()
        for url in urls {
            let reference = try ReferenceCase(url: url)
            ops.insert(reference.op)
            let outcome = reference.run()
            XCTAssertTrue(outcome.passed, "\(url.lastPathComponent): \(outcome.notes.joined(separator: "; "))")
        }
        for op in ["tanh", "sigmoid", "gelu", "abs", "leaky_relu", "clamp", "softmax", "logsumexp", "avgpool2d",
                   "adaptive_avgpool2d", "layer_norm", "batch_norm2d", "mse_loss", "bce_with_logits", "nll_loss",
                   "reduce", "gather", "index_select"] {
            XCTAssertTrue(ops.contains(op), "no library case for \(op)")
        }
    }

    /// A library case whose output is wrong fails, naming the tensor.
    func testWrongOutputFails() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tanh-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let file = SafetensorsFile(entries: ["input": SafetensorsEntry(shape: [2], values: .f32([0, 1])),
                                             "output": SafetensorsEntry(shape: [2], values: .f32([0, 0.77]))],
                                   metadata: ["op": "tanh"])
        try file.write(to: url)
        let outcome = try ReferenceCase(url: url).run()
        XCTAssertFalse(outcome.passed)
        XCTAssertTrue(outcome.notes.joined().contains("output: relative error"), "\(outcome.notes)")
    }

    // MARK: - Layers

    func testActivationLayersMatchTheirOps() throws {
        var generator = SeededRandom(seed: 5)
        let x = Tensor<Float>.normal(shape: [2, 3, 4], generator: &generator)
        XCTAssertEqual(try Tanh()(x).scalars, x.tanh().scalars)
        XCTAssertEqual(try Sigmoid()(x).scalars, x.sigmoid().scalars)
        XCTAssertEqual(try GELU()(x).scalars, x.gelu().scalars)
        XCTAssertEqual(try GELU(approximate: "tanh")(x).scalars, x.gelu(approximate: "tanh").scalars)
        XCTAssertEqual(try LeakyReLU(negativeSlope: 0.3)(x).scalars, x.leakyRelu(negativeSlope: 0.3).scalars)
        XCTAssertEqual(try Softmax(dim: 1)(x).scalars, x.softmax(axis: 1).scalars)
        XCTAssertEqual(try LogSoftmax(dim: -1)(x).scalars, x.logSoftmax(axis: -1).scalars)
        XCTAssertEqual(try Identity()(x).scalars, x.scalars)
        XCTAssertEqual(try AvgPool2d(kernelSize: 2)(x.reshaped([1, 2, 3, 4])).shape, [1, 2, 1, 2])
        XCTAssertEqual(try AdaptiveAvgPool2d(outputSize: (2, 3))(x.reshaped([1, 2, 3, 4])).shape, [1, 2, 2, 3])
        for layer in [Tanh(), Sigmoid(), GELU(), LeakyReLU(), Softmax(dim: 0), Identity(), AvgPool2d(kernelSize: 2),
                      AdaptiveAvgPool2d(outputSize: 1)] as [Module] {
            XCTAssertEqual(layer.parameterCount, 0)
        }
    }

    func testLayerNormParametersAndShapes() throws {
        let norm = LayerNorm([3, 4])
        XCTAssertEqual(norm.namedParameters.map(\.name), ["weight", "bias"])
        XCTAssertEqual(norm.namedParameters.map(\.parameter.shape), [[3, 4], [3, 4]])
        XCTAssertEqual(LayerNorm(6, elementwiseAffine: false).parameterCount, 0)
        XCTAssertEqual(LayerNorm([6], bias: false).namedParameters.map(\.name), ["weight"])
        var generator = SeededRandom(seed: 6)
        let x = Tensor<Float>.normal(shape: [2, 3, 4], generator: &generator)
        let y = try norm(x)
        XCTAssertEqual(y.scalars, x.layerNorm(normalizedShape: [3, 4], weight: norm.weight!.value,
                                              bias: norm.bias!.value).scalars)
        y.sum().backward()
        XCTAssertNotNil(norm.weight?.grad)
        // In a Sequential the state-dict names are PyTorch's.
        let model = Sequential([Linear(4, 4, generator: &generator), LayerNorm(4), GELU()])
        XCTAssertEqual(model.namedParameters.map(\.name), ["0.weight", "0.bias", "1.weight", "1.bias"])
    }

    func testLayersRejectWrongShapes() {
        XCTAssertThrowsError(try LayerNorm([3, 4])(Tensor<Float>(zeros: [2, 4, 3]))) { error in
            XCTAssertTrue("\(error)".contains("LayerNorm([3, 4])"), "\(error)")
        }
        XCTAssertThrowsError(try AvgPool2d(kernelSize: 3)(Tensor<Float>(zeros: [1, 1, 2, 5])))
        XCTAssertThrowsError(try AvgPool2d(kernelSize: 2)(Tensor<Float>(zeros: [4, 4])))
        XCTAssertThrowsError(try AdaptiveAvgPool2d(outputSize: 2)(Tensor<Float>(zeros: [2, 8])))
        XCTAssertThrowsError(try Softmax(dim: 2)(Tensor<Float>(zeros: [2, 8])))
    }

    func testClipGradientNormOverParameters() throws {
        var generator = SeededRandom(seed: 7)
        let model = Sequential([Linear(3, 2, generator: &generator), Tanh()])
        let x = Tensor<Float>.normal(shape: [4, 3], generator: &generator)
        try model(x).sum().backward()
        let grads = model.parameters().flatMap { $0.grad!.scalars.map(Double.init) }
        let norm = grads.map { $0 * $0 }.reduce(0, +).squareRoot()
        XCTAssertEqual(clipGradientNorm(model, maxNorm: norm / 2), norm, accuracy: 1e-5 * norm)
        let clipped = model.parameters().flatMap { $0.grad!.scalars.map(Double.init) }
        XCTAssertEqual(clipped.map { $0 * $0 }.reduce(0, +).squareRoot(), norm / 2, accuracy: 1e-5 * norm)
    }
}
