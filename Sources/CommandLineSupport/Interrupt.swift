import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Ctrl-C (SIGINT) handling for long commands: the handler writes the message set last to standard error and ends
/// the process with status 130, the shell's status for a command ended by SIGINT.
///
/// The handler runs in signal context, so it only calls `write` and `_exit`; the message is prepared beforehand
/// (`setMessage`, for example after each checkpoint) as a C string that is never freed while it may be read.
public enum Interrupt {
    nonisolated(unsafe) private static var message: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var length = 0

    /// Installs the handler with `text` as the message.
    public static func install(message text: String) {
        setMessage(text)
        signal(SIGINT) { _ in
            if let text = Interrupt.message {
                _ = write(2, text, Interrupt.length)
            }
            _exit(130)
        }
    }

    /// Replaces the message written on SIGINT (a newline is put before and after it).
    public static func setMessage(_ text: String) {
        let bytes = Array(("\n" + text + "\n").utf8CString)
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        buffer.initialize(from: bytes, count: bytes.count)
        // The length first, then the pointer: a handler sees the old text or the new one, never a torn one
        // (the old buffer is kept: the handler may be reading it).
        length = 0
        message = buffer
        length = bytes.count - 1
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
