import Foundation
import ReferenceCases

// reference-check PATH: runs the PyTorch reference case PATH, or every case in the folder PATH, through the framework.
let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 1, let path = arguments.first, path != "--help", path != "-h" else {
    print("USAGE: reference-check PATH\n\nRuns the case file PATH, or every *.safetensors case in the folder PATH, and "
          + "prints PASS or FAIL per case, then the number of each. Exits 0 only when at least one case ran and all "
          + "passed.")
    exit(arguments.first == "--help" || arguments.first == "-h" ? 0 : 2)
}
// One line at a time, also into a pipe: what was printed survives whatever ends the run.
setvbuf(stdout, nil, _IOLBF, 0)

let urls: [URL]
do {
    urls = try referenceCaseURLs(at: URL(fileURLWithPath: path))
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    print("0 passed, 1 failed (nothing to check)")
    exit(1)
}

/// The lines to print should a case stop the program all the same (a fault the validation did not foresee): written
/// by the signal handler with `write`, which is safe there, then the process ends with status 1.
let crashReportCapacity = 4096
let crashReport = UnsafeMutablePointer<UInt8>.allocate(capacity: crashReportCapacity)
let crashReportLength = UnsafeMutablePointer<Int>.allocate(capacity: 1)
crashReportLength.pointee = 0
func prepareCrashReport(_ text: String) {
    let bytes = Array(text.utf8.prefix(crashReportCapacity))
    for (i, b) in bytes.enumerated() { crashReport[i] = b }
    crashReportLength.pointee = bytes.count
}
for sig in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT] {
    signal(sig) { _ in
        _ = write(1, crashReport, crashReportLength.pointee)
        _exit(1)
    }
}

var passed = 0, failed = 0
for url in urls {
    let name = url.deletingPathExtension().lastPathComponent
    prepareCrashReport("FAIL \(name): the case stopped the program (see the message on standard error)\n"
                       + "\(passed) passed, \(failed + 1) failed (the cases after \(name) did not run)\n")
    do {
        let testCase = try ReferenceCase(url: url)
        let outcome = testCase.run()
        if outcome.passed { passed += 1 } else { failed += 1 }
        print("\(outcome.passed ? "PASS" : "FAIL") \(name) (\(testCase.op)) worst relative error "
              + String(format: "%.3e", outcome.worstError))
        for note in outcome.notes { print("     \(note)") }
    } catch {
        failed += 1
        print("FAIL \(name): \(error)")
    }
}
print("\(passed) passed, \(failed) failed")
exit(failed == 0 && passed > 0 ? 0 : 1)
