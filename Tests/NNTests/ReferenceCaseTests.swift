import Foundation
import ReferenceCases
import XCTest

/// Every PyTorch reference case in ../shared/reference passes (the op cases here; the models in ModelTests).
final class ReferenceCaseTests: XCTestCase {
    func testEveryOpCasePasses() throws {
        let urls = try referenceCaseURLs(in: try referenceDirectory())
            .filter { !$0.lastPathComponent.hasPrefix("model_") }
        XCTAssertGreaterThan(urls.count, 0)
        for url in urls {
            let outcome = try ReferenceCase(url: url).run()
            XCTAssertTrue(outcome.passed, "\(url.lastPathComponent): \(outcome.notes.joined(separator: "; "))")
        }
    }

    /// A case for an op the checker does not know fails and says so.
    func testUnknownOpFailsClearly() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("unknown-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let file = SafetensorsFileBuilder.single(op: "frobnicate")
        try file.write(to: url)
        let outcome = try ReferenceCase(url: url).run()
        XCTAssertFalse(outcome.passed)
        XCTAssertTrue(outcome.notes.joined().contains("unknown op 'frobnicate'"), "\(outcome.notes)")
    }
}
