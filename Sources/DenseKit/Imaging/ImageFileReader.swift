import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads whole files for the decoders (internal), with one-line errors.
enum ImageFileReader {
    /// The bytes of the file at `path` (memory-mapped when the system allows).
    /// - Throws: ``ImageError/unreadableFile(path:reason:)``.
    static func read(_ path: String) throws -> Data {
        guard !path.isEmpty else { throw ImageError.unreadableFile(path: path, reason: "empty path") }
        var st = stat()
        guard stat(path, &st) == 0 else { throw ImageError.unreadableFile(path: path, reason: "no such file") }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw ImageError.unreadableFile(path: path, reason: "is a folder, not a file")
        // A FIFO, socket or device: reading it could block or never end.
        default: throw ImageError.unreadableFile(path: path, reason: "not a regular file (a pipe, socket or device)")
        }
        guard access(path, R_OK) == 0 else {
            throw ImageError.unreadableFile(path: path, reason: "permission denied")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? error.localizedDescription
            throw ImageError.unreadableFile(path: path, reason: reason)
        }
    }
}
