import Autograd
import CommandLineSupport
import Foundation
import Models
import NN
import Train

// A walk through the ideas of group-equivariant convolution, with a picture for each step.
//
//   1. a plain 3x3 filter psi: rotating the image and then filtering, psi(g x), differs from filtering and then
//      rotating, g psi(x);
//   2. an isotropic filter (centre and ring weights only) commutes with rotations;
//   3. the lifting convolution maps an image to four planes, one per rotated copy of the filter; rotating the image
//      rotates every plane and shifts the planes cyclically;
//   4. the group convolution maps such four-plane maps to four-plane maps with the same property;
//   5. group pooling at the end makes the C4CNN's prediction invariant, where the plain CNN's is not;
//   6-8. the same for p4m: rotations and reflections, eight planes;
//   9-10. the lifting and group convolutions over C8 with steerable filters, under a rotation by 45 degrees: off the
//      pixel grid, equivariant up to the grid's sampling error;
//   11. every model's invariance element by element of C8, C16 and D8.
//
// Every check prints "Equivariant" / "Not equivariant" (or "Invariant" / "Not invariant") and its worst relative
// error over all group elements; every figure is a PNG in the output directory.

// MARK: - Options

struct DemoOptions {
    var output = "figures"
    var dataDirectory = "data"
    var imageIndex = 0
    var seed: UInt64 = 0
    var c4cnnWeights: String?
    var d4cnnWeights: String?
    var cnnWeights: String?
    var c8cnnWeights: String?
    var c16cnnWeights: String?
    var d8cnnWeights: String?

    /// The options of `arguments` (exits with status 2 naming the flag on a bad one, with 0 after `--help`).
    static func parse(_ arguments: [String]) -> DemoOptions {
        let parser = ArgumentParser(command: "equivariance-demo", overview: """
        Walks through equivariance to rotations (p4) and to rotations and reflections (p4m): a plain filter, an
        isotropic filter, the lifting convolution, the group convolution and the invariance of the C4CNN and D4CNN.
        Prints every check and writes one PNG figure per step.
        """)
        let output = parser.option("--out", value: "DIR", help: "where the PNG figures go (default figures/)")
        let dataDirectory = parser.option("--data-dir", value: "DIR", help: """
            data directory; a rot-digits test digit is used when DIR/rot-digits exists or can be
            built, else a synthetic image (default ./data)
            """)
        let image = parser.option("--image", value: "N", help: "which test digit (default 0)", Convert.integer(atLeast: 0))
        let seed = parser.option("--seed", value: "N", help: "seed of the random filters and models (default 0)",
                                 Convert.integer(atLeast: 0))
        let c4cnn = parser.option("--c4cnn-weights", value: "FILE",
                                  help: "trained C4CNN parameters (state dict or checkpoint) for the invariance figure")
        let d4cnn = parser.option("--d4cnn-weights", value: "FILE", help: "trained D4CNN parameters for the p4m invariance figure")
        let cnn = parser.option("--cnn-weights", value: "FILE", help: "trained CNN parameters for the comparison")
        let c8cnn = parser.option("--c8cnn-weights", value: "FILE", help: "trained C8CNN parameters for the per-element report")
        let c16cnn = parser.option("--c16cnn-weights", value: "FILE", help: "trained C16CNN parameters for the per-element report")
        let d8cnn = parser.option("--d8cnn-weights", value: "FILE", help: "trained D8CNN parameters for the per-element report")
        let a = parser.parseOrExit(arguments)
        var options = DemoOptions()
        options.output = a[output] ?? options.output
        options.dataDirectory = a[dataDirectory] ?? options.dataDirectory
        options.imageIndex = a[image] ?? options.imageIndex
        options.seed = a[seed].map(UInt64.init) ?? options.seed
        options.c4cnnWeights = a[c4cnn]
        options.d4cnnWeights = a[d4cnn]
        options.cnnWeights = a[cnn]
        options.c8cnnWeights = a[c8cnn]
        options.c16cnnWeights = a[c16cnn]
        options.d8cnnWeights = a[d8cnn]
        return options
    }
}

// MARK: - Helpers

let side = 33

/// The values of plane `index` along axis `axis` of `t`, flattened.
func plane(_ t: Tensor<Float>, axis: Int, _ index: Int) -> [Float] {
    t.sliced(axis: axis, index ..< index + 1).scalars
}

func largestMagnitude(_ tensors: Tensor<Float>...) -> Float {
    tensors.flatMap(\.scalars).reduce(0) { max($0, abs($1)) }
}

/// How an element of C4 / D4 is written in captions: E, R, R2, R3, M, MR, MR2, MR3 (M: the mirror, applied first).
func elementName(_ group: PlanarGroup, _ g: Int) -> String {
    let (flip, rotation) = group.parts(g)
    let r = rotation == 0 ? "" : (rotation == 1 ? "R" : "R\(rotation)")
    let name = (flip == 1 ? "M" : "") + r
    return name.isEmpty ? "E" : name
}

/// A note line for a report: green when it holds, red when not.
func note(_ label: String, _ report: EquivarianceCheck.Report) -> (text: String, colour: RGB) {
    (text: "\(label): \(report)", colour: report.holds() ? .good : .bad)
}

func report(_ number: Int, _ label: String, _ report: EquivarianceCheck.Report) {
    print("[\(number)] \(label): \(report)")
}

func softmax(_ logits: Tensor<Float>) -> [[Float]] {
    let probabilities = logits.logSoftmax(axis: 1).exp()
    let classes = logits.shape[1]
    return (0..<logits.shape[0]).map { Array(probabilities.scalars[($0 * classes)..<(($0 + 1) * classes)]) }
}

/// Loads trained parameters into `model` from a state dict or a training checkpoint; returns a description. A file
/// holding a NaN or an infinity is refused (such weights are not trained ones), as is one that does not fit.
func loadTrained(_ path: String, into model: Module) throws -> String {
    let url = URL(fileURLWithPath: path)
    let file = try ParameterFile.read(url)
    let prefix = file.entries.keys.contains { $0.hasPrefix("model.") } ? "model." : ""
    try model.load(stateDict: ParameterFile.tensors(in: file, prefix: prefix, url: url), source: url.path)
    return "trained (\(url.lastPathComponent))"
}

/// Whether a parameter file holds batch-norm statistics, i.e. comes from a model of the strong recipe.
func hasBatchNorm(_ path: String) -> Bool {
    guard let file = try? SafetensorsFile(contentsOf: URL(fileURLWithPath: path)) else { return false }
    return file.entries.keys.contains { $0.hasSuffix("running_mean") }
}

// MARK: - The input image

/// A fault the demo reports as `error: <message>`.
struct DemoError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A rot-digits test digit when the data set is at hand, else a synthetic shape with no rotational symmetry
/// (an "F" of soft strokes). Data that is there but cannot be read (a damaged cache, a directory where a file
/// belongs) is an error naming the file, not a reason to draw something else.
func inputImage(_ options: DemoOptions) throws -> (image: Tensor<Float>, description: String) {
    let directory = URL(fileURLWithPath: options.dataDirectory)
    let setDirectory = directory.appendingPathComponent(DatasetName.rotDigits.rawValue)
    let source = directory.appendingPathComponent(DataCatalog.digitsSourceName)
    if FileManager.default.fileExists(atPath: setDirectory.path) || FileManager.default.fileExists(atPath: source.path) {
        let data: (train: ImageDataset, test: ImageDataset)
        do {
            data = try DataCatalog(directory: directory).load(.rotDigits)
        } catch {
            throw DemoError(message: "the rot-digits data in \(directory.path) cannot be read: \(error)\n"
                            + "Repair or remove it, or pass --data-dir a folder without it to use a synthetic image.")
        }
        let index = min(options.imageIndex, data.test.count - 1)
        let pixels = Array(data.test.image(index))
        return (Tensor(shape: [1, 1, data.test.height, data.test.width], scalars: pixels),
                "rot-digits test image \(index) (label \(data.test.labels[index]))")
    }
    var pixels = [Float](repeating: 0, count: side * side)
    func stroke(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) {
        for y in 0..<side {
            for x in 0..<side {
                // Distance from the pixel to the segment, turned into a soft 2-pixel-wide line.
                let dx = x1 - x0, dy = y1 - y0
                let t = max(0, min(1, ((Double(x) - x0) * dx + (Double(y) - y0) * dy) / (dx * dx + dy * dy)))
                let d = hypot(Double(x) - (x0 + t * dx), Double(y) - (y0 + t * dy))
                pixels[y * side + x] = max(pixels[y * side + x], Float(max(0, min(1, 2.2 - d))))
            }
        }
    }
    stroke(11, 6, 11, 27)
    stroke(11, 6, 23, 6)
    stroke(11, 15, 20, 15)
    return (Tensor(shape: [1, 1, side, side], scalars: pixels), "a synthetic 'F' (no rot-digits data found)")
}

// MARK: - The steps

/// The weight `name` of `model` (e.g. "first_conv.weight"); fails naming the model's parameters otherwise.
func weight(_ name: String, of model: Module) throws -> Tensor<Float> {
    guard let found = model.namedParameters.first(where: { $0.name == name }) else {
        throw DemoError(message: "the model has no parameter \(name)")
    }
    return found.parameter.value
}

/// Step 12: the CNN's first-layer filters (as given: trained or not) over the random initial filters of a CNN of the
/// same seed, beside the C4CNN's lifting filters; each CNN row with its mean best correlation with another filter's
/// quarter turns.
func learnedFiltersFigure(number: Int, cnn: Module, cnnLabel: String, c4: Module, c4Label: String, seed: UInt64)
    throws -> Figure {
    let learned = try weight("first_conv.weight", of: cnn)
    let initial = try weight("first_conv.weight", of: ModelName.cnn.make(seed: seed))
    let lifting = try weight("liftingconv.weight", of: c4)
    let scoreLearned = FilterSimilarity.meanBestRotatedMatch(learned)
    let scoreInitial = FilterSimilarity.meanBestRotatedMatch(initial)
    let scoreLifting = FilterSimilarity.meanBestRotatedMatch(lifting)
    print(String(format: "[%d] CNN first-layer filters (%@): mean best correlation with another filter's quarter turns "
                 + "%.3f; random initial filters (seed %llu): %.3f; C4CNN lifting filters (%@): %.3f", number,
                 cnnLabel, scoreLearned, seed, scoreInitial, c4Label, scoreLifting))
    func row(_ prefix: String, _ filters: Tensor<Float>) -> [Panel] {
        let count = filters.shape[0], k = filters.shape[2], size = filters.count / count
        let scale = largestMagnitude(filters)
        return (0..<count).map { i in
            Panel(caption: "\(prefix) \(i)", content: .image(Array(filters.scalars[(i * size)..<(i * size + k * k)]),
                                                             height: k, width: k, .diverging(scale: scale)))
        }
    }
    let verdict: RGB = scoreLearned > scoreInitial ? .good : .bad
    return Figure(
        title: "\(number). WHAT THE FIRST LAYER LEARNS: CNN FILTERS (TOP), RANDOM INITIAL ONES, C4CNN LIFTING FILTERS",
        rows: [row("CNN", learned), row("INIT", initial), row("C4", lifting)],
        notes: [(String(format: "CNN FILTERS (%@): BEST CORRELATION WITH ANOTHER FILTER'S 90-DEGREE TURNS, MEAN %.3f",
                        cnnLabel.uppercased(), scoreLearned), verdict),
                (String(format: "RANDOM INITIAL FILTERS (SEED %llu): %.3f", seed, scoreInitial), .text),
                (String(format: "C4CNN LIFTING FILTERS (%@): %.3f; EACH IS APPLIED IN ALL FOUR TURNS BY CONSTRUCTION",
                        c4Label.uppercased(), scoreLifting), .text)])
}

/// Steps 1 and 2: an image -> image filter, `psi(g x)` beside `g psi(x)`.
func filterFigure(number: Int, title: String, label: String, filter: Tensor<Float>, layer: Module,
                  x: Tensor<Float>) throws -> Figure {
    let group = PlanarGroup.c4, g = 1
    let check = try EquivarianceCheck.imageToImage(layer, input: x, group: group)
    report(number, label, check)
    let (left, right) = try withoutGradients { () throws -> (Tensor<Float>, Tensor<Float>) in
        (try layer(group.transformPlanes(x, by: g)), group.transformPlanes(try layer(x), by: g))
    }
    let response = try withoutGradients { try layer(x) }
    let scale = largestMagnitude(left, right)
    let difference = left - right
    let map = ColourMap.diverging(scale: scale)
    let filterScale = largestMagnitude(filter)
    let figure = Figure(
        title: "\(number). \(title): ROTATE THEN FILTER VS FILTER THEN ROTATE (G = R, 90 DEGREES)",
        rows: [
            [.image("X", x.scalars, side: side, .gray(low: 0, high: 1)),
             .image("G X", group.transformPlanes(x, by: g).scalars, side: side, .gray(low: 0, high: 1)),
             Panel(caption: "FILTER PSI", content: .image(filter.scalars, height: 3, width: 3,
                                                          .diverging(scale: filterScale))),
             .image("PSI(X)", response.scalars, side: side, map)],
            [.image("PSI(G X)", left.scalars, side: side, map),
             .image("G PSI(X)", right.scalars, side: side, map),
             .image("DIFFERENCE", difference.scalars, side: side, map),
             .empty],
        ],
        notes: [note(label.uppercased(), check)])
    return figure
}

/// For a group beyond C4 and D4: what R means, and that off the grid the difference is the sampling error.
func rotationNote(_ group: PlanarGroup) -> [(text: String, colour: RGB)] {
    guard group.gridElements.count < group.order else { return [] }
    let degrees = 360 / Double(group.rotations)
    return [(text: String(format: "R = ROTATION BY %.1f DEGREES (BILINEAR OFF THE GRID): THE DIFFERENCE INSIDE THE "
                          + "DISC IS THE GRID'S SAMPLING ERROR", degrees), colour: .text)]
}

/// How a group's feature maps are named in captions: P4, P4M, else the group (C8, D8, ...).
func spaceName(_ group: PlanarGroup) -> String {
    group == .c4 ? "P4" : group == .d4 ? "P4M" : group.name
}

/// The difference of two sides of a check, masked to the disc the check compares for an element off the grid.
func shownDifference(_ a: Tensor<Float>, _ b: Tensor<Float>, group: PlanarGroup, g: Int) -> Tensor<Float> {
    group.isExactOnGrid(g) ? a - b : (a - b) * EquivarianceCheck.discMask(height: a.shape[a.rank - 2],
                                                                          width: a.shape[a.rank - 1])
}

/// Steps 3, 6 and 9: the lifting convolution image -> group (steerable filters for a group beyond C4 and D4).
func liftingFigure(number: Int, group: PlanarGroup, g: Int, x: Tensor<Float>, seed: UInt64) throws -> Figure {
    var generator = SeededRandom(seed: seed &+ 3)
    let steerable = group.gridElements.count < group.order
    let lifting: GroupFilterConv2d = steerable
        ? SteerableLiftingConv2d(1, 1, kernelSize: 3, padding: 1, group: group, bias: false, generator: &generator)
        : LiftingConv2d(1, 1, kernelSize: 3, padding: 1, group: group, bias: false, generator: &generator)
    let space = spaceName(group)
    let check = try EquivarianceCheck.imageToGroup(lifting, input: x, group: group)
    report(number, "\(steerable ? "steerable " : "")lifting convolution, image -> "
           + (steerable ? space : space.lowercased()), check)
    let gx = group.transformPlanes(x, by: g)
    let (y, yOfGx, filters) = try withoutGradients { () throws -> (Tensor<Float>, Tensor<Float>, Tensor<Float>) in
        (try lifting(x), try lifting(gx), lifting.expandedFilters().weight)
    }
    let gy = group.act(g, onFeatureMap: y)
    // The planes moved as g moves them, without transforming them spatially: not enough on its own.
    let inverse = group.inverse(g)
    let shiftedOnly = Tensor.concatenated(group.elements.map { h in
        y.sliced(axis: 2, group.compose(inverse, h) ..< group.compose(inverse, h) + 1)
    }, axis: 2)
    let scale = largestMagnitude(y, yOfGx)
    let map = ColourMap.diverging(scale: scale)
    let filterMap = ColourMap.diverging(scale: largestMagnitude(filters))
    let gName = elementName(group, g)
    let planes = Array(group.elements)
    func row(_ first: Panel, _ t: Tensor<Float>, _ caption: (Int) -> String) -> [Panel] {
        [first] + planes.map { .image(caption($0), plane(t, axis: 2, $0), side: side, map) }
    }
    let filterRow: [Panel] = [.empty] + planes.map { h in
        Panel(caption: "FILTER \(elementName(group, h)) PSI",
              content: .image(plane(filters, axis: 0, h), height: 3, width: 3, filterMap))
    }
    let difference = shownDifference(yOfGx, gy, group: group, g: g)
    return Figure(
        title: "\(number). LIFTING CONVOLUTION, IMAGE -> \(space): Y(H) = (H PSI) * X, G = \(gName)",
        rows: [
            filterRow,
            row(.image("X", x.scalars, side: side, .gray(low: 0, high: 1)), y) { "Y(\(elementName(group, $0)))" },
            row(.image("G X", gx.scalars, side: side, .gray(low: 0, high: 1)), yOfGx) {
                "LIFT(G X)(\(elementName(group, $0)))" },
            row(.empty, shiftedOnly) { "MOVED: Y(\(elementName(group, group.compose(inverse, $0))))" },
            row(.empty, gy) { "(G Y)(\(elementName(group, $0)))" },
            row(.empty, difference) { _ in "DIFFERENCE" },
        ],
        notes: [
            (text: "ROW 4: PLANES MOVED ONLY. ROW 5: G Y = PLANES MOVED AND EACH TRANSFORMED BY G.", colour: .text),
            note("LIFT(G X) = G LIFT(X)", check),
        ] + rotationNote(group))
}

/// Steps 4, 7 and 10: the group convolution group -> group (and batch norm, which keeps equivariance), with
/// steerable filters for a group beyond C4 and D4.
func groupConvolutionFigure(number: Int, group: PlanarGroup, g: Int, x: Tensor<Float>, seed: UInt64) throws
    -> Figure {
    var generator = SeededRandom(seed: seed &+ 4)
    let steerable = group.gridElements.count < group.order
    let lifting: GroupFilterConv2d = steerable
        ? SteerableLiftingConv2d(1, 1, kernelSize: 3, padding: 1, group: group, bias: false, generator: &generator)
        : LiftingConv2d(1, 1, kernelSize: 3, padding: 1, group: group, bias: false, generator: &generator)
    let convolution: GroupFilterConv2d = steerable
        ? SteerableGroupConv2d(1, 1, kernelSize: 3, padding: 1, group: group, bias: false, generator: &generator)
        : GroupConv2d(1, 1, kernelSize: 3, padding: 1, group: group, bias: false, generator: &generator)
    let space = group == .c4 ? "p4" : group == .d4 ? "p4m" : group.name
    let f = try withoutGradients { try lifting(x).relu() }
    let check = try EquivarianceCheck.groupToGroup(convolution, input: f, group: group)
    report(number, "\(steerable ? "steerable " : "")group convolution, \(space) -> \(space)", check)
    // Batch norm with statistics over batch, group axis and space (training mode, a batch of two).
    var noise = SeededRandom(seed: seed &+ 5)
    let batch = Tensor.concatenated([f, f * 0.5 + Tensor.uniform(shape: f.shape, low: 0, high: 0.1, generator: &noise)],
                                    axis: 0)
    let norm = BatchNorm(1)
    let normCheck = try EquivarianceCheck.groupToGroup(norm, input: batch, group: group)
    report(number, "batch norm on \(space) maps (statistics shared over the group axis)", normCheck)

    let gf = group.act(g, onFeatureMap: f)
    let (y, yOfGf) = try withoutGradients { () throws -> (Tensor<Float>, Tensor<Float>) in
        (try convolution(f), try convolution(gf))
    }
    let gy = group.act(g, onFeatureMap: y)
    let scale = largestMagnitude(y, yOfGf)
    let map = ColourMap.diverging(scale: scale)
    let inputMap = ColourMap.diverging(scale: largestMagnitude(f))
    // (1, 1, |G|, 3, 3): one 3x3 filter per plane (for steerable filters, the basis combined by the coefficients).
    let weight = (convolution as? SteerableGroupConv2d).map { $0.basis.filters(convolution.weight.value) }
        ?? convolution.weight.value
    let weightMap = ColourMap.diverging(scale: largestMagnitude(weight))
    let gName = elementName(group, g)
    let planes = Array(group.elements)
    func row(_ t: Tensor<Float>, _ m: ColourMap, _ caption: (Int) -> String) -> [Panel] {
        planes.map { .image(caption($0), plane(t, axis: 2, $0), side: side, m) }
    }
    let filterRow: [Panel] = planes.map { h in
        Panel(caption: "PSI(\(elementName(group, h)))",
              content: .image(plane(weight, axis: 2, h), height: 3, width: 3, weightMap))
    }
    return Figure(
        title: "\(number). GROUP CONVOLUTION, \(space.uppercased()) -> \(space.uppercased()), G = \(gName)",
        rows: [
            filterRow,
            row(f, inputMap) { "F(\(elementName(group, $0)))" },
            row(gf, inputMap) { "(G F)(\(elementName(group, $0)))" },
            row(y, map) { "Y(\(elementName(group, $0)))" },
            row(yOfGf, map) { "CONV(G F)(\(elementName(group, $0)))" },
            row(gy, map) { "(G Y)(\(elementName(group, $0)))" },
            row(shownDifference(yOfGf, gy, group: group, g: g), map) { _ in "DIFFERENCE" },
        ],
        notes: [
            (text: "F = RELU(LIFT(X)); Y = CONV(F), ITS FILTER PSI HAS ONE 3X3 PLANE PER GROUP ELEMENT.",
             colour: .text),
            note("CONV(G F) = G CONV(F)", check),
            note("BATCH NORM", normCheck),
        ] + rotationNote(group))
}

/// Steps 5 and 8: the whole model's prediction for every transformed copy of the image.
func invarianceFigure(number: Int, group: PlanarGroup, x: Tensor<Float>, input: String, equivariant: Module,
                      equivariantName: String, plain: Module, plainName: String) throws -> Figure {
    equivariant.eval()
    plain.eval()
    let modelCheck = try EquivarianceCheck.invariance(equivariant, input: x, group: group)
    report(number, "\(equivariantName.lowercased()) logits", modelCheck)
    let plainCheck = try EquivarianceCheck.invariance(plain, input: x, group: group)
    report(number, "\(plainName.lowercased()) logits", plainCheck)
    let inputs = Tensor.concatenated(group.elements.map { group.transformPlanes(x, by: $0) }, axis: 0)
    let (modelProbabilities, plainProbabilities) = try withoutGradients { () throws -> ([[Float]], [[Float]]) in
        (softmax(try equivariant(inputs)), softmax(try plain(inputs)))
    }
    func predicted(_ p: [Float]) -> Int { p.indices.max { p[$0] < p[$1] }! }
    let elements = group.elements.map { elementName(group, $0) }.joined(separator: ", ")
    func classes(_ probabilities: [[Float]]) -> String {
        probabilities.map { "\(predicted($0))" }.joined(separator: " ")
    }
    print("[\(number)] predicted classes for g = \(elements): \(equivariantName) \(classes(modelProbabilities)), "
          + "\(plainName) \(classes(plainProbabilities))")
    return Figure(
        title: "\(number). INVARIANCE: CLASS PROBABILITIES FOR EVERY TRANSFORMED COPY OF THE IMAGE",
        rows: [
            group.elements.map { .image("G = \(elementName(group, $0))", plane(inputs, axis: 0, $0), side: side,
                                        .gray(low: 0, high: 1)) },
            group.elements.map { Panel(caption: "\(equivariantName): \(predicted(modelProbabilities[$0]))",
                                       content: .bars(modelProbabilities[$0])) },
            group.elements.map { Panel(caption: "\(plainName): \(predicted(plainProbabilities[$0]))",
                                       content: .bars(plainProbabilities[$0])) },
        ],
        notes: [(text: "INPUT: \(input.uppercased())", colour: .text),
                note(equivariantName, modelCheck), note(plainName, plainCheck)])
}

// MARK: - Main

let options = DemoOptions.parse(Array(CommandLine.arguments.dropFirst()))
let outputDirectory = URL(fileURLWithPath: options.output, isDirectory: true)

func save(_ figure: Figure, _ name: String) throws {
    let url = outputDirectory.appendingPathComponent(name)
    try figure.write(to: url)
    print("    wrote \(url.path)")
}

func makeModel(_ name: ModelName, weights: String?) throws -> (model: Module, label: String) {
    let strong = weights.map(hasBatchNorm) ?? false
    let model = strong ? name.makeStrong(seed: options.seed) : name.make(seed: options.seed)
    guard let weights else { return (model, "untrained (seed \(options.seed))") }
    return (model, try loadTrained(weights, into: model))
}

do {
    let (x, description) = try inputImage(options)
    print("Input: \(description), \(x.shape[2])x\(x.shape[3]).")
    print("Figures go to \(outputDirectory.path)/.\n")

    var generator = SeededRandom(seed: options.seed &+ 1)
    let plain = Conv2d(1, 1, kernelSize: 3, padding: 1, bias: false, generator: &generator)
    try save(try filterFigure(number: 1, title: "A PLAIN 3X3 FILTER", label: "plain 3x3 filter, image -> image",
                              filter: plain.weight.value, layer: plain, x: x), "01-plain-filter.png")

    let isotropic = IsotropicConv2d(1, 1, padding: 1, bias: false, generator: &generator)
    try save(try filterFigure(number: 2, title: "AN ISOTROPIC FILTER", label: "isotropic filter, image -> image",
                              filter: isotropic.expandedFilter(), layer: isotropic, x: x),
             "02-isotropic-filter.png")

    try save(try liftingFigure(number: 3, group: .c4, g: 1, x: x, seed: options.seed), "03-lifting-p4.png")
    try save(try groupConvolutionFigure(number: 4, group: .c4, g: 1, x: x, seed: options.seed),
             "04-group-conv-p4.png")

    let (c4, c4Label) = try makeModel(.c4cnn, weights: options.c4cnnWeights)
    let (cnn, cnnLabel) = try makeModel(.cnn, weights: options.cnnWeights)
    print("[5] models: C4CNN \(c4Label), CNN \(cnnLabel)")
    try save(try invarianceFigure(number: 5, group: .c4, x: x, input: description, equivariant: c4,
                                  equivariantName: "C4CNN", plain: cnn, plainName: "CNN"), "05-invariance-c4cnn.png")

    // p4m: rotations and reflections; g = M R (mirror the width axis, then rotate by 90 degrees).
    try save(try liftingFigure(number: 6, group: .d4, g: 5, x: x, seed: options.seed), "06-lifting-p4m.png")
    try save(try groupConvolutionFigure(number: 7, group: .d4, g: 5, x: x, seed: options.seed),
             "07-group-conv-p4m.png")
    let (d4, d4Label) = try makeModel(.d4cnn, weights: options.d4cnnWeights)
    print("[8] models: D4CNN \(d4Label), CNN \(cnnLabel)")
    try save(try invarianceFigure(number: 8, group: .d4, x: x, input: description, equivariant: d4,
                                  equivariantName: "D4CNN", plain: cnn, plainName: "CNN"), "08-invariance-d4cnn.png")

    // C8 with steerable filters: g = R, a rotation by 45 degrees, off the pixel grid.
    let c8 = PlanarGroup.cyclic(8)
    try save(try liftingFigure(number: 9, group: c8, g: 1, x: x, seed: options.seed), "09-lifting-c8.png")
    try save(try groupConvolutionFigure(number: 10, group: c8, g: 1, x: x, seed: options.seed),
             "10-group-conv-c8.png")
    try perElementReports(number: 11, x: x, c4: c4, cnn: cnn)
    try save(try learnedFiltersFigure(number: 12, cnn: cnn, cnnLabel: cnnLabel, c4: c4, c4Label: c4Label,
                                      seed: options.seed), "12-learned-filters.png")
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
