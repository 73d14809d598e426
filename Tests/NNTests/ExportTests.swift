@testable import Autograd
import Foundation
import Models
@testable import NN
import XCTest

/// Export of the experiment's models to plain layers: same logits as the model in evaluation mode, only plain
/// layers, a self-describing file that loads back.
final class ExportTests: XCTestCase {
    /// A model of the strong recipe whose batch norms hold non-trivial parameters and running statistics: random
    /// gamma and beta, and a few training-mode passes over random batches.
    private func trainedLooking(_ model: Module, seed: UInt64) throws -> Module {
        var generator = SeededRandom(seed: seed)
        for (_, module) in model.namedModules {
            guard let norm = module as? BatchNorm else { continue }
            norm.weight.assign((0..<norm.channels).map { _ in Float(1 + 0.3 * generator.normal()) })
            norm.bias.assign((0..<norm.channels).map { _ in Float(0.2 * generator.normal()) })
        }
        model.train()
        try withoutGradients {
            for _ in 0..<3 {
                _ = try model(Tensor.uniform(shape: [4, 1, 33, 33], low: 0, high: 1, generator: &generator))
            }
        }
        return model
    }

    private func input(seed: UInt64, count: Int = 3) -> Tensor<Float> {
        var generator = SeededRandom(seed: seed)
        return Tensor.uniform(shape: [count, 1, 33, 33], low: 0, high: 1, generator: &generator)
    }

    private func assertSameLogits(_ model: Module, _ exported: Module, _ what: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        model.eval()
        let x = input(seed: 5)
        let (expected, actual) = try withoutGradients { (try model(x), try exported(x)) }
        XCTAssertEqual(actual.shape, [3, 10], what, file: file, line: line)
        let error = EquivarianceCheck.relativeError(actual, expected)
        // Two float32 runs of a whole model (the exported one sums in another order, with folded weights): the
        // models' yardstick, 1e-4 (../shared/reference/README.md). Measured here: 3e-7 to 6e-7 over five OpenBLAS
        // kernel families.
        XCTAssertLessThanOrEqual(error, 1e-4, "\(what): relative error \(error)", file: file, line: line)
    }

    func testExportedModelsGiveTheSameLogits() throws {
        try assertSameLogits(C4CNN(seed: 1), try C4CNN(seed: 1).exported(), "c4cnn, original")
        try assertSameLogits(D4CNN(seed: 1), try D4CNN(seed: 1).exported(), "d4cnn, original")
        for name in ModelName.allCases {
            let model = try trainedLooking(name.makeStrong(seed: 2), seed: 3)
            // Exported while still in training mode: the export always takes the evaluation-mode function.
            let exported = try name.export(model)
            try assertSameLogits(model, exported, "\(name.rawValue), strong")
        }
    }

    func testExportedModelsHoldOnlyPlainLayers() throws {
        let model = try trainedLooking(ModelName.c4cnn.makeStrong(seed: 4), seed: 5) as! C4CNN
        let exported = try model.exported()
        let architecture = try ExportedModel.architecture(of: exported)
        XCTAssertEqual(architecture.map(\.kind), [
            .conv2d, .relu,
            .conv2d, .maxPool2d, .relu,
            .conv2d, .maxPool2d, .relu,
            .conv2d, .maxPool2d, .relu,
            .conv2d, .relu,
            .flatten, .linear, .relu, .linear, .relu, .linear,
        ])
        let convolutions = architecture.filter { $0.kind == .conv2d }
        XCTAssertEqual(convolutions.map { $0.inputs! }, [1, 32, 64, 128, 256])
        XCTAssertEqual(convolutions.map { $0.outputs! }, [32, 64, 128, 256, 512])
        XCTAssertEqual(architecture[14], PlainLayer(kind: .linear, inputs: 512 * 25, outputs: 256))
        // PyTorch nn.Sequential names, no batch-norm entries left.
        let names = exported.namedParameters.map(\.name)
        XCTAssertEqual(names.first, "0.weight")
        XCTAssertEqual(names.last, "18.bias")
        XCTAssertTrue(exported.namedBuffers.isEmpty)
        // The original model has no activation after the lifting convolution.
        let original = try C4CNN(seed: 4).exported()
        XCTAssertEqual(try ExportedModel.architecture(of: original).prefix(3).map(\.kind),
                       [.conv2d, .conv2d, .maxPool2d])
    }

    /// In evaluation mode the exported model's Winograd convolutions transform their filters once, as the group
    /// layers do; in training mode they transform them at every call and keep nothing.
    func testExportedModelKeepsItsWinogradTransformsInEvaluation() throws {
        let exported = try C4CNN(seed: 2).exported()
        let convs = exported.namedModules.compactMap { $0.module as? Conv2d }
        let x = input(seed: 3, count: 2)
        exported.eval()
        let first = try withoutGradients { try exported(x) }
        let transforms = convs.map { $0.winogradCache.computed }
        XCTAssertEqual(transforms.filter { $0 == 1 }.count, 4, "the four group convolutions: \(transforms)")
        XCTAssertEqual(try withoutGradients { try exported(x) }.scalars, first.scalars)
        XCTAssertEqual(convs.map { $0.winogradCache.computed }, transforms, "transformed again")
        exported.train()
        _ = try exported(x)
        XCTAssertEqual(convs.map { $0.winogradCache.computed }, transforms, "training mode used the cache")
    }

    /// The exported model is still invariant to the group: a check that the filters and the folded pooling are right.
    func testExportedModelIsInvariant() throws {
        let exported = try D4CNN(seed: 6).exported()
        let report = try EquivarianceCheck.invariance(exported, input: input(seed: 7, count: 2), group: .d4)
        // A whole model in float32: the models' yardstick 1e-4 (measured 5e-7 to 8e-7 over five OpenBLAS kernels).
        XCTAssertTrue(report.holds(tolerance: 1e-4), "\(report)")
    }

    func testExportedFileRoundTrips() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("exported-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let model = try trainedLooking(ModelName.c4cnn.makeStrong(seed: 8), seed: 9)
        let exported = try ModelName.c4cnn.saveExport(of: model, preset: "strong", to: url)
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertTrue(ExportedModel.isExported(file))
        XCTAssertEqual(file.metadata["model"], "c4cnn")
        XCTAssertEqual(file.metadata["preset"], "strong")
        XCTAssertEqual(file.metadata["format"], "exported")
        let (loaded, metadata) = try ExportedModel.load(from: url)
        XCTAssertEqual(metadata["model"], "c4cnn")
        XCTAssertFalse(loaded.isTraining)
        let x = input(seed: 10)
        let (a, b) = try withoutGradients { (try exported(x), try loaded(x)) }
        XCTAssertEqual(a.scalars, b.scalars)
        try assertSameLogits(model, loaded, "c4cnn, strong, from file")
    }

    func testFilesThatAreNotExportsAreRejected() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plain-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try C4CNN().save(to: url, metadata: ["model": "c4cnn"])
        XCTAssertThrowsError(try ExportedModel.load(from: url)) { error in
            XCTAssertTrue("\(error)".contains("not an exported model"), "\(error)")
        }
        var damaged = try SafetensorsFile(contentsOf: url)
        damaged.metadata = ["format": "exported", "architecture": "[{\"kind\": \"conv3d\"}]"]
        XCTAssertThrowsError(try ExportedModel.load(damaged, source: "damaged")) { error in
            XCTAssertTrue("\(error)".contains("architecture"), "\(error)")
        }
        // Parameters that do not fit the architecture.
        let exported = try CNN().exported()
        var file = SafetensorsFile()
        for (name, tensor) in exported.stateDict() {
            file.entries[name] = SafetensorsEntry(shape: tensor.shape, values: .f32(tensor.scalars))
        }
        file.entries["0.weight"] = SafetensorsEntry(shape: [1], values: .f32([0]))
        let architecture = try JSONEncoder().encode(try ExportedModel.architecture(of: exported))
        file.metadata = ["format": "exported", "architecture": String(decoding: architecture, as: UTF8.self)]
        XCTAssertThrowsError(try ExportedModel.load(file, source: "misfit")) { error in
            XCTAssertTrue(error is StateDictError, "\(error)")
        }
    }

    func testBatchNormFoldingMatchesConvolutionThenNorm() throws {
        var generator = SeededRandom(seed: 11)
        let conv = Conv2d(2, 3, kernelSize: 3, padding: 1, generator: &generator)
        let norm = BatchNorm(3)
        norm.weight.assign([1.5, -0.5, 0.8])
        norm.bias.assign([0.1, 0.2, -0.3])
        norm.runningMean.value = Tensor(shape: [3], scalars: [0.3, -0.2, 1])
        norm.runningVariance.value = Tensor(shape: [3], scalars: [2, 0.5, 0.1])
        norm.eval()
        let (w, b) = norm.fold(weight: conv.weight.value.detached(), bias: conv.bias?.value.detached())
        let folded = Conv2d.holding(weight: w, bias: b, padding: 1)
        let x = Tensor<Float>.normal(shape: [2, 2, 6, 6], generator: &generator)
        let (expected, actual) = try withoutGradients { (try norm(try conv(x)), try folded(x)) }
        // Two float32 convolutions (then a norm, or with folded weights), each within the ops' yardstick 1e-5 of the
        // exact result (../shared/reference/README.md): 2e-5 apart at most.
        XCTAssertLessThanOrEqual(EquivarianceCheck.relativeError(actual, expected), 2e-5)
    }
}
