import Foundation
import ReferenceCases

// reference-check DIR: runs every PyTorch reference case in DIR through the framework.
let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 1, let path = arguments.first, path != "--help", path != "-h" else {
    print("USAGE: reference-check DIR\n\nRuns every *.safetensors case in DIR and prints PASS or FAIL per case.")
    exit(arguments.first == "--help" || arguments.first == "-h" ? 0 : 2)
}
let directory = URL(fileURLWithPath: path)
let urls: [URL]
do {
    urls = try referenceCaseURLs(in: directory)
} catch {
    FileHandle.standardError.write(Data("error: cannot read directory \(path): \(error.localizedDescription)\n".utf8))
    exit(1)
}
var passed = 0, failed = 0
for url in urls {
    let name = url.deletingPathExtension().lastPathComponent
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
exit(failed == 0 ? 0 : 1)
