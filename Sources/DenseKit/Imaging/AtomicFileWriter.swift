import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Atomic file writes (internal; the public entry is ``AtomicFile/write(_:to:overwrite:)``):
/// temporary file in the target's folder, write + fsync, then rename (overwrite)
/// or link (no overwrite, fails atomically if the target appeared meanwhile).
enum AtomicFileWriter {
    static func write(_ data: Data, to path: String, overwrite: Bool) throws {
        guard !path.isEmpty else { throw ImageError.unwritableOutput(path: path, reason: "empty path") }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if path.hasSuffix("/") {
            throw ImageError.unwritableOutput(path: path, reason: "the path names a folder, not a file")
        }
        if fm.fileExists(atPath: path, isDirectory: &isDir) {
            if isDir.boolValue { throw ImageError.unwritableOutput(path: path, reason: "is a folder") }
            if !overwrite { throw ImageError.outputExists(path: path) }
        }
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let base = url.lastPathComponent
        isDir = false
        guard fm.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw ImageError.unwritableOutput(path: path, reason: "folder \(folder) does not exist")
        }

        // mkstemp: unique name, created 0600 with O_EXCL.
        var template = Array((folder + "/." + base + ".tmp-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buf -> Int32 in
            guard let p = buf.baseAddress else { return -1 }
            return mkstemp(p)
        }
        guard fd >= 0 else {
            throw ImageError.unwritableOutput(path: path, reason: "cannot create a file in \(folder): \(errnoText())")
        }
        let tmpPath = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) },
                             as: UTF8.self)
        var closed = false
        var done = false
        defer {
            if !closed { _ = close(fd) }
            if !done { _ = unlink(tmpPath) }
        }

        // Write everything (retrying short writes and EINTR).
        let writeError: String? = data.withUnsafeBytes { raw -> String? in
            guard let base = raw.baseAddress else { return nil } // empty data
            var off = 0
            while off < raw.count {
                let n = Glibc_write(fd, base + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errnoText()
                }
                if n == 0 { return "no progress writing" }
                off += n
            }
            return nil
        }
        if let e = writeError { throw ImageError.unwritableOutput(path: path, reason: e) }
        _ = fchmod(fd, 0o644)
        if fsync(fd) != 0 {
            throw ImageError.unwritableOutput(path: path, reason: "fsync failed: \(errnoText())")
        }
        closed = true
        if close(fd) != 0 {
            throw ImageError.unwritableOutput(path: path, reason: "close failed: \(errnoText())")
        }

        if overwrite {
            if rename(tmpPath, path) != 0 {
                throw ImageError.unwritableOutput(path: path, reason: errnoText())
            }
        } else if link(tmpPath, path) == 0 {
            _ = unlink(tmpPath)
        } else {
            let e = errno
            if e == EEXIST { throw ImageError.outputExists(path: path) }
            // File systems without hard links: check, then rename (small race window).
            if e == EPERM || e == EOPNOTSUPP || e == ENOSYS || e == EMLINK {
                if fm.fileExists(atPath: path) { throw ImageError.outputExists(path: path) }
                if rename(tmpPath, path) != 0 {
                    throw ImageError.unwritableOutput(path: path, reason: errnoText())
                }
            } else {
                throw ImageError.unwritableOutput(path: path, reason: String(cString: strerror(e)))
            }
        }
        done = true
        syncFolder(folder)
    }

    /// Makes the rename durable (best effort).
    private static func syncFolder(_ folder: String) {
        let dfd = open(folder, O_RDONLY)
        if dfd >= 0 {
            _ = fsync(dfd)
            _ = close(dfd)
        }
    }

    private static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

/// `write(2)` under a name that does not clash with ``AtomicFileWriter/write(_:to:overwrite:)``.
@inline(__always)
private func Glibc_write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buf, count)
    #else
    return Darwin.write(fd, buf, count)
    #endif
}
