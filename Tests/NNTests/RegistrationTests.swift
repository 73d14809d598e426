import Autograd
import Models
import NN
import Train
import XCTest

// MARK: - Modules a user writes without listing anything

/// Two layers and a free parameter, none of them listed by hand.
private final class UserModel: Module {
    let hidden = Linear(3, 5)
    let output = Linear(5, 2)
    let scale = Parameter(Tensor(repeating: 1, shape: [2]))

    override func forward(_ input: Tensor<Float>) throws -> Tensor<Float> {
        try output(hidden(input).relu()) * scale.value
    }
}

/// Every kind of stored property discovery handles, plus ones it must leave alone.
private final class Assorted: Module {
    let count = 3
    let absent: Linear? = nil
    let present: Linear? = Linear(2, 2, bias: false)
    let blocks: [Module] = [Linear(2, 2), ReLU(), Linear(2, 1)]
    let taps: [Parameter] = [Parameter(Tensor(zeros: [1])), Parameter(Tensor(zeros: [2]))]
    let statistic = Buffer(Tensor(zeros: [4]))
    let swiftName = Linear(1, 1, bias: false)
    lazy var later = Linear(1, 2, bias: false)
    /// A reference to a layer that lives elsewhere: mapped to "" below, so not registered.
    let borrowed: Linear
    init(borrowing layer: Linear) {
        borrowed = layer
        super.init()
    }
    override var stateDictNames: [String: String] { ["swiftName": "torch_name", "borrowed": ""] }
}

/// A module that lists its parameters by hand: the explicit form still wins.
private final class Explicit: Module {
    let a = Parameter(Tensor(zeros: [1]))
    let b = Parameter(Tensor(zeros: [2]))
    override var localParameters: [(name: String, parameter: Parameter)] { [("only_b", b)] }
}

/// A subclass adds properties after its superclass's.
private class Base: Module {
    let first = Linear(1, 1)
}
private final class Derived: Base {
    let second = Linear(1, 1)
}

final class RegistrationTests: XCTestCase {
    /// Named by property name; a module's own parameters before its children's, as PyTorch orders them.
    func testStoredPropertiesAreRegisteredByName() {
        XCTAssertEqual(UserModel().namedParameters.map(\.name),
                       ["scale", "hidden.weight", "hidden.bias", "output.weight", "output.bias"])
        XCTAssertEqual(UserModel().parameterCount, 3 * 5 + 5 + 5 * 2 + 2 + 2)
    }

    func testOptionalsArraysLazyRenamedAndUnregisteredProperties() {
        let model = Assorted(borrowing: Linear(7, 7))
        _ = model.later
        XCTAssertEqual(model.namedParameters.map(\.name),
                       ["taps.0", "taps.1", "present.weight", "blocks.0.weight", "blocks.0.bias", "blocks.2.weight",
                        "blocks.2.bias", "torch_name.weight", "later.weight"])
        XCTAssertEqual(model.namedBuffers.map(\.name), ["statistic"])
        XCTAssertEqual(model.namedModules.map(\.name),
                       ["", "present", "blocks.0", "blocks.1", "blocks.2", "torch_name", "later"])
    }

    func testExplicitListsStillOverrideDiscovery() {
        XCTAssertEqual(Explicit().namedParameters.map(\.name), ["only_b"])
    }

    func testSuperclassPropertiesComeFirst() {
        XCTAssertEqual(Derived().namedParameters.map(\.name), ["first.weight", "first.bias", "second.weight",
                                                               "second.bias"])
    }

    func testSharedModuleIsListedOnce() {
        let shared = Linear(2, 2)
        let model = Sequential(shared, ReLU(), shared)
        XCTAssertEqual(model.namedParameters.map(\.name), ["0.weight", "0.bias"])
    }

    /// The strong variants' batch norms keep PyTorch's names (running_mean, running_var, lifting_norm, first_norm).
    func testBatchNormAndStrongModelNamesArePyTorchs() {
        XCTAssertEqual(BatchNorm(3).stateDict().keys.sorted(), ["bias", "running_mean", "running_var", "weight"])
        let c4 = C4CNN(batchNorm: true, dropout: 0.2).stateDict().keys
        XCTAssertTrue(c4.contains("lifting_norm.running_var"))
        XCTAssertTrue(c4.contains("groupconv_encoder.1.running_mean"))
        XCTAssertTrue(c4.contains("head.1.weight"))
        let cnn = CNN(batchNorm: true).namedParameters.map(\.name)
        XCTAssertEqual(Array(cnn.prefix(4)), ["first_conv.weight", "first_conv.bias", "first_norm.weight",
                                              "first_norm.bias"])
    }

    /// A module that lists nothing by hand trains: AdamW built from it sees every parameter and lowers the loss.
    func testUnlistedModuleTrains() throws {
        var generator = SeededRandom(seed: 11)
        let model = UserModel()
        let x = Tensor<Float>.uniform(shape: [16, 3], low: -1, high: 1, generator: &generator)
        let targets = (0..<16).map { x.scalars[3 * $0] > 0 ? 1 : 0 }
        let optimizer = AdamW(model, learningRate: 0.05, weightDecay: 0)
        XCTAssertEqual(optimizer.parameters.count, 5)
        let before = model.parameters().map(\.value.scalars)
        let first = try model(x).crossEntropy(targets: targets).item
        var last = first
        for _ in 0..<30 {
            model.zeroGradients()
            let loss = try model(x).crossEntropy(targets: targets)
            loss.backward()
            optimizer.step()
            last = loss.item
        }
        XCTAssertLessThan(last, 0.5 * first)
        for (old, new) in zip(before, model.parameters().map(\.value.scalars)) { XCTAssertNotEqual(old, new) }
    }
}
