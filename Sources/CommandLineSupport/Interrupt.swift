import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Ctrl-C (SIGINT) handling for long commands: the handler runs on a dispatch queue (not in signal context), then
/// the process ends with status 130, the shell's status for a command ended by SIGINT.
public enum Interrupt {
    /// The installed signal source (kept alive for the life of the process).
    nonisolated(unsafe) private static var source: DispatchSourceSignal?

    /// On SIGINT, flushes standard output, writes `message()` to standard error and exits with status 130.
    public static func onInterrupt(_ message: @escaping @Sendable () -> String) {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            fflush(stdout)
            let text = Array(("\n" + message() + "\n").utf8)
            text.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
            _exit(130)
        }
        source.resume()
        self.source = source
    }
}

/// Shell text for commands printed to the user.
public enum ShellText {
    /// `argument` quoted for a POSIX shell when it holds anything but letters, digits and `-_./,=:+@%`.
    public static func quoted(_ argument: String) -> String {
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./,=:+@%")
        if !argument.isEmpty && argument.allSatisfy({ plain.contains($0) }) { return argument }
        return "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The command line of `arguments` (the program first).
    public static func command(_ arguments: [String]) -> String {
        arguments.map(quoted).joined(separator: " ")
    }

    /// The command that resumes a run started with `arguments` (the program first): the same arguments with
    /// `removing` flags left out (flags without a value, such as "--overwrite") and `--resume` added when missing.
    public static func resumeCommand(_ arguments: [String], removing: Set<String> = ["--overwrite"]) -> String {
        var result = arguments.filter { !removing.contains($0) }
        if !result.contains("--resume") { result.append("--resume") }
        return command(result)
    }
}
