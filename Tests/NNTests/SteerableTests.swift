import Autograd
import Foundation
import Models
import NN
import XCTest

/// C_N and D_N for any N: the group laws, the actions, the steerable basis, the steerable layers and the models.
final class SteerableTests: XCTestCase {
    var generator = SeededRandom(seed: 11)

    func randomTensor(_ shape: [Int]) -> Tensor<Float> { .normal(shape: shape, generator: &generator) }

    /// Smooth images (N, C, S, S) that vanish outside their inscribed disc: sums of Gaussian blobs (sigma 2.5) at
    /// random places well inside it, as a rotated digit is. Bilinear resampling of such images is accurate to a few
    /// percent, so the sampling error measured on them is mostly the layers' own.
    let blobSigma = 2.5
    func smoothImages(_ n: Int, _ channels: Int, side: Int) -> Tensor<Float> {
        let centre = Double(side - 1) / 2, reach = centre / 2
        var values = [Float](repeating: 0, count: n * channels * side * side)
        for plane in 0..<(n * channels) {
            for _ in 0..<4 {
                let (r, a) = (reach * generator.uniform(), 2 * Double.pi * generator.uniform())
                let (y0, x0) = (centre + r * sin(a), centre + r * cos(a))
                let weight = 2 * generator.uniform() - 1
                for i in 0..<side {
                    for j in 0..<side {
                        let d2 = (Double(i) - y0) * (Double(i) - y0) + (Double(j) - x0) * (Double(j) - x0)
                        values[(plane * side + i) * side + j] += Float(weight * exp(-d2 / (2 * blobSigma * blobSigma)))
                    }
                }
            }
        }
        return Tensor(shape: [n, channels, side, side], scalars: values)
    }

    let groups: [PlanarGroup] = [.cyclic(8), .cyclic(16), .dihedral(8), .cyclic(3), .dihedral(5)]

    // MARK: - Group laws

    func testGroupLawsOfCyclicAndDihedralGroups() {
        for n in [1, 2, 3, 5, 8, 16] {
            for group in [PlanarGroup.cyclic(n), .dihedral(n)] {
                XCTAssertEqual(group.order, group.hasReflections ? 2 * n : n)
                for a in group.elements {
                    XCTAssertEqual(group.compose(a, 0), a, "\(group): e is the identity")
                    XCTAssertEqual(group.compose(0, a), a, "\(group): e is the identity")
                    XCTAssertEqual(group.compose(a, group.inverse(a)), 0, "\(group) \(a)")
                    XCTAssertEqual(group.compose(group.inverse(a), a), 0, "\(group) \(a)")
                    for b in group.elements {
                        for c in group.elements {
                            XCTAssertEqual(group.compose(group.compose(a, b), c), group.compose(a, group.compose(b, c)),
                                           "\(group): associativity for \(a), \(b), \(c)")
                        }
                    }
                }
                // Rotations add their angles; a reflection conjugates a rotation into its inverse: F R F = R^-1.
                if n > 2 {
                    let r = group.element(flip: 0, rotation: 1)
                    XCTAssertEqual(group.angle(group.compose(r, r)), 2 * group.angle(r), accuracy: 1e-12)
                    if group.hasReflections {
                        let f = group.element(flip: 1, rotation: 0)
                        XCTAssertEqual(group.compose(f, group.compose(r, f)), group.inverse(r), "\(group)")
                    }
                }
            }
        }
        XCTAssertEqual(PlanarGroup.c4, .cyclic(4))
        XCTAssertEqual(PlanarGroup.cyclic(8).gridElements, [0, 2, 4, 6])
        XCTAssertEqual(PlanarGroup.dihedral(8).gridElements, [0, 2, 4, 6, 8, 10, 12, 14])
        XCTAssertEqual(PlanarGroup.cyclic(6).gridElements, [0, 3])
    }

    /// The elements exact on the grid act as a group action on images and on feature maps, bit for bit.
    func testExactElementsComposeLikeTheGroup() {
        let image = randomTensor([1, 2, 5, 5])
        for group in [PlanarGroup.cyclic(8), .dihedral(8)] {
            let map = randomTensor([1, 2, group.order, 5, 5])
            for a in group.gridElements {
                for b in group.gridElements {
                    let ab = group.compose(b, a)
                    XCTAssertEqual(group.transformPlanes(group.transformPlanes(image, by: a), by: b).scalars,
                                   group.transformPlanes(image, by: ab).scalars)
                    XCTAssertEqual(group.act(b, onFeatureMap: group.act(a, onFeatureMap: map)).scalars,
                                   group.act(ab, onFeatureMap: map).scalars)
                }
            }
        }
    }

    /// The regular representation of C8: plane i moves to i + r and is rotated by 45 r degrees.
    func testC8ActionShiftsPlanesAndRotates() {
        let group = PlanarGroup.cyclic(8)
        let y = randomTensor([1, 2, 8, 7, 7])
        for r in 0..<8 {
            let out = group.act(r, onFeatureMap: y)
            for i in 0..<8 {
                let source = y.sliced(axis: 2, i ..< i + 1)
                let expected = r % 2 == 0 ? source.rotated90(r / 2) : source.rotated(by: Double(r) * .pi / 4)
                let j = (i + r) % 8
                // (A batch of planes and one plane go through different GEMM blockings: float rounding.)
                XCTAssertLessThanOrEqual(EquivarianceCheck.relativeError(out.sliced(axis: 2, j ..< j + 1), expected),
                                         1e-6, "r = \(r), plane \(i)")
            }
        }
    }

    // MARK: - Rotation by any angle

    /// The bilinear rotation turns the way rot90 does and agrees with it at multiples of 90 degrees.
    func testBilinearRotationAgreesWithRot90() {
        let x = randomTensor([2, 3, 7, 7])
        for k in 0..<4 {
            let error = EquivarianceCheck.relativeError(x.rotated(by: Double(k) * .pi / 2), x.rotated90(k))
            XCTAssertLessThanOrEqual(error, 1e-6, "k = \(k)")
        }
        // 45 degrees twice is 90 degrees, up to interpolation, on a smooth image inside its disc.
        let smooth = smoothImages(1, 1, side: 21)
        let twice = smooth.rotated(by: .pi / 4).rotated(by: .pi / 4)
        let disc = EquivarianceCheck.discMask(height: 21, width: 21)
        XCTAssertLessThanOrEqual(EquivarianceCheck.relativeError(twice * disc, smooth.rotated90(1) * disc), 0.1)
        XCTAssertGreaterThan(EquivarianceCheck.relativeError(twice * disc, smooth * disc), 0.3)
        XCTAssertGreaterThan(EquivarianceCheck.relativeError(twice * disc, smooth.rotated90(-1) * disc), 0.3)
    }

    // MARK: - Steerable basis

    func testBasisIsBandLimitedPerRing() {
        // Ring 0: m = 0; ring r >= 1: m = 0 ... min(2r, 2), cosine and sine (5 functions).
        XCTAssertEqual(SteerableBasis(kernelSize: 3).count, 1 + 5)
        XCTAssertEqual(SteerableBasis(kernelSize: 5).count, 1 + 5 + 5)
        XCTAssertEqual(SteerableBasis(kernelSize: 7).count, 1 + 5 + 5 + 5)
        XCTAssertEqual(SteerableBasis(kernelSize: 7, maximumFrequency: 6).count, 1 + 5 + 9 + 13)
        for k in [3, 5, 7] {
            let basis = SteerableBasis(kernelSize: k)
            for f in basis.functions { XCTAssertLessThanOrEqual(Double(f.frequency), min(2 * f.radius, 2)) }
            // Unit norm on the grid, and linearly independent (the Gram matrix has full rank: Cholesky succeeds).
            let b = basis.count, samples = basis.sampled(angle: 0)
            var gram = [Double](repeating: 0, count: b * b)
            for p in 0..<b {
                for q in 0..<b {
                    gram[p * b + q] = (0..<(k * k)).reduce(0) { $0 + samples[p * k * k + $1] * samples[q * k * k + $1] }
                }
                XCTAssertEqual(gram[p * b + p], 1, accuracy: 1e-12)
            }
            for j in 0..<b {
                var d = gram[j * b + j]
                for q in 0..<j { d -= gram[j * b + q] * gram[j * b + q] }
                XCTAssertGreaterThan(d, 1e-6, "kernel \(k): basis function \(j) depends on the others")
                d = d.squareRoot()
                gram[j * b + j] = d
                for i in (j + 1)..<b {
                    var s = gram[i * b + j]
                    for q in 0..<j { s -= gram[i * b + q] * gram[j * b + q] }
                    gram[i * b + j] = s / d
                }
            }
        }
    }

    /// Rotating the continuous basis by a multiple of 90 degrees and then sampling equals rot90 of the samples; the
    /// mirror equals the flip of the width axis; other angles give other filters.
    func testBasisRotatedBy90DegreesIsRot90() {
        for k in [3, 5, 7] {
            let basis = SteerableBasis(kernelSize: k)
            let base = Tensor<Double>(shape: [basis.count, k, k], scalars: basis.sampled(angle: 0))
            for turns in 0..<4 {
                let rotated = Tensor<Double>(shape: [basis.count, k, k],
                                             scalars: basis.sampled(angle: Double(turns) * .pi / 2))
                XCTAssertLessThanOrEqual(EquivarianceCheck.relativeError(rotated, base.rotated90(turns)), 1e-12)
                let mirrored = Tensor<Double>(shape: [basis.count, k, k],
                                              scalars: basis.sampled(angle: Double(turns) * .pi / 2, flip: true))
                XCTAssertLessThanOrEqual(
                    EquivarianceCheck.relativeError(mirrored, base.flipped([-1]).rotated90(turns)), 1e-12)
            }
            let diagonal = Tensor<Double>(shape: [basis.count, k, k], scalars: basis.sampled(angle: .pi / 4))
            XCTAssertGreaterThan(EquivarianceCheck.relativeError(diagonal, base), 0.1)
        }
    }

    /// The expanded filters of a C8 and a D8 layer: output element g's filter at a multiple of 90 degrees is the rot90
    /// of element 0's (after the mirror for D8), with the input planes moved by g.
    func testExpandedFiltersAtMultiplesOf90DegreesAreRot90() throws {
        for group in [PlanarGroup.cyclic(8), .dihedral(8)] {
            let n = group.order
            let lifting = SteerableLiftingConv2d(2, 3, kernelSize: 5, group: group, generator: &generator)
            let w = lifting.expandedFilters().weight.reshaped([3, n, 2, 5, 5])
            let conv = SteerableGroupConv2d(2, 3, kernelSize: 3, group: group, generator: &generator)
            let v = conv.expandedFilters().weight.reshaped([3, n, 2, n, 3, 3])
            for g in group.gridElements {
                let planeOf = { (t: Tensor<Float>, axis: Int, i: Int) in t.sliced(axis: axis, i ..< i + 1) }
                XCTAssertLessThanOrEqual(EquivarianceCheck.relativeError(
                    planeOf(w, 1, g), group.transformPlanes(planeOf(w, 1, 0), by: g)), 1e-6, "\(group) lifting \(g)")
                // Output g, input plane h = output 0, input plane g^-1 h, transformed by g: the action on the axis 3.
                XCTAssertLessThanOrEqual(EquivarianceCheck.relativeError(
                    planeOf(v, 1, g), group.act(g, onFeatureMap: planeOf(v, 1, 0))), 1e-6, "\(group) group conv \(g)")
            }
        }
    }

    // MARK: - Equivariance of the layers, every element

    func testSteerableLayersAreEquivariantPerElement() throws {
        for group in groups {
            let x = smoothImages(2, 2, side: 21)
            let lifting = SteerableLiftingConv2d(2, 3, kernelSize: 3, padding: 1, group: group, generator: &generator)
            let lifted = try EquivarianceCheck.imageToGroup(lifting, input: x, group: group)
            XCTAssertEqual(lifted.errors.count, group.order)
            XCTAssertTrue(lifted.holds(tolerance: 1e-5), "\(lifted)")
            // A smooth group map (no ReLU: its kinks would make the bilinear rotation of the input the main error).
            let f = try withoutGradients { try lifting(x) }
            for k in [3, 5] {
                let conv = SteerableGroupConv2d(3, 2, kernelSize: k, padding: k / 2, group: group,
                                                generator: &generator)
                let report = try EquivarianceCheck.groupToGroup(conv, input: f, group: group)
                XCTAssertTrue(report.holds(tolerance: 1e-5), "\(report)")
                // Off the grid: the sampling error of a smooth input stays a fraction of the signal (filters moved by
                // rot90 only are off by 0.7, see below); 5x5 filters reach farther, into the rotated input's errors.
                if let sampling = report.worstSamplingError {
                    XCTAssertLessThanOrEqual(sampling, k == 3 ? 0.1 : 0.3, "\(group), kernel \(k): \(report.perElement)")
                }
            }
            if let sampling = lifted.worstSamplingError {
                XCTAssertLessThanOrEqual(sampling, 0.1, "\(group) lifting: \(lifted.perElement)")
            }
            let pooled = try EquivarianceCheck.check(group, from: .group, to: .image, input: f,
                                                     GroupPooling(group: group).forward)
            XCTAssertTrue(pooled.holds(tolerance: 1e-5), "\(pooled)")
            // Batch norm with statistics shared over the group axis (training mode: the batch's statistics).
            let norm = try EquivarianceCheck.groupToGroup(BatchNorm(3), input: f, group: group)
            XCTAssertTrue(norm.holds(tolerance: 1e-5), "\(norm)")
        }
    }

    /// The check notices a layer that is not equivariant off the grid: the lifting convolution whose planes hold the
    /// same filter rotated by rot90 only (the nearest quarter turn), as the C4 layers would do for C8.
    func testCheckDetectsFiltersNotRotatedByTheirAngle() throws {
        let group = PlanarGroup.cyclic(8)
        let x = smoothImages(1, 1, side: 15)
        // Two edge filters (Sobel, and its transpose): strongly oriented, so 45 degrees makes a difference.
        let sobel = Tensor<Float>(shape: [1, 1, 3, 3], scalars: [-1, 0, 1, -2, 0, 2, -1, 0, 1])
        let base = Tensor.concatenated([sobel, sobel.transposed()], axis: 0)
        let filters = Tensor.stacked(group.elements.map { base.rotated90($0 / 2) }, axis: 1).reshaped([16, 1, 3, 3])
        let report = EquivarianceCheck.check(group, from: .image, to: .group, input: x) { input in
            try! input.conv2d(weight: filters, padding: (1, 1)).rearranged("n (o g) h w -> n o g h w", ["g": 8])
        }
        XCTAssertTrue(report.holds(tolerance: 1e-5), "exact on the grid: \(report)")
        XCTAssertGreaterThan(report.worstSamplingError!, 0.3, "\(report.perElement)")
        let layer = SteerableLiftingConv2d(1, 2, kernelSize: 3, padding: 1, group: group, generator: &generator)
        let steerable = try EquivarianceCheck.imageToGroup(layer, input: x, group: group)
        XCTAssertGreaterThan(report.worstSamplingError!, 3 * steerable.worstSamplingError!,
                             "\(report.perElement) vs \(steerable.perElement)")
    }

    // MARK: - Gradients, by finite differences in Double

    /// d/dw and d/dx of sum(conv(x, expand(w)) * upstream) against central differences, relative to the largest
    /// numeric gradient (1e-6: Double rounding of differences over eps 1e-6, far below the size of any wrong term).
    func assertGradients(_ inputs: [Tensor<Double>], _ what: String,
                         _ f: ([Tensor<Double>]) -> Tensor<Double>) {
        let leaves = inputs.map { $0.requiringGradient() }
        let output = f(leaves)
        var g = SeededRandom(seed: 5)
        let upstream = Tensor<Double>.normal(shape: output.shape, generator: &g)
        output.backward(seed: upstream)
        func objective(_ values: [Tensor<Double>]) -> Double {
            zip(withoutGradients { f(values) }.scalars, upstream.scalars).reduce(0) { $0 + $1.0 * $1.1 }
        }
        for (index, input) in inputs.enumerated() {
            guard let analytic = leaves[index].grad?.scalars else { return XCTFail("\(what): no gradient \(index)") }
            var numeric = [Double](repeating: 0, count: input.count)
            let eps = 1e-6
            for j in 0..<input.count {
                var values = inputs, plus = input.scalars, minus = input.scalars
                plus[j] += eps
                minus[j] -= eps
                values[index] = Tensor(shape: input.shape, scalars: plus)
                let up = objective(values)
                values[index] = Tensor(shape: input.shape, scalars: minus)
                numeric[j] = (up - objective(values)) / (2 * eps)
            }
            let scale = numeric.map(abs).max() ?? 0
            let worst = zip(analytic, numeric).map { abs($0 - $1) }.max() ?? 0
            XCTAssertGreaterThan(scale, 0, "\(what): input \(index) has no effect")
            XCTAssertLessThanOrEqual(worst / scale, 1e-6, "\(what): gradient of input \(index)")
        }
    }

    func testSteerableLayerGradientsByFiniteDifferences() {
        for group in [PlanarGroup.cyclic(3), .dihedral(2), .cyclic(8)] {
            let n = group.order
            let lifting = SteerableLiftingConv2d(1, 2, kernelSize: 3, padding: 1, group: group, generator: &generator)
            let c = Tensor<Double>.normal(shape: [2, 1, lifting.basis.count], generator: &generator)
            let x = Tensor<Double>.normal(shape: [1, 1, 4, 4], generator: &generator)
            assertGradients([c, x], "\(group) lifting") { v in
                v[1].conv2d(weight: lifting.expand(v[0]), padding: (1, 1))
            }
            assertGradients([x], "\(group) rotation of the image by 30 degrees") { v in v[0].rotated(by: .pi / 6) }
            let conv = SteerableGroupConv2d(1, 2, kernelSize: 3, padding: 1, group: group, generator: &generator)
            let d = Tensor<Double>.normal(shape: [2, 1, n, conv.basis.count], generator: &generator)
            let y = Tensor<Double>.normal(shape: [1, n, 4, 4], generator: &generator)
            assertGradients([d, y], "\(group) group conv") { v in
                v[1].conv2d(weight: conv.expand(v[0]), padding: (1, 1))
            }
        }
    }

    /// The layer's own forward (Float, through the tape) gives the coefficients' gradients the Double expansion
    /// gives.
    func testLayerGradientMatchesTheExpansion() throws {
        let group = PlanarGroup.cyclic(8)
        let conv = SteerableGroupConv2d(2, 2, kernelSize: 3, padding: 1, group: group, generator: &generator)
        let x = randomTensor([1, 2, 8, 5, 5])
        let y = try conv(x)
        (y * y).sum().backward()
        XCTAssertEqual(conv.weight.grad?.shape, [2, 2, 8, conv.basis.count])
        let c = conv.weight.value.converted(to: Double.self).detached().requiringGradient()
        let flat = try x.converted(to: Double.self).rearranged("n i g h w -> n (i g) h w")
        let b = conv.bias!.value.converted(to: Double.self).detached()
        let z = flat.conv2d(weight: conv.expand(c), bias: try b.repeated("o -> (o g)", ["g": 8]), padding: (1, 1))
        (z * z).sum().backward()
        let error = relativeErrorOf(conv.weight.grad!.scalars.map(Double.init), c.grad!.scalars)
        XCTAssertLessThanOrEqual(error, 1e-4)
    }

    func relativeErrorOf(_ a: [Double], _ b: [Double]) -> Double {
        let scale = b.map(abs).max() ?? 0
        return (zip(a, b).map { abs($0 - $1) }.max() ?? 0) / max(scale, .leastNormalMagnitude)
    }

    // MARK: - Models

    func testSteerableModelsAreInvariantPerElement() throws {
        let x = smoothImages(2, 1, side: 33)
        for (model, group, widths) in [(C8CNN(seed: 1) as GroupEquivariantCNN, PlanarGroup.cyclic(8), [4, 8, 16, 32, 64]),
                                       (C16CNN(seed: 1), .cyclic(16), [2, 4, 8, 16, 32]),
                                       (D8CNN(seed: 1, batchNorm: true, dropout: 0.2), .dihedral(8), [2, 4, 8, 16, 32])] {
            model.eval()
            XCTAssertEqual(model.group, group)
            XCTAssertEqual(GroupEquivariantCNN.widthsKeepingPlanes(of: group), widths)
            XCTAssertEqual(try withoutGradients { try model(x) }.shape, [2, 10])
            let report = try EquivarianceCheck.invariance(model, input: x, group: group)
            XCTAssertTrue(report.holds(tolerance: 1e-4), "\(group): \(report)")
            XCTAssertEqual(report.perElement.count, group.order)
            // Parameters: lifting 6 * w0 + w0, group convs in * out * |G| * 6 + out, head (w4 * 25) -> 256 -> 32 -> 10.
            var expected = widths[0] * 6 + widths[0]
            for i in 0..<4 { expected += widths[i] * widths[i + 1] * group.order * 6 + widths[i + 1] }
            expected += widths[4] * 25 * 256 + 256 + 256 * 32 + 32 + 32 * 10 + 10
            if model.liftingNorm != nil { expected += 2 * widths.reduce(0, +) }
            XCTAssertEqual(model.parameterCount, expected, "\(group)")
        }
        XCTAssertEqual(ModelName(rawValue: "c8cnn")?.make() is C8CNN, true)
        XCTAssertEqual(ModelName(rawValue: "c16cnn")?.makeStrong() is C16CNN, true)
        XCTAssertEqual(ModelName(rawValue: "d8cnn")?.make() is D8CNN, true)
    }

    func testSteerableModelNamesFollowTheC4CNN() {
        let names = C8CNN(seed: 0).namedParameters.map(\.name)
        XCTAssertEqual(names, C4CNN(seed: 0).namedParameters.map(\.name))
        XCTAssertEqual(C8CNN(seed: 0).namedParameters.first?.parameter.shape, [4, 1, 6])
    }
}
