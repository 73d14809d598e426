// MARK: - Checks that keep their message in release builds

/// Stops the program with `message` when `condition` is false.
///
/// `precondition` drops its message in `-O` builds (the README builds with `-c release`), leaving the user a bare
/// "precondition failure"; `fatalError` keeps it. Every check of a caller's input (a shape, an index, an argument)
/// goes through here, and its message names the op and what was wrong: `"conv2d: input [2, 3, 8, 8] has 3
/// channels, weight [4, 1, 3, 3] expects 1"`.
@inline(__always)
package func check(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() { fatalError(message(), file: file, line: line) }
}
