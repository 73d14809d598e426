@testable import Autograd
import CKernels
import Foundation
import XCTest

/// OpenBLAS runs its Pentium 4 kernels on Intel models its CPU detection has no case for; the framework
/// switches them to the kernels the CPU's features call for before the first product, unless OPENBLAS_CORETYPE
/// forces a choice.
final class BLASKernelChoiceTests: XCTestCase {
    func testAnSSEKernelSetIsReplacedOnlyWhenTheCPUCallsForABetterOne() {
        XCTAssertEqual(BLASLibrary.chooseCore(current: "Prescott", suited: "Cooperlake", forced: nil), "Cooperlake")
        XCTAssertEqual(BLASLibrary.chooseCore(current: "Prescott", suited: "SkylakeX", forced: nil), "SkylakeX")
        XCTAssertEqual(BLASLibrary.chooseCore(current: "Nehalem", suited: "Haswell", forced: nil), "Haswell")
        XCTAssertEqual(BLASLibrary.chooseCore(current: "SandyBridge", suited: "Haswell", forced: nil), "Haswell")
        // A kernel set with AVX2 or AVX-512 is OpenBLAS's own choice for a CPU it knows: kept.
        XCTAssertNil(BLASLibrary.chooseCore(current: "Haswell", suited: "SkylakeX", forced: nil))
        XCTAssertNil(BLASLibrary.chooseCore(current: "Zen", suited: "Haswell", forced: nil))
        XCTAssertNil(BLASLibrary.chooseCore(current: "SkylakeX", suited: "Cooperlake", forced: nil))
        // Nothing better for the CPU, or nothing better than what runs.
        XCTAssertNil(BLASLibrary.chooseCore(current: "Prescott", suited: nil, forced: nil))
        XCTAssertNil(BLASLibrary.chooseCore(current: "Prescott", suited: "SandyBridge", forced: nil))
        // The user's OPENBLAS_CORETYPE wins, whatever it names.
        XCTAssertNil(BLASLibrary.chooseCore(current: "Prescott", suited: "Cooperlake", forced: "Prescott"))
    }

    func testTheRunningKernelsUseTheCPUsVectorUnitsAfterTheFirstProduct() throws {
        guard BLASLibrary.isOpenBLAS, let name = BLASLibrary.coreName else {
            throw XCTSkip("the BLAS is not OpenBLAS")
        }
        guard let suited = ck_blas_core().map({ String(cString: $0) }),
              !BLASLibrary.coresWithoutAVX2.contains(suited.lowercased()) else {
            throw XCTSkip("this CPU has no AVX2 (OpenBLAS runs \(name))")
        }
        if let forced = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            throw XCTSkip("OPENBLAS_CORETYPE=\(forced) forces the kernels")
        }
        let a = Tensor<Float>(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6])
        let b = Tensor<Float>(shape: [2, 2], scalars: [1, -1, 2, 0.5])
        XCTAssertEqual(a.matmul(b).scalars, [5, 0, 11, -1, 17, -2])
        let running = try XCTUnwrap(BLASLibrary.coreName)
        XCTAssertFalse(BLASLibrary.coresWithoutAVX2.contains(running.lowercased()),
                       "OpenBLAS runs \(running) on a CPU whose features call for \(suited)")
        if let change = BLASLibrary.coreChange {
            XCTAssertTrue(BLASLibrary.description.contains("kernels \(change.to) chosen for this CPU"))
        }
    }
}
