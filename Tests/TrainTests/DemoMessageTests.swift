import Autograd
import Foundation
import Models
import NN
import Train
import XCTest

/// Messages about the user's files: equivariance-demo refuses a damaged data cache and NaN weights instead of
/// drawing a synthetic image or calling the weights trained; a state dict of another model is listed in a screenful.
final class DemoMessageTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory("demo-messages") }
    override func tearDown() { scratch?.remove() }

    func testADamagedDataCacheIsAnErrorNotASyntheticImage() throws {
        let demo = try productURL("equivariance-demo")
        let data = scratch.file("data")
        let set = data.appendingPathComponent(DatasetName.rotDigits.rawValue)
        try scratch.write("data/rot-digits/\(DataCatalog.trainFileName)", text: "0 0 0 garbage\n")
        try scratch.write("data/rot-digits/\(DataCatalog.testFileName)", text: "0 0 0 garbage\n")
        let result = try CommandRun(demo, ["--data-dir", data.path, "--out", scratch.file("figures").path],
                                    directory: scratch.url, logName: "damaged").finish()
        XCTAssertFalse(result.killedBySignal, result.errorOutput)
        XCTAssertEqual(result.status, 1, result.output + result.errorOutput)
        XCTAssertTrue(result.errorOutput.contains("the rot-digits data in \(data.path) cannot be read: "
                                                  + set.appendingPathComponent(DataCatalog.trainFileName).path),
                      result.errorOutput)
        XCTAssertFalse(result.output.contains("synthetic"), result.output)
    }

    func testNaNWeightsAreNotCalledTrained() throws {
        let demo = try productURL("equivariance-demo")
        let weights = scratch.file("c4cnn.safetensors")
        try C4CNN(seed: 1).save(to: weights, metadata: ["model": "c4cnn"])
        var file = try ParameterFile.read(weights)
        let name = file.entries.keys.sorted().first { $0.hasSuffix("bias") }!
        var values = file.entries[name]!.floats
        values[0] = .nan
        file.entries[name] = SafetensorsEntry(shape: file.entries[name]!.shape, values: .f32(values))
        try file.write(to: weights)
        let result = try CommandRun(demo, ["--data-dir", scratch.file("none").path, "--c4cnn-weights", weights.path,
                                           "--out", scratch.file("figures").path],
                                    directory: scratch.url, logName: "nan").finish()
        XCTAssertEqual(result.status, 1, result.output + result.errorOutput)
        XCTAssertTrue(result.errorOutput.contains("\(weights.path): tensor \"\(name)\": element 0 is NaN"),
                      result.errorOutput)
        XCTAssertFalse(result.output.contains("C4CNN trained"), result.output)
    }

    func testAMisfitListsAScreenfulOfNames() throws {
        var tensors: [String: Tensor<Float>] = [:]
        for i in 0..<500 { tensors["stray.\(i)"] = Tensor(zeros: [1]) }
        XCTAssertThrowsError(try CNN(seed: 1).load(stateDict: tensors, source: "other.safetensors")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unexpected: stray.0, stray.1, stray.10, "), text)
            XCTAssertTrue(text.contains(", ... and 480 more"), text)
            XCTAssertFalse(text.contains("stray.499"), text)
            XCTAssertLessThan(text.count, 4000, text)
        }
    }
}
