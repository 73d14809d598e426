import Autograd
import Foundation
import NN
import XCTest

/// A layer given an input of the wrong shape throws a `ShapeError` that states the expected and the given shape.
final class ShapeErrorTests: XCTestCase {
    private func expect(_ layer: Module, _ shape: [Int], _ message: String, line: UInt = #line) {
        XCTAssertThrowsError(try layer(Tensor(zeros: shape)), line: line) { error in
            XCTAssertTrue(error is ShapeError, "\(error)", line: line)
            XCTAssertEqual("\(error)", message, line: line)
        }
    }

    func testLayersStateExpectedAndGivenShapes() {
        var g = SeededRandom(seed: 1)
        let linear = Linear(6, 4, generator: &g)
        expect(linear, [2, 5], "Linear(6, 4): expected an input of shape (N, 6), got [2, 5]")
        expect(linear, [6], "Linear(6, 4): expected an input of shape (N, 6), got [6]")
        expect(linear, [2, 3, 6], "Linear(6, 4): expected an input of shape (N, 6), got [2, 3, 6]")

        let conv = Conv2d(3, 8, kernelSize: 5, padding: 1, generator: &g)
        expect(conv, [1, 2, 9, 9], "Conv2d(3, 8): expected an input of shape (N, 3, H, W) with H, W >= 3, got [1, 2, 9, 9]")
        expect(conv, [1, 3, 2, 9], "Conv2d(3, 8): expected an input of shape (N, 3, H, W) with H, W >= 3, got [1, 3, 2, 9]")
        expect(conv, [3, 9, 9], "Conv2d(3, 8): expected an input of shape (N, 3, H, W) with H, W >= 3, got [3, 9, 9]")

        let lifting = LiftingConv2d(1, 4, kernelSize: 3, group: .c4, generator: &g)
        expect(lifting, [2, 2, 8, 8], "LiftingConv2d(1, 4): expected an input of shape (N, 1, H, W) with H, W >= 3, got [2, 2, 8, 8]")
        expect(lifting, [2, 1, 4, 8, 8], "LiftingConv2d(1, 4): expected an input of shape (N, 1, H, W) with H, W >= 3, got [2, 1, 4, 8, 8]")

        let group = GroupConv2d(4, 2, kernelSize: 3, padding: 1, group: .c4, generator: &g)
        expect(group, [1, 4, 8, 8, 8], "GroupConv2d(4, 2, C4): expected an input of shape (N, 4, 4, H, W), got [1, 4, 8, 8, 8]")
        expect(group, [1, 3, 4, 8, 8], "GroupConv2d(4, 2, C4): expected an input of shape (N, 4, 4, H, W), got [1, 3, 4, 8, 8]")
        expect(group, [1, 4, 8, 8], "GroupConv2d(4, 2, C4): expected an input of shape (N, 4, 4, H, W), got [1, 4, 8, 8]")
        let d4 = GroupConv2d(2, 2, kernelSize: 3, group: .d4, generator: &g)
        expect(d4, [1, 2, 4, 8, 8], "GroupConv2d(2, 2, D4): expected an input of shape (N, 2, 8, H, W), got [1, 2, 4, 8, 8]")

        let pooling = GroupPooling(group: .c4)
        expect(pooling, [1, 2, 8, 5, 5], "GroupPooling(C4): expected an input of shape (N, C, 4, S, S), got [1, 2, 8, 5, 5]")
        expect(pooling, [1, 2, 4, 5, 6], "GroupPooling(C4): expected an input of shape (N, C, 4, S, S), got [1, 2, 4, 5, 6]")

        let isotropic = IsotropicConv2d(2, 3, generator: &g)
        expect(isotropic, [1, 3, 5, 5], "IsotropicConv2d(2, 3): expected an input of shape (N, 2, H, W) with H, W >= 3, got [1, 3, 5, 5]")

        expect(BatchNorm(4), [2, 3, 5, 5], "BatchNorm(4): expected an input of shape (N, 4, ...), got [2, 3, 5, 5]")
        expect(MaxPool2d(kernelSize: 3, stride: 2, padding: 1), [1, 2, 0, 5],
               "MaxPool2d: expected an input of shape (N, C, H, W) with H, W >= 1, got [1, 2, 0, 5]")
        expect(MaxPool3d(kernelSize: (1, 3, 3), stride: (1, 2, 2)), [1, 2, 4, 5],
               "MaxPool3d: expected an input of shape (N, C, D, H, W) with D >= 1, H >= 3, W >= 3, got [1, 2, 4, 5]")

        // Inside a model the first layer that cannot take its input reports.
        let model = Sequential(Conv2d(1, 2, kernelSize: 3, generator: &g), ReLU(), Flatten(), Linear(18, 10, generator: &g))
        XCTAssertNoThrow(try model(Tensor(zeros: [2, 1, 5, 5])))
        expect(model, [2, 1, 6, 6], "Linear(18, 10): expected an input of shape (N, 18), got [2, 32]")
        Tape.current.reset()  // what the convolution recorded before the failure (the trainer discards it too)
    }
}
