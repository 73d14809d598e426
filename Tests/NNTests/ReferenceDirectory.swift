import Foundation
import XCTest

/// The PyTorch reference cases, `../shared/reference` beside the package; tests skip with a message when absent.
func referenceDirectory(_ sub: String = "") throws -> URL {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let dir = root.deletingLastPathComponent().appendingPathComponent("shared/reference")
        .appendingPathComponent(sub)
    guard FileManager.default.fileExists(atPath: dir.path) else {
        throw XCTSkip("reference cases not found at \(dir.path)")
    }
    return dir
}
