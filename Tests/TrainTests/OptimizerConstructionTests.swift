import Autograd
import NN
import Train
import XCTest

/// Optimisers built the ways PyTorch users write them, and layers built without a generator.
final class OptimizerConstructionTests: XCTestCase {
    /// A small model, its parameters drawn from `seed`, and a gradient from one backward pass.
    private func modelWithGradient(seed: UInt64) throws -> Sequential {
        var generator = SeededRandom(seed: seed)
        let model = Sequential(Linear(3, 4, generator: &generator), ReLU(), Linear(4, 2, generator: &generator))
        let x = Tensor<Float>.uniform(shape: [5, 3], low: -1, high: 1, generator: &generator)
        try model(x).crossEntropy(targets: [0, 1, 1, 0, 1]).backward()
        return model
    }

    func testAdamWFromAModuleOrParametersStepsAsTheNamedForm() throws {
        let named = try modelWithGradient(seed: 4), fromModule = try modelWithGradient(seed: 4)
        let fromList = try modelWithGradient(seed: 4)
        let torchModule = try modelWithGradient(seed: 4), torchList = try modelWithGradient(seed: 4)
        let optimizers: [Optimizer] = [
            AdamW(parameters: named.namedParameters, learningRate: 0.01),
            AdamW(fromModule, learningRate: 0.01),
            AdamW(fromList.parameters(), learningRate: 0.01),
            AdamW(torchModule, lr: 0.01),
            AdamW(torchList.parameters(), lr: 0.01),
        ]
        optimizers.forEach { $0.step() }
        XCTAssertEqual(optimizers[1].parameters.map(\.name), named.namedParameters.map(\.name))
        XCTAssertEqual(optimizers[2].parameters.map(\.name), ["0", "1", "2", "3"])
        let expected = named.parameters().map(\.value.scalars)
        XCTAssertNotEqual(expected, try modelWithGradient(seed: 4).parameters().map(\.value.scalars))
        XCTAssertEqual(fromModule.parameters().map(\.value.scalars), expected)
        XCTAssertEqual(fromList.parameters().map(\.value.scalars), expected)
        XCTAssertEqual(torchModule.parameters().map(\.value.scalars), expected)
        XCTAssertEqual(torchList.parameters().map(\.value.scalars), expected)
    }

    func testSGDFromAModuleOrParameters() throws {
        let named = try modelWithGradient(seed: 5), fromModule = try modelWithGradient(seed: 5)
        let fromList = try modelWithGradient(seed: 5)
        SGD(parameters: named.namedParameters, learningRate: 0.1, momentum: 0.9).step()
        SGD(fromModule, learningRate: 0.1, momentum: 0.9).step()
        let list = SGD(fromList.parameters(), learningRate: 0.1, momentum: 0.9)
        list.step()
        let torchModule = try modelWithGradient(seed: 5), torchList = try modelWithGradient(seed: 5)
        SGD(torchModule, lr: 0.1, momentum: 0.9).step()
        SGD(torchList.parameters(), lr: 0.1, momentum: 0.9).step()
        XCTAssertEqual(torchModule.parameters().map(\.value.scalars), named.parameters().map(\.value.scalars))
        XCTAssertEqual(torchList.parameters().map(\.value.scalars), named.parameters().map(\.value.scalars))
        XCTAssertEqual(fromModule.parameters().map(\.value.scalars), named.parameters().map(\.value.scalars))
        XCTAssertEqual(fromList.parameters().map(\.value.scalars), named.parameters().map(\.value.scalars))
        XCTAssertEqual(list.stateTensors().keys.sorted(), (0..<4).map { "momentum_buffer.\($0)" })
    }

    /// Layers without a generator draw from the global one: `manualSeed` makes them repeat, and the stream is the
    /// one an explicit generator with that seed gives.
    func testLayersWithoutAGeneratorUseTheSeededGlobalGenerator() {
        manualSeed(42)
        let a = Linear(3, 4), c = Conv2d(2, 3, kernelSize: 3)
        manualSeed(42)
        let b = Linear(3, 4), d = Conv2d(2, 3, kernelSize: 3)
        XCTAssertEqual(a.weight.value.scalars, b.weight.value.scalars)
        XCTAssertEqual(c.weight.value.scalars, d.weight.value.scalars)
        let e = Linear(3, 4)
        XCTAssertNotEqual(e.weight.value.scalars, a.weight.value.scalars, "the global generator moves on")
        var generator = SeededRandom(seed: 42)
        let explicit = Linear(3, 4, generator: &generator)
        XCTAssertEqual(explicit.weight.value.scalars, a.weight.value.scalars)
        XCTAssertEqual(explicit.bias?.value.scalars, a.bias?.value.scalars)
        manualSeed(SeededRandom.defaultGlobalSeed)
        let group = GroupConv2d(2, 2, kernelSize: 3), lifting = LiftingConv2d(1, 2, kernelSize: 3)
        XCTAssertEqual(group.weight.shape, [2, 2, 4, 3, 3])
        XCTAssertEqual(lifting.weight.shape, [2, 1, 3, 3])
        XCTAssertEqual(IsotropicConv2d(1, 2).weight.shape, [2, 1, 2])
    }
}
