@testable import Autograd
@testable import NN
import XCTest

final class GroupTests: XCTestCase {
    var generator = SeededRandom(seed: 7)

    func randomTensor(_ shape: [Int]) -> Tensor<Float> { .normal(shape: shape, generator: &generator) }

    /// In evaluation mode a group convolution transforms its filters once and reuses the transform until a parameter
    /// changes; its outputs keep the bits of a convolution with the expanded filters, before and after the change.
    func testEvaluationReusesTheWinogradTransformUntilTheWeightChanges() throws {
        let layer = GroupConv2d(4, 8, kernelSize: 3, padding: 1, group: .c4, generator: &generator)
        let x = randomTensor([2, 4, 4, 7, 7])
        func direct() -> Tensor<Float> {
            let (w, b) = layer.expandedFilters()
            let flat = try! x.rearranged("n i g h w -> n (i g) h w")
            return try! flat.conv2d(weight: w, bias: b, padding: (1, 1), algorithm: .fastest)
                .rearranged("n (o g) h w -> n o g h w", ["g": 4])
        }
        layer.eval()
        let first = try layer(x)
        XCTAssertEqual(try layer(x).scalars, first.scalars)
        XCTAssertEqual(first.scalars, direct().scalars)
        XCTAssertEqual(layer.winogradCache.computed, 1)
        layer.weight.update { $0[0] += 0.5 }
        let changed = try layer(x)
        XCTAssertNotEqual(changed.scalars, first.scalars)
        XCTAssertEqual(changed.scalars, direct().scalars)
        XCTAssertEqual(layer.winogradCache.computed, 2)
        layer.train()
        _ = try layer(x)
        XCTAssertEqual(layer.winogradCache.computed, 2, "training mode transforms its own filters")
    }

    // MARK: - Group law

    func testGroupLawIsAssociativeWithInverses() {
        for group in [PlanarGroup.c4, .d4] {
            for a in group.elements {
                XCTAssertEqual(group.compose(a, group.inverse(a)), 0, "\(group) \(a)")
                for b in group.elements {
                    for c in group.elements {
                        XCTAssertEqual(group.compose(group.compose(a, b), c), group.compose(a, group.compose(b, c)))
                    }
                }
            }
        }
    }

    /// Acting by a then by b equals acting by b * a, on images and on feature maps: the actions are group actions.
    func testActionsComposeLikeTheGroup() {
        let image = randomTensor([1, 2, 5, 5])
        for group in [PlanarGroup.c4, .d4] {
            let map = randomTensor([1, 2, group.order, 5, 5])
            for a in group.elements {
                for b in group.elements {
                    let ab = group.compose(b, a)
                    XCTAssertEqual(group.transformPlanes(group.transformPlanes(image, by: a), by: b).scalars,
                                   group.transformPlanes(image, by: ab).scalars)
                    XCTAssertEqual(group.act(b, onFeatureMap: group.act(a, onFeatureMap: map)).scalars,
                                   group.act(ab, onFeatureMap: map).scalars)
                }
            }
        }
    }

    func testC4ActionShiftsPlanesAndRotates() {
        let y = randomTensor([2, 3, 4, 5, 5])
        for r in 0..<4 {
            let out = PlanarGroup.c4.act(r, onFeatureMap: y)
            for i in 0..<4 {
                let expected = y.sliced(axis: 2, i..<(i + 1)).rotated90(r)
                XCTAssertEqual(out.sliced(axis: 2, ((i + r) % 4)..<((i + r) % 4 + 1)).scalars, expected.scalars)
            }
        }
    }

    // MARK: - Equivariance of every layer, every element

    func testLiftingConvolutionIsEquivariant() throws {
        for group in [PlanarGroup.c4, .d4] {
            let layer = LiftingConv2d(2, 3, kernelSize: 3, padding: 1, group: group, generator: &generator)
            let report = try EquivarianceCheck.imageToGroup(layer, input: randomTensor([2, 2, 9, 9]), group: group)
            XCTAssertEqual(report.errors.count, group.order)
            XCTAssertTrue(report.holds(tolerance: 1e-5), "\(report)")
        }
    }

    func testGroupConvolutionIsEquivariant() throws {
        for group in [PlanarGroup.c4, .d4] {
            let layer = GroupConv2d(2, 3, kernelSize: 3, padding: 1, group: group, generator: &generator)
            let input = randomTensor([2, 2, group.order, 7, 7])
            let report = try EquivarianceCheck.groupToGroup(layer, input: input, group: group)
            XCTAssertTrue(report.holds(tolerance: 1e-5), "\(report)")
        }
    }

    func testPoolingAndReluKeepEquivariance() throws {
        for group in [PlanarGroup.c4, .d4] {
            let input = randomTensor([1, 2, group.order, 9, 9])
            let pool = MaxPool3d(kernelSize: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1))
            XCTAssertTrue(try EquivarianceCheck.groupToGroup(pool, input: input, group: group).holds())
            XCTAssertTrue(try EquivarianceCheck.groupToGroup(ReLU(), input: input, group: group).holds())
            let invariant = try EquivarianceCheck.check(group, from: .group, to: .image, input: input,
                                                        GroupPooling(group: group).forward)
            XCTAssertTrue(invariant.holds(), "\(invariant)")
        }
    }

    func testIsotropicConvolutionIsEquivariantAndPlainIsNot() throws {
        let input = randomTensor([1, 2, 9, 9])
        let isotropic = IsotropicConv2d(2, 3, padding: 1, generator: &generator)
        XCTAssertTrue(try EquivarianceCheck.imageToImage(isotropic, input: input, group: .d4).holds())
        let plain = Conv2d(2, 3, kernelSize: 3, padding: 1, generator: &generator)
        let report = try EquivarianceCheck.imageToImage(plain, input: input)
        XCTAssertFalse(report.holds(tolerance: 1e-2), "a random filter should not be equivariant: \(report)")
        XCTAssertEqual(report.errors[0], 0, "the identity element always commutes")
    }

    /// The check must notice a layer that breaks equivariance (an even size misaligns the pooling grid).
    func testCheckDetectsBrokenEquivariance() throws {
        let pool = MaxPool3d(kernelSize: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1))
        let report = try EquivarianceCheck.groupToGroup(pool, input: randomTensor([1, 2, 4, 8, 8]))
        XCTAssertFalse(report.holds(tolerance: 1e-3), "\(report)")
    }

    // MARK: - Gradients flow into the base filters

    func testExpandedFilterGradientsReachTheWeight() throws {
        let layer = GroupConv2d(2, 2, kernelSize: 3, padding: 1, generator: &generator)
        let y = try layer(randomTensor([1, 2, 4, 5, 5]))
        (y * y).sum().backward()
        XCTAssertEqual(layer.weight.grad?.shape, [2, 2, 4, 3, 3])
        XCTAssertEqual(layer.bias?.grad?.shape, [2])
        XCTAssertGreaterThan(layer.weight.grad!.scalars.map(abs).max()!, 0)
    }

    func testEvalModeCachesFiltersUntilWeightsChange() throws {
        let layer = LiftingConv2d(1, 2, kernelSize: 3, padding: 1, generator: &generator)
        layer.eval()
        let x = randomTensor([1, 1, 5, 5])
        let first = try layer(x)
        XCTAssertEqual(try layer(x).scalars, first.scalars)
        layer.weight.assign(layer.weight.value.scalars.map { $0 * 2 })
        let second = try layer(x)
        XCTAssertNotEqual(second.scalars, first.scalars, "changed weights must rebuild the cached filters")
    }
}
