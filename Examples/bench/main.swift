import Autograd
import CommandLineSupport
import Foundation
import Models
import NN
import Train

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Options

struct BenchOptions {
    var threads = Parallel.threads
    var json = false
    var repeats = 7
    var only: Set<String> = []
    /// Process CPU time instead of wall time (for single-threaded runs on a busy machine).
    var cpuClock = false

    /// The sections `--only` may name.
    static let sections = ["memory", "sgemm", "conv", "pool", "filters", "parts", "steps", "steerable"]

    /// The options of `arguments` (exits with status 2 naming the flag on a bad one, with 0 after `--help`).
    static func parse(_ arguments: [String]) -> BenchOptions {
        let parser = ArgumentParser(command: "bench", overview: """
        Times the pieces of a C4CNN training step at batch 64 (33x33 inputs) and whole training and inference
        steps of the C4CNN, the CNN, the C8CNN and the C16CNN. Every timing is the median of R runs (default 7)
        after a warm-up run.
        """)
        let threads = parser.option("--threads", value: "N",
                                    help: "threads for BLAS and the framework's kernels (default: all cores)",
                                    Convert.threads)
        let json = parser.flag("--json", help: "print one JSON object instead of the table")
        let repeats = parser.option("--repeats", value: "R", help: "runs per timing (default 7)",
                                    Convert.integer(1...1_000_000))
        let only = parser.option("--only", value: "LIST",
                                 help: "comma-separated sections: \(sections.joined(separator: ", ")) (default: all)",
                                 Convert.list(of: sections, noun: "section"))
        let cpuTime = parser.flag("--cpu-time",
                                  help: "time by process CPU time instead of wall time (single-threaded runs on a busy machine)")
        let a = parser.parseOrExit(arguments)
        var options = BenchOptions()
        options.threads = a[threads] ?? options.threads
        options.json = a[json]
        options.repeats = a[repeats] ?? options.repeats
        options.only = Set(a[only] ?? [])
        options.cpuClock = a[cpuTime]
        return options
    }
}

// MARK: - Measurement

nonisolated(unsafe) var useCPUClock = false

/// Seconds on the wall clock, or of process CPU time with `--cpu-time`.
func now() -> Double {
    var t = timespec()
    clock_gettime(useCPUClock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// The median time in seconds of `runs` calls of `body` after one warm-up call.
func median(runs: Int, warmup: Int = 1, _ body: () -> Void) -> Double {
    median(runs: runs, warmup: warmup, prepare: {}, body)
}

/// The median time in seconds of `runs` calls of `body` after one warm-up call; `prepare` runs untimed before each
/// call and hands `body` what it made (a forward pass, so that only its backward is timed).
func median<Prepared>(runs: Int, warmup: Int = 1, prepare: () -> Prepared, _ body: (Prepared) -> Void) -> Double {
    for _ in 0..<warmup { body(prepare()) }
    var times: [Double] = []
    for _ in 0..<runs {
        let prepared = prepare()
        let start = now()
        body(prepared)
        times.append(now() - start)
    }
    times.sort()
    return times.count % 2 == 1 ? times[times.count / 2]
        : 0.5 * (times[times.count / 2 - 1] + times[times.count / 2])
}

/// The process's peak resident set size, in MiB.
func peakResidentMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// The process's current resident set size, in MiB (from /proc/self/statm).
func currentResidentMiB() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / (1024 * 1024)
}

/// Ordered results: the keys match those of scripts/bench_pytorch.py.
struct Results {
    var entries: [(key: String, value: Double)] = []
    mutating func set(_ key: String, _ value: Double) { entries.append((key, value)) }
    subscript(_ key: String) -> Double? { entries.first { $0.key == key }?.value }
}

func random(_ shape: [Int], seed: UInt64, std: Double = 1) -> Tensor<Float> {
    var generator = SeededRandom(seed: seed)
    return Tensor.normal(shape: shape, std: std, generator: &generator)
}

// MARK: - Sections

func benchSgemm(_ r: inout Results, repeats: Int) {
    let n = 2048
    let a = random([n, n], seed: 1), b = random([n, n], seed: 2)
    let seconds = median(runs: max(3, repeats / 2)) { _ = withoutGradients { a.matmul(b) } }
    r.set("sgemm.gflops", 2 * Double(n * n * n) / seconds * 1e-9)
}

/// The convolutions of the C4CNN at batch 64, as plain conv2d calls on the expanded filters.
let convLayers: [(name: String, input: [Int], weight: [Int])] = [
    ("lifting", [64, 1, 33, 33], [32, 1, 3, 3]),
    ("group1", [64, 32, 33, 33], [64, 32, 3, 3]),
    ("group2", [64, 64, 17, 17], [128, 64, 3, 3]),
    ("group3", [64, 128, 9, 9], [256, 128, 3, 3]),
    ("group4", [64, 256, 5, 5], [512, 256, 3, 3]),
]

func benchConvolutions(_ r: inout Results, repeats: Int) {
    let peak = r["sgemm.gflops"]
    for (index, layer) in convLayers.enumerated() {
        let seed = UInt64(10 + index * 3)
        let x = random(layer.input, seed: seed)
        let w = random(layer.weight, seed: seed + 1, std: 0.1)
        let b = random([layer.weight[0]], seed: seed + 2)
        let g = random([layer.input[0], layer.weight[0], layer.input[2], layer.input[3]], seed: seed + 3)
        let flops = 2 * Double(layer.input[0] * layer.input[2] * layer.input[3])
            * Double(layer.weight.reduce(1, *))
        let forward = median(runs: repeats) {
            _ = withoutGradients { x.conv2d(weight: w, bias: b, padding: (1, 1), algorithm: .fastest) }
        }
        // The lifting layer reads the image, which needs no gradient: training never computes its input gradient.
        let needsInputGradient = layer.name != "lifting"
        // Each backward is timed alone, after an untimed forward that records what it needs.
        let backwardInput = !needsInputGradient ? nil : median(runs: repeats, prepare: {
            x.requiringGradient().conv2d(weight: w, bias: b, padding: (1, 1), algorithm: .fastest)
        }) { $0.backward(seed: g) }
        let backwardWeight = median(runs: repeats, prepare: {
            x.conv2d(weight: w.requiringGradient(), bias: b, padding: (1, 1), algorithm: .fastest)
        }) { $0.backward(seed: g) }
        let parts = [("forward", forward), ("backward_input", backwardInput), ("backward_weight", backwardWeight)]
        for case let (part, seconds?) in parts {
            let key = "conv.\(layer.name).\(part)"
            r.set("\(key).ms", seconds * 1e3)
            r.set("\(key).gflops", flops / seconds * 1e-9)
            if let peak { r.set("\(key).peak_share", flops / seconds * 1e-9 / peak) }
        }
    }
}

func benchPooling(_ r: inout Results, repeats: Int) {
    let shapes: [(String, [Int])] = [("pool1", [64, 16, 4, 33, 33]), ("pool2", [64, 32, 4, 17, 17]),
                                     ("pool3", [64, 64, 4, 9, 9])]
    for (index, (name, shape)) in shapes.enumerated() {
        let x = random(shape, seed: UInt64(40 + index))
        let forward = median(runs: repeats) {
            _ = withoutGradients { x.maxPool3d(kernel: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1)) }
        }
        let y0 = withoutGradients { x.maxPool3d(kernel: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1)) }
        let g = random(y0.shape, seed: UInt64(50 + index))
        let backward = median(runs: repeats, prepare: {
            x.requiringGradient().maxPool3d(kernel: (1, 3, 3), stride: (1, 2, 2), padding: (0, 1, 1))
        }) { $0.backward(seed: g) }
        r.set("maxpool.\(name).forward.ms", forward * 1e3)
        r.set("maxpool.\(name).backward.ms", backward * 1e3)
    }
}

func benchFilters(_ r: inout Results, repeats: Int) {
    let model = C4CNN(seed: 0)
    model.train()
    let groupConvs = model.groupconvEncoder.layers.compactMap { $0 as? GroupConv2d }
    let seconds = median(runs: repeats) {
        _ = model.liftingconv.expandedFilters()
        for layer in groupConvs { _ = layer.expandedFilters() }
        Tape.current.reset()
    }
    r.set("filters.expand.ms", seconds * 1e3)
}

/// The C4CNN's group convolution outputs at batch 64 (N, C x 4 rotations, H, W): where relu and the adds run.
let stepMaps: [[Int]] = [[64, 64, 33, 33], [64, 128, 17, 17], [64, 256, 9, 9], [64, 512, 5, 5]]

/// The parts of a C4CNN step outside the convolutions, each timed alone at the step's shapes (pooling and the
/// filter expansion have their own sections): relu forward and backward over the four encoder maps, an add of two
/// maps of the largest size, the head (3200 -> 256 -> 32 -> 10, forward, loss and backward) and one AdamW update of
/// the C4CNN's parameters.
func benchParts(_ r: inout Results, repeats: Int) {
    let maps = stepMaps.enumerated().map { random($0.element, seed: UInt64(80 + $0.offset)) }
    let seeds = stepMaps.enumerated().map { random($0.element, seed: UInt64(90 + $0.offset)) }
    r.set("parts.relu.forward.ms", 1e3 * median(runs: repeats) {
        withoutGradients { for x in maps { _ = x.relu() } }
    })
    // One backward per map (a backward consumes the tape): the sum of their medians.
    r.set("parts.relu.backward.ms", 1e3 * zip(maps, seeds).map { x, g in
        median(runs: repeats, prepare: { x.requiringGradient().relu() }) { $0.backward(seed: g) }
    }.reduce(0, +))
    r.set("parts.add.ms", 1e3 * median(runs: repeats) { _ = withoutGradients { maps[0] + seeds[0] } })

    var generator = SeededRandom(seed: 95)
    let head = Sequential([Linear(3200, 256, generator: &generator), ReLU(), Linear(256, 32, generator: &generator),
                           ReLU(), Linear(32, 10, generator: &generator)])
    head.train()
    let features = random([64, 3200], seed: 96)
    let labels = (0..<64).map { $0 % 10 }
    r.set("parts.head.step.ms", 1e3 * median(runs: repeats) {
        let loss = try! head(features).crossEntropy(targets: labels)
        head.zeroGradients()
        loss.backward()
    })

    let model = C4CNN(seed: 0)
    model.train()
    let optimizer = AdamW(parameters: model.namedParameters, learningRate: 5e-5, weightDecay: 1e-5)
    let loss = try! model(random([64, 1, 33, 33], seed: 97)).crossEntropy(targets: labels)
    loss.backward()
    r.set("parts.adamw.step.ms", 1e3 * median(runs: repeats) { optimizer.step() })
}

/// One AdamW training step and one inference batch of `model` at batch 64.
func benchModel(_ r: inout Results, name: String, model: Module, repeats: Int, memory: Bool) {
    let images = random([64, 1, 33, 33], seed: 70)
    var generator = SeededRandom(seed: 71)
    let labels = (0..<64).map { _ in Int(generator.uniform(0, 10)) % 10 }
    let optimizer = AdamW(parameters: model.namedParameters, learningRate: 5e-5, weightDecay: 1e-5)
    model.train()
    let before = currentResidentMiB()
    let step = median(runs: repeats) {
        let loss = try! model(images).crossEntropy(targets: labels)
        optimizer.zeroGradients()
        loss.backward()
        optimizer.step()
    }
    r.set("\(name).train_step.ms", step * 1e3)
    if memory {
        let peak = peakResidentMiB()
        r.set("memory.\(name).train_peak_rss_mb", peak)
        r.set("memory.\(name).train_step_growth_mb", peak - before)
    }
    model.eval()
    let inference = median(runs: repeats) { _ = withoutGradients { try! model(images) } }
    r.set("\(name).inference.ms", inference * 1e3)
    model.train()
}

// MARK: - Output

func padded(_ text: String, _ width: Int, right: Bool = false) -> String {
    let pad = String(repeating: " ", count: max(0, width - text.count))
    return right ? pad + text : text + pad
}

func number(_ value: Double, _ decimals: Int = 2) -> String { String(format: "%.\(decimals)f", value) }

func printTable(_ r: Results, options: BenchOptions) {
    print("bench: \(options.threads) thread(s); \(BLASLibrary.description)")
    print("kernels: \(CPUKernels.path) (GROUPCONV_KERNELS=baseline|avx2|avx512 forces a path)")
    print("medians of \(options.repeats) runs after a warm-up, \(options.cpuClock ? "process CPU" : "wall") time; "
          + "batch 64, 33x33 inputs")
    if let peak = r["sgemm.gflops"] { print("sgemm peak (2048 x 2048 x 2048): \(number(peak, 1)) GFLOP/s") }
    if r.entries.contains(where: { $0.key.hasPrefix("conv.") }) {
        print("")
        print("C4CNN convolution (GFLOP/s counts the direct convolution's multiply-adds)")
        print(padded("layer", 9) + padded("input", 14) + padded("out", 5, right: true) + "  "
              + padded("part", 16) + padded("ms", 9, right: true) + padded("GFLOP/s", 10, right: true)
              + padded("of peak", 9, right: true))
        for layer in convLayers {
            for part in ["forward", "backward_input", "backward_weight"] {
                let key = "conv.\(layer.name).\(part)"
                guard let ms = r["\(key).ms"], let gf = r["\(key).gflops"] else { continue }
                let share = r["\(key).peak_share"].map { "\(Int(($0 * 100).rounded())) %" } ?? "-"
                let first = part == "forward"
                print(padded(first ? layer.name : "", 9)
                      + padded(first ? layer.input.map(String.init).joined(separator: "x") : "", 14)
                      + padded(first ? "\(layer.weight[0])" : "", 5, right: true) + "  "
                      + padded(part, 16) + padded(number(ms), 9, right: true) + padded(number(gf, 1), 10, right: true)
                      + padded(share, 9, right: true))
            }
        }
    }
    let rest = r.entries.filter { !$0.key.hasPrefix("conv.") && $0.key != "sgemm.gflops" }
    if !rest.isEmpty {
        print("")
        for (key, value) in rest {
            let unit = key.hasSuffix(".ms") ? "ms" : key.hasSuffix("_mb") ? "MiB" : ""
            print(padded(key, 42) + padded(number(value), 10, right: true) + " " + unit)
        }
    }
}

func printJSON(_ r: Results, options: BenchOptions) {
    var fields = ["\"framework\": \"swift\"", "\"threads\": \(options.threads)",
                  "\"blas\": \"\(BLASLibrary.description.replacingOccurrences(of: "\"", with: "'"))\"",
                  "\"kernels\": \"\(CPUKernels.path)\""]
    fields += r.entries.map { "\"\($0.key)\": \(String(format: "%.6g", $0.value))" }
    print("{" + fields.joined(separator: ", ") + "}")
}

// MARK: - Main

let options = BenchOptions.parse(Array(CommandLine.arguments.dropFirst()))
useCPUClock = options.cpuClock
Parallel.setThreads(options.threads)
func wanted(_ section: String) -> Bool { options.only.isEmpty || options.only.contains(section) }

var results = Results()
// The training steps first, so that the peak resident size is theirs and not the micro-benchmarks'.
if wanted("steps") || wanted("memory") {
    benchModel(&results, name: "c4cnn", model: C4CNN(seed: 0), repeats: options.repeats, memory: true)
    benchModel(&results, name: "cnn", model: CNN(seed: 0), repeats: options.repeats, memory: false)
}
if wanted("steps") || wanted("steerable") { benchSteerableModels(&results, repeats: options.repeats) }
if wanted("sgemm") || wanted("conv") || wanted("steerable") { benchSgemm(&results, repeats: options.repeats) }
steerableShares(&results)
if wanted("conv") { benchConvolutions(&results, repeats: options.repeats) }
if wanted("pool") { benchPooling(&results, repeats: options.repeats) }
if wanted("filters") { benchFilters(&results, repeats: options.repeats) }
if wanted("parts") { benchParts(&results, repeats: options.repeats) }

if options.json { printJSON(results, options: options) } else { printTable(results, options: options) }
