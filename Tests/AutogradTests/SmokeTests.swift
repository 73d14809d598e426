import XCTest
@testable import Autograd

final class SmokeTests: XCTestCase {
    func testBroadcastAddBackward() {
        let a = Tensor<Double>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]).requiringGradient()
        let b = Tensor<Double>(shape: [3], scalars: [10, 20, 30]).requiringGradient()
        let y = ((a + b) * a).sum()
        y.backward()
        XCTAssertEqual(a.grad!.scalars, [12, 24, 36, 18, 30, 42])
        XCTAssertEqual(b.grad!.scalars, [5, 7, 9])
    }
}
