import Autograd
import CommandLineSupport
import Foundation
import Models
import ReferenceCases

// gradient-accuracy: counts the random model cases whose Float gradients are off the Double truth by more than
// 1e-4 relative (ModelGradientCase), and optionally writes the cases for scripts/gradient_accuracy.py.
let parser = ArgumentParser(command: "gradient-accuracy", overview: """
    Makes K random cases of a model (its parameters as it initialises them from seeds S, S+1, ..., random images
    and labels), computes the gradients of the loss in Float (the training path) and in Double (the im2col truth),
    and prints per case the worst relative error max |g - g_ref| / max |g_ref| over the parameters, then how many
    cases exceed 1e-4.
    """)
let modelOption = parser.option("--model", value: "NAME", help: "c4cnn or cnn (default c4cnn)") { text in
    guard let model = ModelName(rawValue: text), ModelGradientCase.models.contains(model) else {
        throw ValueError("unknown model '\(text)' (c4cnn, cnn)")
    }
    return model
}
let casesOption = parser.option("--cases", value: "K", help: "number of cases (default 200)",
                                Convert.integer(1...100_000))
let batchOption = parser.option("--batch", value: "B", help: "images per case (default 4)", Convert.integer(1...256))
let seedOption = parser.option("--first-seed", value: "S", help: "seed of the first case (default 0)",
                               Convert.integer(0...Int.max))
let writeOption = parser.option("--write", value: "DIR",
                                help: "write each case with both gradients into DIR (created if missing)")
let arguments = parser.parseOrExit(Array(CommandLine.arguments.dropFirst()))
setvbuf(stdout, nil, _IOLBF, 0)

let model = arguments[modelOption] ?? .c4cnn
let count = arguments[casesOption] ?? 200, batch = arguments[batchOption] ?? 4
let firstSeed = UInt64(arguments[seedOption] ?? 0)
let directory = arguments[writeOption].map { URL(fileURLWithPath: $0, isDirectory: true) }
if let directory {
    do {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
        let reason = (error as NSError).localizedDescription
        FileHandle.standardError.write(Data("error: cannot create the folder \(directory.path): \(reason)\n".utf8))
        exit(1)
    }
}
do {
    var exceeding = 0
    for seed in firstSeed..<firstSeed + UInt64(count) {
        let errors = try ModelGradientCase(model: model, seed: seed, batch: batch).measure(writingInto: directory)
        let worst = errors.worst
        if errors.exceeds() { exceeding += 1 }
        print("\(errors.exceeds() ? "EXCEEDS" : "ok     ") \(model.rawValue) seed \(seed): worst "
              + String(format: "%.3e", worst.error) + " (\(worst.name))")
    }
    print("\(exceeding) of \(count) \(model.rawValue) cases exceed \(GradientErrors.tolerance) "
          + "(batch \(batch), seeds \(firstSeed)..<\(firstSeed + UInt64(count)), kernels \(CPUKernels.path))")
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
