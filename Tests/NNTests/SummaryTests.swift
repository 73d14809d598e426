import Autograd
import Models
import NN
import XCTest

final class SummaryTests: XCTestCase {
    func testSummaryOfTheC4CNN() throws {
        let model = C4CNN()
        let summary = try model.summary(inputShape: [2, 1, 33, 33])
        func row(_ name: String) throws -> ModelSummary.Row {
            try XCTUnwrap(summary.rows.first { $0.name == name }, name)
        }
        XCTAssertEqual(try row("").outputShape, [2, 10])
        XCTAssertEqual(try row("").type, "C4CNN")
        XCTAssertEqual(try row("liftingconv").outputShape, [2, 8, 4, 33, 33])
        XCTAssertEqual(try row("liftingconv").parameterCount, 8 * 1 * 3 * 3 + 8)
        XCTAssertEqual(try row("groupconv_encoder.2").outputShape, [2, 8 * 2, 4, 17, 17])
        XCTAssertEqual(try row("groupconv_encoder.9").parameterCount, 128 * 64 * 4 * 3 * 3 + 128)
        XCTAssertEqual(try row("pooling").outputShape, [2, 128, 5, 5])
        XCTAssertEqual(try row("head.4").outputShape, [2, 10])
        XCTAssertEqual(try row("head").parameterCount, 0)
        XCTAssertEqual(summary.rows.map(\.parameterCount).reduce(0, +), model.parameterCount)
        XCTAssertEqual(summary.totalParameters, model.parameterCount)
        XCTAssertTrue(model.isTraining, "the summary restores the mode")
        let text = "\(summary)"
        XCTAssertTrue(text.contains("├─liftingconv (LiftingConv2d)"), text)
        XCTAssertTrue(text.contains("[2, 8, 4, 33, 33]"), text)
        XCTAssertTrue(text.contains("Total params: 1,220,010"), text)
    }

    func testSummaryCountsBuffersAndPassesShapeErrorsOn() throws {
        let model = CNN(batchNorm: true)
        let summary = try model.summary(inputShape: [1, 1, 33, 33])
        XCTAssertEqual(summary.bufferScalars, 2 * (8 + 16 + 32 + 64 + 128))
        XCTAssertEqual(summary.rows.first { $0.name == "convs.1" }?.type, "BatchNorm")
        XCTAssertThrowsError(try model.summary(inputShape: [1, 3, 33, 33]))
    }
}
