import CommandLineSupport
import XCTest

/// The executables' shared parser: typed values, errors that name the flag, generated help, thread bounds and the
/// resume command printed on Ctrl-C.
final class ArgumentParserTests: XCTestCase {
    enum Colour: String, CaseIterable { case red, green }

    private func makeParser() -> (ArgumentParser, Flag, Option<Int>, Option<Double>, Option<Colour>, Option<[String]>) {
        let parser = ArgumentParser(command: "tool", overview: "Does things.")
        let verbose = parser.flag("--verbose", short: "-v", help: "say more")
        let count = parser.option("--count", value: "N", help: "how many", Convert.integer(1...10))
        let rate = parser.option("--rate", value: "X", help: "how fast\nsecond line", Convert.nonNegative)
        let colour = parser.option("--colour", value: "NAME", help: "which colour", Convert.choice(Colour.self, noun: "colour"))
        let only = parser.option("--only", value: "LIST", help: "sections", Convert.list(of: ["a", "b"], noun: "section"))
        return (parser, verbose, count, rate, colour, only)
    }

    private func error(_ arguments: [String]) -> String? {
        do {
            _ = try makeParser().0.parse(arguments)
            return nil
        } catch {
            return "\(error)"
        }
    }

    func testTypedValues() throws {
        let (parser, verbose, count, rate, colour, only) = makeParser()
        let a = try parser.parse(["-v", "--count", "3", "--rate", "0.5", "--colour", "green", "--only", "b,a"])
        XCTAssertTrue(a[verbose])
        XCTAssertEqual(a[count], 3)
        XCTAssertEqual(a[rate], 0.5)
        XCTAssertEqual(a[colour], .green)
        XCTAssertEqual(a[only], ["b", "a"])
        XCTAssertFalse(a.helpRequested)
        let none = try parser.parse([])
        XCTAssertFalse(none[verbose])
        XCTAssertNil(none[count])
        XCTAssertFalse(none.given("--count"))
        XCTAssertTrue(try parser.parse(["--help"]).helpRequested)
    }

    func testErrorsNameTheFlag() {
        XCTAssertEqual(error(["--bogus"]), "unknown option '--bogus'")
        XCTAssertEqual(error(["--count"]), "--count needs a value")
        XCTAssertEqual(error(["--count", "--verbose"]), "--count needs a value")
        XCTAssertEqual(error(["--count", "11"]), "--count: '11' is not a whole number from 1 to 10")
        XCTAssertEqual(error(["--rate", "-1"]), "--rate: '-1' is not a non-negative number")
        XCTAssertEqual(error(["--rate", "nan"]), "--rate: 'nan' is not a non-negative number")
        XCTAssertEqual(error(["--colour", "blue"]), "--colour: unknown colour 'blue' (red, green)")
        XCTAssertEqual(error(["--only", "a,bogus"]), "--only: unknown section 'bogus' (valid: a, b)")
        XCTAssertEqual(error(["--only", "a,a"]), "--only: a section is listed twice in 'a,a'")
    }

    func testHelpIsGeneratedFromTheDeclarations() {
        let help = makeParser().0.help
        XCTAssertTrue(help.hasPrefix("USAGE: tool [options]\n\nDoes things.\n\nOPTIONS:\n"), help)
        XCTAssertTrue(help.contains("\n  --verbose, -v               say more\n"), help)
        XCTAssertTrue(help.contains("\n  --rate X                    how fast\n                              second line\n"), help)
        XCTAssertTrue(help.contains("\n  -h, --help                  show this help"), help)
    }

    func testThreadCountsAreBounded() {
        XCTAssertEqual(try Convert.threads("1"), 1)
        XCTAssertEqual(try Convert.threads("\(ThreadLimit.maximum)"), ThreadLimit.maximum)
        XCTAssertLessThanOrEqual(ThreadLimit.maximum, 256)
        for bad in ["0", "-3", "x", "\(ThreadLimit.maximum + 1)", "1000"] {
            XCTAssertThrowsError(try Convert.threads(bad), bad) { error in
                XCTAssertTrue("\(error)".contains(bad) || "\(error)".contains("at most"), "\(error)")
            }
        }
    }

    func testResumeCommandRepeatsTheArgumentsWithResume() {
        XCTAssertEqual(ShellText.resumeCommand(["train-c4cnn", "--epochs", "5", "--overwrite"]),
                       "train-c4cnn --epochs 5 --resume")
        XCTAssertEqual(ShellText.resumeCommand(["t", "--resume", "--checkpoint-dir", "my runs"]),
                       "t --resume --checkpoint-dir 'my runs'")
        XCTAssertEqual(ShellText.quoted("it's"), "'it'\\''s'")
    }
}
