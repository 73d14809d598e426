import Autograd
import Foundation
import XCTest

/// The thread count is bounded: 4 per core, at most 256; a count beyond is refused with the range by
/// `checkedThreadCount` and capped by `setThreads`.
final class ThreadCountTests: XCTestCase {
    func testCountsOutOfRangeAreRefusedWithTheRange() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertEqual(Parallel.maximumThreads, min(256, 4 * cores))
        XCTAssertEqual(try Parallel.checkedThreadCount(1), 1)
        XCTAssertEqual(try Parallel.checkedThreadCount(Parallel.maximumThreads), Parallel.maximumThreads)
        for bad in [0, -3, Parallel.maximumThreads + 1, 1000] {
            XCTAssertThrowsError(try Parallel.checkedThreadCount(bad)) { error in
                XCTAssertEqual("\(error)", "thread count \(bad) is out of range 1...\(Parallel.maximumThreads) "
                               + "(4 per core on the \(cores) cores here, at most 256)")
            }
        }
    }

    func testSetThreadsCapsTheCount() {
        let previous = Parallel.threads
        defer { Parallel.setThreads(previous) }
        Parallel.setThreads(1000)
        XCTAssertEqual(Parallel.threads, Parallel.maximumThreads)
        Parallel.setThreads(0)
        XCTAssertEqual(Parallel.threads, 1)
    }
}
