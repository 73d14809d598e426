import Autograd
import Foundation

// MARK: - Finding the case files

/// Why no case can be taken from a path: it is missing, not a file or folder, or a folder without cases.
public struct CaseFilesError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// The cases at `url`: the file itself when it is a file, or the `*.safetensors` files directly in it, sorted by
/// name, when it is a folder. A folder without any case is an error (a check that checks nothing must not pass), as
/// is a path that is neither a regular file nor a folder.
public func referenceCaseURLs(at url: URL) throws -> [URL] {
    var info = stat()
    guard stat(url.path, &info) == 0 else {
        throw CaseFilesError(path: url.path, reason: "not found (\(String(cString: strerror(errno))))")
    }
    if (info.st_mode & S_IFMT) != S_IFDIR {
        if let problem = RegularFile.problem(mode: info.st_mode) {
            throw CaseFilesError(path: url.path, reason: problem.replacingOccurrences(of: "regular file",
                                                                                      with: "case file or folder"))
        }
        return [url]
    }
    let urls: [URL]
    do {
        urls = try referenceCaseURLs(in: url)
    } catch {
        throw CaseFilesError(path: url.path, reason: "cannot read the folder (\(error.localizedDescription))")
    }
    guard !urls.isEmpty else {
        throw CaseFilesError(path: url.path, reason: "no cases found (no *.safetensors files in this folder)")
    }
    return urls
}
