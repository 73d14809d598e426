import XCTest
@testable import Autograd

/// `description` prints as `torch.Tensor.__repr__` with PyTorch's default options (the expected strings are PyTorch's
/// own output for the same values, with this framework's shape suffix).
final class PrintingTests: XCTestCase {
    func testFixedPointRowsAligned() {
        let x = Tensor<Float>(shape: [2, 2], scalars: [0.1, -1.2, 3, 4])
        XCTAssertEqual(x.description, """
            tensor([[ 0.1000, -1.2000],
                    [ 3.0000,  4.0000]], shape=[2, 2])
            """)
    }

    func testIntegralScientificAndScalars() {
        XCTAssertEqual(Tensor<Float>(shape: [3], scalars: [1, -2, 30]).description, "tensor([ 1., -2., 30.], shape=[3])")
        XCTAssertEqual(Tensor<Float>(shape: [2], scalars: [1e-5, 1]).description,
                       "tensor([1.0000e-05, 1.0000e+00], shape=[2])")
        XCTAssertEqual(Tensor<Float>(shape: [3], scalars: [.nan, .infinity, 0.5]).description,
                       "tensor([   nan,    inf, 0.5000], shape=[3])")
        XCTAssertEqual(Tensor<Float>(2.5).description, "tensor(2.5000, shape=[])")
        XCTAssertEqual(Tensor<Float>(zeros: [0, 3]).description, "tensor([], shape=[0, 3])")
    }

    func testRankThreeBlocksAndSuffixes() {
        let x = Tensor<Double>(shape: [2, 1, 2], scalars: [1, 2, 3, 4]).requiringGradient()
        XCTAssertEqual(x.description, """
            tensor([[[1., 2.]],

                    [[3., 4.]]], shape=[2, 1, 2], dtype=F64, requires_grad=True)
            """)
    }

    func testLargeTensorsAreSummarised() {
        let x = Tensor<Float>(shape: [100, 20], scalars: (1000..<3000).map { Float($0) })
        XCTAssertEqual(x.description, """
            tensor([[1000., 1001., 1002.,  ..., 1017., 1018., 1019.],
                    [1020., 1021., 1022.,  ..., 1037., 1038., 1039.],
                    [1040., 1041., 1042.,  ..., 1057., 1058., 1059.],
                    ...,
                    [2940., 2941., 2942.,  ..., 2957., 2958., 2959.],
                    [2960., 2961., 2962.,  ..., 2977., 2978., 2979.],
                    [2980., 2981., 2982.,  ..., 2997., 2998., 2999.]], shape=[100, 20])
            """)
        // Magnitudes spanning more than 1e3 switch to scientific notation, and rows wrap at 80 columns.
        let wide = Tensor<Float>(shape: [100, 20], scalars: (0..<2000).map { Float($0) })
        XCTAssertTrue(wide.description.hasPrefix("""
            tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.7000e+01, 1.8000e+01,
                     1.9000e+01],
                    [2.0000e+01,
            """), wide.description)
        let blocks = Tensor<Float>(shape: [10, 10, 20], scalars: (1000..<3000).map { Float($0) }).description
        XCTAssertTrue(blocks.contains("""
                     [1580., 1581., 1582.,  ..., 1597., 1598., 1599.]],

                    ...,

                    [[2400., 2401., 2402.,  ..., 2417., 2418., 2419.],
            """), blocks)
        // At the threshold (1000 elements) nothing is left out; long rows wrap at 80 columns.
        let row = Tensor<Float>(shape: [1000], scalars: (0..<1000).map { Float($0) / 1000 })
        XCTAssertFalse(row.description.contains("..."))
        XCTAssertTrue(row.description.hasPrefix("tensor([0.0000, 0.0010, 0.0020, 0.0030, 0.0040, 0.0050, 0.0060, "
                                                + "0.0070, 0.0080,\n        0.0090,"))
    }

    func testIndexAndMaskTensors() {
        XCTAssertEqual(IndexTensor(shape: [2, 2], indices: [3, 10, 0, 7]).description, """
            tensor([[ 3, 10],
                    [ 0,  7]])
            """)
        XCTAssertEqual(TensorMask(shape: [2], values: [true, false]).description, "tensor([ True, False])")
    }
}
